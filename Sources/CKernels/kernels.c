// Float32 training kernels: softmax, RMSNorm, SiLU/SwiGLU, rotary embedding and
// cross-entropy, each with its backward. Declarations and contracts are in
// tributary_kernels.h.
//
// How these loops are written, so that clang -O2 vectorises every TK_CLONES clone
// (AVX-512, AVX2+FMA, SSE2) without -ffast-math:
// - the work is done row by row, in simple loops over the dense last dimension,
//   through restrict pointers, in always-inline helpers that the vectoriser sees
//   inside each clone;
// - no libm call inside a loop: exp is tk_expf below, branch-free; logf and sqrtf
//   run once per row;
// - reductions (max, sums, dot products) keep TK_LANES = 32 explicit partial
//   results, which the SLP vectoriser maps onto two zmm, four ymm or eight xmm
//   registers (fewer lanes leave the AVX2 clone scalar), and add them up in a
//   fixed order at the end. The order of the additions is fixed by the source,
//   not by the vector width, so every clone gives the same sums (FMA contraction
//   aside), and the vectorised SSE2 clone matches an -O0 build bit for bit;
// - a routine that may run in place (y == x) copies the row to its output first
//   when it does not, then works on the output alone: one code path, no aliasing.

#include "tributary_kernels.h"
#include "clones.h"

#include <math.h>
#include <string.h>

#define TK_INLINE static inline __attribute__((always_inline))
#define TK_LANES 32

// MARK: exp

/// exp(x) in float, Cephes style: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a
/// degree-7 polynomial, times 2^n built in the exponent bits. 2^n is applied as two
/// factors 2^(n/2) 2^(n - n/2), so results down to the subnormal range are right
/// and n = 128 does not overflow the scale. At most 1.01 ulp from the exact value
/// over every float (checked exhaustively against double exp, with and without FMA),
/// subnormal results included; 0 below -103.97 (where exp rounds to 0), +inf above
/// ln(FLT_MAX), NaN for NaN. No branches, no libm: it vectorises.
TK_INLINE float tk_expf(float x) {
  const float hi = 88.72283172607421875f;   // largest float whose exp is finite
  const float lo = -103.972076416015625f;   // about ln(2^-150): below, exp rounds to 0
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;                    // NaN passes both compares unchanged
  // n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer kept in the low mantissa bits.
  const float shifter = 12582912.0f;
  float t = xc * 1.44269504088896341f + shifter;
  float n = t - shifter;
  // r = x - n ln2, with ln2 split in two (C1 has few bits, so n * C1 is exact).
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  uint32_t t_bits;
  memcpy(&t_bits, &t, sizeof t_bits);
  int32_t ni = (int32_t)(t_bits - 0x4B400000u);  // the integer n (bits of the shifter subtracted)
  int32_t n1 = ni >> 1, n2 = ni - n1;             // n1, n2 in [-75, 64]: both scales are normal
  uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  float y = (p * s1) * s2;
  y = x < lo ? 0.0f : y;
  y = x > hi ? INFINITY : y;
  return y;
}

// MARK: Row helpers

/// acc[0] + ... + acc[TK_LANES - 1], in that order. (A tree here would be faster to
/// reduce but leads the SLP vectoriser to pair up lanes in the main loop instead.)
TK_INLINE float lanes_total(const float acc[TK_LANES]) {
  float total = 0.0f;
  for (int k = 0; k < TK_LANES; k++) total += acc[k];
  return total;
}

/// max_j scale * x[j]; NaNs are passed over (they reach the output through the sum). -inf for n == 0.
TK_INLINE float row_max_scaled(const float *restrict x, size_t n, float scale) {
  float acc[TK_LANES];
  for (int k = 0; k < TK_LANES; k++) acc[k] = -INFINITY;
  size_t i = 0;
  for (; i + TK_LANES <= n; i += TK_LANES)
    for (int k = 0; k < TK_LANES; k++) {
      float v = scale * x[i + k];
      acc[k] = v > acc[k] ? v : acc[k];
    }
  float m = -INFINITY;
  for (; i < n; i++) {
    float v = scale * x[i];
    m = v > m ? v : m;
  }
  for (int k = 0; k < TK_LANES; k++) m = acc[k] > m ? acc[k] : m;
  return m;
}

/// max_j x[j].
TK_INLINE float row_max(const float *restrict x, size_t n) { return row_max_scaled(x, n, 1.0f); }

TK_INLINE float row_sum(const float *restrict x, size_t n) {
  float acc[TK_LANES] = {0};
  size_t i = 0;
  for (; i + TK_LANES <= n; i += TK_LANES)
    for (int k = 0; k < TK_LANES; k++) acc[k] += x[i + k];
  float tail = 0.0f;
  for (; i < n; i++) tail += x[i];
  return lanes_total(acc) + tail;
}

TK_INLINE float row_dot(const float *restrict a, const float *restrict b, size_t n) {
  float acc[TK_LANES] = {0};
  size_t i = 0;
  for (; i + TK_LANES <= n; i += TK_LANES)
    for (int k = 0; k < TK_LANES; k++) acc[k] += a[i + k] * b[i + k];
  float tail = 0.0f;
  for (; i < n; i++) tail += a[i] * b[i];
  return lanes_total(acc) + tail;
}

/// sum_j exp(x[j] - m), without storing the exponentials. The lanes loop is left to
/// the loop vectoriser (the SLP vectoriser gives up on it for AVX2); its partial sums
/// then live in memory, which costs nothing next to the exp.
TK_INLINE float row_sum_exp(const float *restrict x, size_t n, float m) {
  float acc[TK_LANES] = {0};
  size_t i = 0;
  for (; i + TK_LANES <= n; i += TK_LANES)
#pragma clang loop vectorize(enable) unroll(disable)
    for (int k = 0; k < TK_LANES; k++) acc[k] += tk_expf(x[i + k] - m);
  float tail = 0.0f;
  for (; i < n; i++) tail += tk_expf(x[i] - m);
  return lanes_total(acc) + tail;
}

TK_INLINE void row_zero(float *restrict y, size_t n) {
  for (size_t j = 0; j < n; j++) y[j] = 0.0f;
}

/// Columns row `i` may see: all of them, or j <= i + query_offset, clamped to [0, cols].
TK_INLINE size_t visible_columns(size_t i, size_t cols, int causal, ptrdiff_t query_offset) {
  if (!causal) return cols;
  ptrdiff_t last = (ptrdiff_t)i + query_offset;  // the last visible column
  if (last < 0) return 0;
  return (size_t)last + 1 < cols ? (size_t)last + 1 : cols;
}

/// The first visible column of causal row i under a sliding window (0: none): columns
/// j <= last - window are masked, as transformers' sliding_window_overlay (kv_idx > q_idx - window).
TK_INLINE size_t first_visible_column(size_t i, int causal, ptrdiff_t query_offset, size_t window) {
  if (!causal || window == 0) return 0;
  ptrdiff_t first = (ptrdiff_t)i + query_offset - (ptrdiff_t)window + 1;
  return first > 0 ? (size_t)first : 0;
}

// MARK: exp

TK_CLONES
void tk_exp_f32(const float *x, float *y, size_t count) {
  if (x != y) memcpy(y, x, count * sizeof(float));
  float *restrict out = y;
  for (size_t i = 0; i < count; i++) out[i] = tk_expf(out[i]);
}

// MARK: Softmax

/// y <- softmax(scale * y) over the first n of cols entries, in place; the rest 0.
TK_INLINE void softmax_row_in_place(float *restrict y, size_t n, size_t cols, float scale) {
  if (n > 0) {
    float m = row_max_scaled(y, n, scale);
    for (size_t j = 0; j < n; j++) y[j] = tk_expf(scale * y[j] - m);
    float inverse = 1.0f / row_sum(y, n);
    for (size_t j = 0; j < n; j++) y[j] *= inverse;
  }
  row_zero(y + n, cols - n);
}

TK_CLONES
void tk_softmax_forward(const float *x, size_t x_batch_stride, size_t ldx,
                        float *y, size_t y_batch_stride, size_t ldy,
                        size_t batches, size_t rows, size_t cols,
                        float scale, int causal, ptrdiff_t query_offset, size_t window) {
  for (size_t b = 0; b < batches; b++) {
    for (size_t i = 0; i < rows; i++) {
      const float *x_row = x + b * x_batch_stride + i * ldx;
      float *y_row = y + b * y_batch_stride + i * ldy;
      size_t n = visible_columns(i, cols, causal, query_offset);
      size_t first = first_visible_column(i, causal, query_offset, window);
      if (first > n) first = n;
      if (y_row != x_row) memcpy(y_row + first, x_row + first, (n - first) * sizeof(float));
      row_zero(y_row, first);
      softmax_row_in_place(y_row + first, n - first, cols - first, scale);
    }
  }
}

TK_CLONES
void tk_softmax_backward(const float *y, size_t y_batch_stride, size_t ldy,
                         const float *dy, size_t dy_batch_stride, size_t lddy,
                         float *dx, size_t dx_batch_stride, size_t lddx,
                         size_t batches, size_t rows, size_t cols,
                         float scale, int causal, ptrdiff_t query_offset, size_t window) {
  for (size_t b = 0; b < batches; b++) {
    for (size_t i = 0; i < rows; i++) {
      const float *restrict y_row = y + b * y_batch_stride + i * ldy;
      const float *dy_row = dy + b * dy_batch_stride + i * lddy;
      float *restrict dx_row = dx + b * dx_batch_stride + i * lddx;
      size_t n = visible_columns(i, cols, causal, query_offset);
      size_t first = first_visible_column(i, causal, query_offset, window);
      if (first > n) first = n;
      if (dx_row != dy_row) memcpy(dx_row + first, dy_row + first, (n - first) * sizeof(float));
      float dot = row_dot(dx_row + first, y_row + first, n - first);
      for (size_t j = first; j < n; j++) dx_row[j] = (y_row[j] * (dx_row[j] - dot)) * scale;
      row_zero(dx_row, first);
      row_zero(dx_row + n, cols - n);
    }
  }
}

// MARK: RMSNorm

TK_CLONES
void tk_rmsnorm_forward(const float *x, size_t ldx, const float *w,
                        float *y, size_t ldy, float *rstd,
                        size_t rows, size_t cols, float eps) {
  const float *restrict weight = w;
  for (size_t r = 0; r < rows; r++) {
    const float *restrict x_row = x + r * ldx;
    float *restrict y_row = y + r * ldy;
    float mean_square = row_dot(x_row, x_row, cols) / (float)cols;
    float s = 1.0f / sqrtf(mean_square + eps);
    rstd[r] = s;
    for (size_t j = 0; j < cols; j++) y_row[j] = weight[j] * (x_row[j] * s);
  }
}

TK_CLONES
void tk_rmsnorm_backward(const float *x, size_t ldx, const float *w, const float *rstd,
                         const float *dy, size_t lddy, float *dx, size_t lddx,
                         float *dw, size_t rows, size_t cols) {
  const float *restrict weight = w;
  float *restrict weight_grad = dw;
  for (size_t r = 0; r < rows; r++) {
    const float *restrict x_row = x + r * ldx;
    const float *restrict dy_row = dy + r * lddy;
    float *restrict dx_row = dx + r * lddx;
    float s = rstd[r];
    // dx_row holds w * dy for the moment.
    for (size_t j = 0; j < cols; j++) dx_row[j] = weight[j] * dy_row[j];
    float c = row_dot(dx_row, x_row, cols) * (s * s * s) / (float)cols;
    for (size_t j = 0; j < cols; j++) dx_row[j] = s * dx_row[j] - c * x_row[j];
    if (weight_grad)
      for (size_t j = 0; j < cols; j++) weight_grad[j] += dy_row[j] * (x_row[j] * s);
  }
}

// MARK: SiLU and SwiGLU

TK_INLINE float silu(float x) { return x / (1.0f + tk_expf(-x)); }

/// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
TK_INLINE float silu_derivative(float x) {
  float s = 1.0f / (1.0f + tk_expf(-x));
  return s * (1.0f + x * (1.0f - s));
}

TK_CLONES
void tk_silu_forward(const float *x, size_t ldx, float *y, size_t ldy, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; r++) {
    const float *restrict x_row = x + r * ldx;
    float *restrict y_row = y + r * ldy;
    for (size_t j = 0; j < cols; j++) y_row[j] = silu(x_row[j]);
  }
}

TK_CLONES
void tk_silu_backward(const float *x, size_t ldx, const float *dy, size_t lddy,
                      float *dx, size_t lddx, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; r++) {
    const float *restrict x_row = x + r * ldx;
    const float *restrict dy_row = dy + r * lddy;
    float *restrict dx_row = dx + r * lddx;
    for (size_t j = 0; j < cols; j++) dx_row[j] = dy_row[j] * silu_derivative(x_row[j]);
  }
}

TK_CLONES
void tk_swiglu_forward(const float *gate, size_t ldg, const float *up, size_t ldu,
                       float *h, size_t ldh, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; r++) {
    const float *restrict g_row = gate + r * ldg;
    const float *restrict u_row = up + r * ldu;
    float *restrict h_row = h + r * ldh;
    for (size_t j = 0; j < cols; j++) h_row[j] = silu(g_row[j]) * u_row[j];
  }
}

TK_CLONES
void tk_swiglu_backward(const float *gate, size_t ldg, const float *up, size_t ldu,
                        const float *dh, size_t lddh, float *dgate, size_t lddg,
                        float *dup, size_t lddu, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; r++) {
    const float *restrict g_row = gate + r * ldg;
    const float *restrict u_row = up + r * ldu;
    const float *restrict dh_row = dh + r * lddh;
    float *restrict dg_row = dgate + r * lddg;
    float *restrict du_row = dup + r * lddu;
    for (size_t j = 0; j < cols; j++) {
      float g = g_row[j];
      float s = 1.0f / (1.0f + tk_expf(-g));
      float d = dh_row[j];
      du_row[j] = d * (g * s);
      dg_row[j] = (d * u_row[j]) * (s * (1.0f + g * (1.0f - s)));
    }
  }
}

// MARK: Rotary embedding

/// One head: (lo, hi) <- (lo c - hi s', hi c + lo s') with s' = sign * s.
TK_INLINE void rotate_head(float *restrict lo, float *restrict hi, const float *restrict c,
                           const float *restrict s, size_t half, float sign) {
  for (size_t j = 0; j < half; j++) {
    float a = lo[j], b = hi[j], sj = sign * s[j];
    lo[j] = a * c[j] - b * sj;
    hi[j] = b * c[j] + a * sj;
  }
}

TK_INLINE void rope(float *x, size_t ldx, size_t tokens, size_t heads, size_t head_dim,
                    const int32_t *positions, const float *cos_table, const float *sin_table,
                    float sign) {
  size_t half = head_dim / 2;
  for (size_t t = 0; t < tokens; t++) {
    size_t at = (size_t)positions[t] * half;
    for (size_t h = 0; h < heads; h++) {
      float *head = x + t * ldx + h * head_dim;
      rotate_head(head, head + half, cos_table + at, sin_table + at, half, sign);
    }
  }
}

TK_CLONES
void tk_rope_forward(float *x, size_t ldx, size_t tokens, size_t heads, size_t head_dim,
                     const int32_t *positions, const float *cos_table, const float *sin_table) {
  rope(x, ldx, tokens, heads, head_dim, positions, cos_table, sin_table, 1.0f);
}

TK_CLONES
void tk_rope_backward(float *g, size_t ldg, size_t tokens, size_t heads, size_t head_dim,
                      const int32_t *positions, const float *cos_table, const float *sin_table) {
  rope(g, ldg, tokens, heads, head_dim, positions, cos_table, sin_table, -1.0f);
}

// MARK: Cross-entropy

/// The first row whose target is neither ignore_index nor in [0, vocab), or -1.
static ptrdiff_t first_bad_target(const int32_t *targets, size_t rows, size_t vocab, int32_t ignore_index) {
  for (size_t r = 0; r < rows; r++) {
    int32_t t = targets[r];
    if (t != ignore_index && (t < 0 || (uint64_t)t >= (uint64_t)vocab)) return (ptrdiff_t)r;
  }
  return -1;
}

TK_CLONES
ptrdiff_t tk_cross_entropy_forward(const float *logits, size_t ld, const int32_t *targets,
                                   size_t rows, size_t vocab, int32_t ignore_index,
                                   float *loss, float *logsumexp) {
  ptrdiff_t bad = first_bad_target(targets, rows, vocab, ignore_index);
  if (bad >= 0) return bad;
  for (size_t r = 0; r < rows; r++) {
    if (targets[r] == ignore_index) {
      loss[r] = 0.0f;
      logsumexp[r] = 0.0f;
      continue;
    }
    const float *restrict row = logits + r * ld;
    float m = row_max(row, vocab);
    float log_sum = logf(row_sum_exp(row, vocab, m));
    logsumexp[r] = m + log_sum;
    // (m - x_t) first, as log_softmax does: large logits do not cancel away the loss's digits.
    loss[r] = (m - row[targets[r]]) + log_sum;
  }
  return -1;
}

/// d <- (softmax(d) - onehot(t)) * g, given logsumexp(d) = lse.
TK_INLINE void cross_entropy_row_in_place(float *restrict d, size_t vocab, size_t t, float lse, float g) {
  float target_logit = d[t];
  for (size_t j = 0; j < vocab; j++) d[j] = tk_expf(d[j] - lse) * g;
  d[t] = (tk_expf(target_logit - lse) - 1.0f) * g;
}

TK_CLONES
ptrdiff_t tk_cross_entropy_backward(const float *logits, size_t ld, const int32_t *targets,
                                    const float *logsumexp, const float *dloss, size_t dloss_stride,
                                    size_t rows, size_t vocab, int32_t ignore_index,
                                    float *dlogits, size_t ldd) {
  ptrdiff_t bad = first_bad_target(targets, rows, vocab, ignore_index);
  if (bad >= 0) return bad;
  for (size_t r = 0; r < rows; r++) {
    const float *row = logits + r * ld;
    float *d = dlogits + r * ldd;
    int32_t t = targets[r];
    if (t == ignore_index) {
      row_zero(d, vocab);
      continue;
    }
    if (d != row) memcpy(d, row, vocab * sizeof(float));
    cross_entropy_row_in_place(d, vocab, (size_t)t, logsumexp[r], dloss[r * dloss_stride]);
  }
  return -1;
}

// Kernels of decoding steps, contracts in tributary_kernels.h: the skinny matrix product (a few rows
// of activations times a Hugging Face weight W [out, in], transposed, as every linear layer of a
// decoding step computes it) and the attention of a few query rows over a KV cache.
//
// Why not BLAS: for a few rows the product is bound by reading W once. This loop reads four rows
// of W at a time, each once for every activation row, 16 columns per step. Measured on the
// reference model's weights (docs/PERFORMANCE.md, "The skinny product"): OpenBLAS 0.3.21's sgemm
// is as fast for one row on one thread, but 1.5-3x slower for 2-16 rows, and uses no second thread
// for one row, where splitting the columns here gains 1.9x; sgemv is slower still.
//
// Each output element is one fixed sequence of operations: 16 lane sums over the columns in
// blocks of 16, the columns past the last block added one by one, the lanes added in a fixed tree,
// then alpha and beta. Which rows are blocked together, and which thread computes a row, does not
// change it, so results do not depend on the thread count.
#include "tributary_kernels.h"
#include "clones.h"
#include "workers.h"

#include <stdlib.h>
#include <string.h>

// The 16-float vectors never cross a call (their helpers are always inlined), so the ABI note on
// the clones without AVX-512 does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

#define TK_INLINE static inline __attribute__((always_inline))

typedef float v16 __attribute__((ext_vector_type(16)));
typedef float v8 __attribute__((ext_vector_type(8)));
typedef float v4 __attribute__((ext_vector_type(4)));
typedef float v2 __attribute__((ext_vector_type(2)));

/// Rows of W computed together, and rows of x (more are taken in groups, W's rows then come from L1).
#define W_BLOCK 4
#define X_GROUP 4

TK_INLINE v16 load16(const float *p) {
  v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

TK_INLINE float lanes_sum(v16 a) {
  v8 h = a.lo + a.hi;
  v4 q = h.lo + h.hi;
  v2 d = q.lo + q.hi;
  return d.x + d.y;
}

/// y[i][r] = alpha * x_i · w_r + beta * y[i][r] for M rows of x and R rows of w (compile-time constants).
TK_INLINE void block(const float *x, size_t ldx, const float *w, size_t ldw, float *y, size_t ldy, size_t in,
                     float alpha, float beta, const int M, const int R) {
  v16 acc[X_GROUP][W_BLOCK];
  for (int i = 0; i < M; i++)
    for (int r = 0; r < R; r++) acc[i][r] = (v16)0.0f;
  size_t c = 0;
  for (; c + 16 <= in; c += 16) {
    v16 wv[W_BLOCK];
    for (int r = 0; r < R; r++) wv[r] = load16(w + r * ldw + c);
    for (int i = 0; i < M; i++) {
      v16 xv = load16(x + i * ldx + c);
      for (int r = 0; r < R; r++) acc[i][r] += xv * wv[r];
    }
  }
  for (int i = 0; i < M; i++)
    for (int r = 0; r < R; r++) {
      float tail = 0.0f;
      for (size_t k = c; k < in; k++) tail += x[i * ldx + k] * w[r * ldw + k];
      float total = alpha * (lanes_sum(acc[i][r]) + tail);
      float *out = y + i * ldy + r;
      *out = beta == 0.0f ? total : total + beta * *out;  // beta 0 never reads y (it may hold NaN)
    }
}

/// Every row of x against R rows of w.
TK_INLINE void rows_against(const float *x, size_t ldx, const float *w, size_t ldw, float *y, size_t ldy,
                            size_t m, size_t in, float alpha, float beta, const int R) {
  size_t i = 0;
  for (; i + X_GROUP <= m; i += X_GROUP) block(x + i * ldx, ldx, w, ldw, y + i * ldy, ldy, in, alpha, beta, X_GROUP, R);
  switch (m - i) {
    case 1: block(x + i * ldx, ldx, w, ldw, y + i * ldy, ldy, in, alpha, beta, 1, R); break;
    case 2: block(x + i * ldx, ldx, w, ldw, y + i * ldy, ldy, in, alpha, beta, 2, R); break;
    case 3: block(x + i * ldx, ldx, w, ldw, y + i * ldy, ldy, in, alpha, beta, 3, R); break;
    default: break;
  }
}

/// Output columns first..<last of the product, on one thread.
TK_CLONES
static void skinny_columns(const float *x, size_t ldx, const float *w, size_t ldw, float *y, size_t ldy,
                           size_t m, size_t in, size_t first, size_t last, float alpha, float beta) {
  size_t r = first;
  for (; r + W_BLOCK <= last; r += W_BLOCK)
    rows_against(x, ldx, w + r * ldw, ldw, y + r, ldy, m, in, alpha, beta, W_BLOCK);
  for (; r < last; r++) rows_against(x, ldx, w + r * ldw, ldw, y + r, ldy, m, in, alpha, beta, 1);
}

typedef struct {
  const float *x, *w;
  float *y;
  size_t ldx, ldw, ldy, m, in, out;
  float alpha, beta;
} skinny_job;

/// The first output column of `part`: parts split the columns evenly, on multiples of W_BLOCK.
static size_t part_start(size_t out, size_t part, size_t parts) {
  if (part >= parts) return out;
  size_t start = out * part / parts;
  return start - start % W_BLOCK;
}

static void skinny_part(void *context, size_t part, size_t parts) {
  const skinny_job *job = context;
  skinny_columns(job->x, job->ldx, job->w, job->ldw, job->y, job->ldy, job->m, job->in,
                 part_start(job->out, part, parts), part_start(job->out, part + 1, parts), job->alpha, job->beta);
}

void tk_skinny_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw, float *y, size_t ldy,
                         size_t m, size_t in, size_t out, float alpha, float beta, size_t threads) {
  if (m == 0 || out == 0) return;
  // A part below this many weights costs more to hand over than it saves.
  size_t parts = threads;
  size_t by_work = (out * in) / TK_SKINNY_MIN_PART_WEIGHTS;
  if (parts > by_work) parts = by_work;
  if (parts > out / W_BLOCK) parts = out / W_BLOCK;
  if (parts <= 1) {
    skinny_columns(x, ldx, w, ldw, y, ldy, m, in, 0, out, alpha, beta);
    return;
  }
  skinny_job job = {x, w, y, ldx, ldw, ldy, m, in, out, alpha, beta};
  tk_workers_run(skinny_part, &job, parts);
}

// MARK: Attention of a decoding step

/// Scores on the stack up to this many, on the heap beyond.
#define TK_STACK_SCORES 4096

/// o = sum_j p[j] v[j] over n rows of v (row stride ldv), d columns, 16 columns at a time in registers,
/// rows j in four interleaved sums (one chain of dependent FMAs would wait on each).
TK_INLINE void weighted_rows(const float *p, const float *v, size_t ldv, size_t n, size_t d, float *o) {
  size_t c = 0;
  for (; c + 16 <= d; c += 16) {
    v16 acc[4] = {(v16)0.0f, (v16)0.0f, (v16)0.0f, (v16)0.0f};
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int u = 0; u < 4; u++) acc[u] += p[j + u] * load16(v + (j + u) * ldv + c);
    for (; j < n; j++) acc[0] += p[j] * load16(v + j * ldv + c);
    v16 total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    memcpy(o + c, &total, sizeof total);
  }
  for (; c < d; c++) {
    float acc = 0.0f;
    for (size_t j = 0; j < n; j++) acc += p[j] * v[j * ldv + c];
    o[c] = acc;
  }
}

/// The scores of a KV head's query heads against its keys are a skinny product (the group's query
/// vectors lie side by side in a query row, so they form a [group x head_dim] matrix), each key read
/// once for the group; then the softmax of tk_softmax_forward, then the weighted sum of the values.
TK_CLONES
void tk_attention_decode(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                         float *out, size_t ldo, size_t queries, size_t seen, size_t heads, size_t kv_heads,
                         size_t head_dim, float scale, size_t window) {
  size_t group = heads / kv_heads;
  float stack_scores[TK_STACK_SCORES];
  float *scores = group * seen <= TK_STACK_SCORES ? stack_scores : malloc(group * seen * sizeof(float));
  for (size_t i = 0; i < queries; i++) {
    size_t end = seen - queries + i + 1;  // causal: the positions up to this query's own
    size_t first = window > 0 && end > window ? end - window : 0;  // sliding window: the last `window` of them
    size_t n = end - first;
    for (size_t g = 0; g < kv_heads; g++) {
      const float *q_group = q + i * ldq + g * group * head_dim;
      const float *keys = k + first * ldk + g * head_dim, *values = v + first * ldv + g * head_dim;
      skinny_columns(q_group, head_dim, keys, ldk, scores, seen, group, head_dim, 0, n, scale, 0.0f);
      tk_softmax_forward(scores, 0, seen, scores, 0, seen, 1, group, n, 1.0f, 0, 0, 0);
      for (size_t u = 0; u < group; u++)
        weighted_rows(scores + u * seen, values, ldv, n, head_dim, out + i * ldo + (g * group + u) * head_dim);
    }
  }
  if (scores != stack_scores) free(scores);
}

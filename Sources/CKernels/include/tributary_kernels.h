// Elementwise kernels of Tributary's compute core.
//
// Each hot loop is compiled several times (AVX-512, AVX2+FMA, baseline) with
// target_clones and picked at load time by the CPU, so no -march flag is needed.
#ifndef TRIBUTARY_KERNELS_H
#define TRIBUTARY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// IEEE half-precision bit patterns to float.
void tk_f16_to_f32(const uint16_t *src, float *dst, size_t count);
/// bfloat16 bit patterns to float (exact: bf16 is the high half of a float).
void tk_bf16_to_f32(const uint16_t *src, float *dst, size_t count);

// ---------------------------------------------------------------------------
// Float32 training kernels (kernels.c), each with its backward.
//
// Matrices are row-major with a leading dimension `ld` (the distance in
// elements between rows, >= the row length), so strided views such as one
// head of a [tokens, heads * head_dim] matrix can be passed without a copy.
// Unless a routine says otherwise, outputs must not overlap inputs.
// Every routine is reentrant: callers may split rows across threads.
//
// Reductions over a row accumulate in 32 fixed float lanes, so the order of
// the additions does not depend on the vector width: results are the same on
// every x86-64 level up to fused multiply-add rounding (AVX2 and AVX-512
// contract a * b + c into one FMA, SSE2 does not).
// ---------------------------------------------------------------------------

/// y = exp(x) with the kernels' own vectorised exp (at most 1.01 ulp; 0 below
/// -103.97, +inf above 88.72, NaN stays NaN). y may equal x.
void tk_exp_f32(const float *x, float *y, size_t count);

/// Masked softmax over the rows of `batches` matrices of `rows` x `cols`:
///   y[b][i][j] = exp(scale * x[b][i][j] - m) / sum, over the visible columns j,
/// where row i sees every column when `causal` is 0 and columns
/// j <= i + query_offset when it is 1 (i counts from 0 in each matrix;
/// query_offset = keys - queries when decoding with a KV cache). With causal and
/// window > 0 (a sliding window, as Mistral's), row i also masks the columns
/// j <= i + query_offset - window, so it sees at most `window` columns; window 0
/// masks nothing more. Masked entries and rows that see no column are written as exactly 0.
/// Matrix b starts `x_batch_stride` (`y_batch_stride`) elements after matrix b-1.
/// y may equal x with the same strides (in place).
void tk_softmax_forward(const float *x, size_t x_batch_stride, size_t ldx,
                        float *y, size_t y_batch_stride, size_t ldy,
                        size_t batches, size_t rows, size_t cols,
                        float scale, int causal, ptrdiff_t query_offset, size_t window);

/// Softmax backward from the forward's output y:
///   dx = scale * y * (dy - sum_j dy * y), over the visible columns; masked entries are 0.
/// The mask arguments must be the forward's. dx may equal dy with the same strides.
void tk_softmax_backward(const float *y, size_t y_batch_stride, size_t ldy,
                         const float *dy, size_t dy_batch_stride, size_t lddy,
                         float *dx, size_t dx_batch_stride, size_t lddx,
                         size_t batches, size_t rows, size_t cols,
                         float scale, int causal, ptrdiff_t query_offset, size_t window);

/// RMSNorm as Hugging Face's LlamaRMSNorm in float32, per row of `cols`:
///   rstd = 1 / sqrt(mean(x^2) + eps),  y = w * (x * rstd).
/// Writes rstd[row] for the backward.
void tk_rmsnorm_forward(const float *x, size_t ldx, const float *w,
                        float *y, size_t ldy, float *rstd,
                        size_t rows, size_t cols, float eps);

/// RMSNorm backward: dx = rstd * (w * dy) - x * rstd^3 / cols * sum_j(w * dy * x),
/// and dw += sum over rows of dy * (x * rstd), ACCUMULATED into dw (cols
/// elements); dw may be NULL when the weight is frozen.
void tk_rmsnorm_backward(const float *x, size_t ldx, const float *w, const float *rstd,
                         const float *dy, size_t lddy, float *dx, size_t lddx,
                         float *dw, size_t rows, size_t cols);

/// y[r][j] += bias[j] for every row r of `rows` x `cols` (rows ldy apart): a linear layer's bias.
void tk_add_bias(float *y, size_t ldy, const float *bias, size_t rows, size_t cols);

/// dbias[j] += sum over rows r of dy[r][j], rows in order, ACCUMULATED into dbias (cols elements).
void tk_bias_backward(const float *dy, size_t lddy, float *dbias, size_t rows, size_t cols);

/// SiLU: y = x * sigmoid(x), computed as x / (1 + exp(-x)) like PyTorch.
void tk_silu_forward(const float *x, size_t ldx, float *y, size_t ldy, size_t rows, size_t cols);

/// SiLU backward: dx = dy * s * (1 + x * (1 - s)) with s = sigmoid(x).
void tk_silu_backward(const float *x, size_t ldx, const float *dy, size_t lddy,
                      float *dx, size_t lddx, size_t rows, size_t cols);

/// SwiGLU: h = silu(gate) * up.
void tk_swiglu_forward(const float *gate, size_t ldg, const float *up, size_t ldu,
                       float *h, size_t ldh, size_t rows, size_t cols);

/// SwiGLU backward: dgate = dh * up * silu'(gate), dup = dh * silu(gate).
void tk_swiglu_backward(const float *gate, size_t ldg, const float *up, size_t ldu,
                        const float *dh, size_t lddh, float *dgate, size_t lddg,
                        float *dup, size_t lddu, size_t rows, size_t cols);

/// Rotary position embedding in place, Hugging Face rotate_half convention:
/// each row t of x holds `heads` heads of `head_dim` (even) elements, one after
/// the other; with half = head_dim / 2, c = cos_table[positions[t] * half + j]
/// and s = sin_table[...] (tables of max_positions x half, dense),
///   x[j] , x[j + half]  <-  x[j] * c - x[j + half] * s , x[j + half] * c + x[j] * s.
/// Positions must lie in [0, max_positions); this routine does not check them.
void tk_rope_forward(float *x, size_t ldx, size_t tokens, size_t heads, size_t head_dim,
                     const int32_t *positions, const float *cos_table, const float *sin_table);

/// Rotary backward (the inverse, transposed, rotation) in place on the gradient:
///   g[j] , g[j + half]  <-  g[j] * c + g[j + half] * s , g[j + half] * c - g[j] * s.
void tk_rope_backward(float *g, size_t ldg, size_t tokens, size_t heads, size_t head_dim,
                      const int32_t *positions, const float *cos_table, const float *sin_table);

/// Cross-entropy per row of logits [rows x vocab]:
///   logsumexp[r] = log(sum_j exp(logits[r][j])),  loss[r] = logsumexp[r] - logits[r][targets[r]],
/// the loss computed as (max - logits[r][t]) + log(sum_j exp(logits[r][j] - max)), as
/// log_softmax does, so large logits do not cancel its digits away;
/// rows whose target is ignore_index get loss 0 and logsumexp 0.
/// Returns -1, or, when a target is neither ignore_index nor in [0, vocab),
/// the first such row, having written nothing.
ptrdiff_t tk_cross_entropy_forward(const float *logits, size_t ld, const int32_t *targets,
                                   size_t rows, size_t vocab, int32_t ignore_index,
                                   float *loss, float *logsumexp);

/// Cross-entropy backward with per-row upstream gradients g[r] = dloss[r * dloss_stride]
/// (stride 0 gives every row the same one, e.g. 1 / count for a mean):
///   dlogits[r][j] = (exp(logits[r][j] - logsumexp[r]) - (j == targets[r])) * g[r];
/// ignored rows get 0. dlogits may equal logits with the same ld (in place).
/// Returns like tk_cross_entropy_forward, having written nothing on a bad target.
ptrdiff_t tk_cross_entropy_backward(const float *logits, size_t ld, const int32_t *targets,
                                    const float *logsumexp, const float *dloss, size_t dloss_stride,
                                    size_t rows, size_t vocab, int32_t ignore_index,
                                    float *dlogits, size_t ldd);

// ---------------------------------------------------------------------------
// Decoding kernels: few activation rows at a time (decoding.c, with the worker pool of workers.c).
// ---------------------------------------------------------------------------

/// Weights below which a skinny product is not split across threads (each part gets at least this many).
#define TK_SKINNY_MIN_PART_WEIGHTS 16384

/// The skinny product of a linear layer, y = alpha * x W^T + beta * y, for x [m x in] (row stride ldx),
/// W [out x in] as Hugging Face stores it (row stride ldw) and y [m x out] (row stride ldy), meant for
/// m of 1 to 32: each row of W is read once for all m rows. beta == 0 never reads y. With threads > 1
/// the output columns are split among the kernels' worker pool (when large enough); each element is
/// computed by one thread in one fixed order, so the result is the same for every thread count.
/// W need not be aligned beyond Float, and the order does not depend on its address: a copy of W
/// anywhere gives the same bits (checkpoints loaded from a file resume bit for bit).
/// Safe to call from several threads at once (a caller finding the pool busy works alone).
void tk_skinny_matmul_wt(const float *x, size_t ldx, const float *w, size_t ldw, float *y, size_t ldy,
                         size_t m, size_t in, size_t out, float alpha, float beta, size_t threads);

/// Causal grouped-query attention of the last `queries` of `seen` positions, for decoding steps:
/// for query row i and head h, with key/value head g = h / (heads / kv_heads) and n = i + seen - queries + 1,
///   p = softmax(scale * q[i, h] . k[j, g]) over j < n (as tk_softmax_forward),  out[i, h] = sum_j p_j v[j, g].
/// q and out are [queries x heads * head_dim], k and v [seen x kv_heads * head_dim], each with its
/// row stride. No probabilities are kept (training's attention keeps them). With window > 0 (a sliding
/// window, as tk_softmax_forward's) the sum runs over n - window <= j < n only.
void tk_attention_decode(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                         float *out, size_t ldo, size_t queries, size_t seen, size_t heads, size_t kv_heads,
                         size_t head_dim, float scale, size_t window);

/// One AdamW step, as torch.optim.AdamW (non-fused, non-amsgrad) computes it, over `count` parameters:
///   param *= 1 - lr * weight_decay
///   m = lerp(m, grad, 1 - beta1);  v = beta2 * v + (1 - beta2) * grad^2
///   param -= (lr / bias1) * m / (sqrt(v) / sqrt(bias2) + eps)
/// with bias1 = 1 - beta1^t and bias2 = 1 - beta2^t for step t.
void tk_adamw_step(float *param, const float *grad, float *m, float *v, size_t count, float lr, float beta1,
                   float beta2, float eps, float weight_decay, float bias1, float bias2);

#ifdef __cplusplus
}
#endif
#endif

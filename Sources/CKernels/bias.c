// Bias kernels of linear layers (Qwen2's q, k, v; Llama's attention_bias and mlp_bias): the bias added
// to every row, and its gradient, the column sums of the output gradient. Contracts in tributary_kernels.h.
// Row-wise loops over contiguous columns, so each clone vectorizes them at its width.
#include "tributary_kernels.h"
#include "clones.h"

TK_CLONES
void tk_add_bias(float *y, size_t ldy, const float *bias, size_t rows, size_t cols) {
  const float *restrict b = bias;
  for (size_t r = 0; r < rows; r++) {
    float *restrict row = y + r * ldy;
    for (size_t j = 0; j < cols; j++) row[j] += b[j];
  }
}

TK_CLONES
void tk_bias_backward(const float *dy, size_t lddy, float *dbias, size_t rows, size_t cols) {
  float *restrict db = dbias;
  for (size_t r = 0; r < rows; r++) {
    const float *restrict row = dy + r * lddy;
    for (size_t j = 0; j < cols; j++) db[j] += row[j];
  }
}

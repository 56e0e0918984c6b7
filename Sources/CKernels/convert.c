#include "tributary_kernels.h"
#include "clones.h"

#include <string.h>

TK_CLONES
void tk_f16_to_f32(const uint16_t *restrict src, float *restrict dst, size_t count) {
  for (size_t i = 0; i < count; i++) {
    _Float16 h;
    memcpy(&h, &src[i], sizeof h);
    dst[i] = (float)h;
  }
}

TK_CLONES
void tk_bf16_to_f32(const uint16_t *restrict src, float *restrict dst, size_t count) {
  for (size_t i = 0; i < count; i++) {
    uint32_t bits = (uint32_t)src[i] << 16;
    memcpy(&dst[i], &bits, sizeof bits);
  }
}

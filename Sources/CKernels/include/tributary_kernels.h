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

#ifdef __cplusplus
}
#endif
#endif

#include "tributary_kernels.h"
#include "clones.h"

#include <math.h>

TK_CLONES
void tk_adamw_step(float *restrict param, const float *restrict grad, float *restrict m, float *restrict v,
                   size_t count, float lr, float beta1, float beta2, float eps, float weight_decay, float bias1,
                   float bias2) {
  const float decay = 1.0f - lr * weight_decay;
  const float step_size = lr / bias1;
  const float bias2_sqrt = sqrtf(bias2);
  for (size_t i = 0; i < count; i++) {
    float g = grad[i];
    float mi = m[i] + (1.0f - beta1) * (g - m[i]);  /* torch: exp_avg.lerp_(grad, 1 - beta1) */
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bias2_sqrt + eps;
    param[i] = param[i] * decay - step_size * (mi / denom);
  }
}

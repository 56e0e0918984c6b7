// Raw cblas_sgemm peers for the benchmarks: OpenBLAS called directly, with no Tributary code between.
#ifndef RAW_CBLAS_H
#define RAW_CBLAS_H

typedef struct raw_cblas {
  void *handle;
  void (*sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
  char *(*corename)(void);
  void (*set_threads)(int);
} raw_cblas;

/// The OpenBLAS instance already in this process (the one Tributary loaded), called directly.
int raw_cblas_open_loaded(raw_cblas *out);
/// A private copy of OpenBLAS in a new link-map namespace (dlmopen), initialised with
/// OPENBLAS_CORETYPE = coretype, or with the variable unset (OpenBLAS's own detection) if coretype is NULL.
int raw_cblas_open_private(const char *coretype, raw_cblas *out);
/// Row-major C = A B for dense m x k and k x n matrices.
void raw_cblas_sgemm(const raw_cblas *blas, int m, int n, int k, const float *a, const float *b, float *c);

#endif

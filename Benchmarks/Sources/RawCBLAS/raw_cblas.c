#define _GNU_SOURCE
#include "raw_cblas.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static int resolve(void *handle, raw_cblas *out) {
  if (!handle) return -1;
  out->handle = handle;
  *(void **)&out->sgemm = dlsym(handle, "cblas_sgemm");
  *(void **)&out->corename = dlsym(handle, "openblas_get_corename");
  *(void **)&out->set_threads = dlsym(handle, "openblas_set_num_threads");
  return out->sgemm && out->corename && out->set_threads ? 0 : -1;
}

int raw_cblas_open_loaded(raw_cblas *out) {
  return resolve(dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD), out);
}

int raw_cblas_open_private(const char *coretype, raw_cblas *out) {
  // The copy's constructor reads the environment during dlmopen; restore it afterwards.
  const char *previous = getenv("OPENBLAS_CORETYPE");
  char *saved = previous ? strdup(previous) : NULL;
  if (coretype) setenv("OPENBLAS_CORETYPE", coretype, 1); else unsetenv("OPENBLAS_CORETYPE");
  void *handle = dlmopen(LM_ID_NEWLM, "libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (saved) setenv("OPENBLAS_CORETYPE", saved, 1); else unsetenv("OPENBLAS_CORETYPE");
  free(saved);
  return resolve(handle, out);
}

void raw_cblas_sgemm(const raw_cblas *blas, int m, int n, int k, const float *a, const float *b, float *c) {
  blas->sgemm(101, 111, 111, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

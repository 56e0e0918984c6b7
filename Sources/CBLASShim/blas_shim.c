#define _GNU_SOURCE
#include "tributary_blas.h"

#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

// MARK: - CPU features

#if defined(__x86_64__) || defined(__i386__)
static uint64_t read_xcr0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}
#endif

uint32_t tb_cpu_features(void) {
  uint32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  if (d & (1u << 26)) f |= TB_CPU_SSE2;
  int osxsave = (c >> 27) & 1;
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  int ymm_enabled = (xcr0 & 0x6) == 0x6;
  int zmm_enabled = ymm_enabled && (xcr0 & 0xe0) == 0xe0;
  if (ymm_enabled && (c & (1u << 28))) f |= TB_CPU_AVX;
  if (ymm_enabled && (c & (1u << 12))) f |= TB_CPU_FMA;
  if (ymm_enabled && (c & (1u << 29))) f |= TB_CPU_F16C;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    if (ymm_enabled && (b & (1u << 5))) f |= TB_CPU_AVX2;
    if (zmm_enabled) {
      if (b & (1u << 16)) f |= TB_CPU_AVX512F;
      if (b & (1u << 17)) f |= TB_CPU_AVX512DQ;
      if (b & (1u << 28)) f |= TB_CPU_AVX512CD;
      if (b & (1u << 30)) f |= TB_CPU_AVX512BW;
      if (b & (1u << 31)) f |= TB_CPU_AVX512VL;
      if (c & (1u << 11)) f |= TB_CPU_AVX512_VNNI;
      if (d & (1u << 23)) f |= TB_CPU_AVX512_FP16;
      unsigned a1, b1, c1, d1;
      if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5))) f |= TB_CPU_AVX512_BF16;
    }
  }
#elif defined(__aarch64__)
  f |= TB_CPU_NEON;
#endif
  return f;
}

/// cgroup v2 cpu.max ("quota period" or "max ..."), rounded up to whole CPUs; 0 if none.
static int cgroup_cpu_quota(void) {
  FILE *file = fopen("/sys/fs/cgroup/cpu.max", "r");
  if (!file) return 0;
  char quota[32] = {0};
  long period = 0;
  int fields = fscanf(file, "%31s %ld", quota, &period);
  fclose(file);
  if (fields != 2 || period <= 0 || strcmp(quota, "max") == 0) return 0;
  long q = atol(quota);
  return q > 0 ? (int)((q + period - 1) / period) : 0;
}

int tb_available_cpus(void) {
  int cpus = 0;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
#endif
  if (cpus <= 0) cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
  int quota = cgroup_cpu_quota();
  if (quota > 0 && quota < cpus) cpus = quota;
  return cpus > 0 ? cpus : 1;
}

int tb_blas_user_threads(void) {
  static const char *const names[] = {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", NULL};
  for (const char *const *name = names; *name; name++) {
    const char *value = getenv(*name);
    if (value && atoi(value) >= 1) return atoi(value);
  }
  return 0;
}

int tb_retain_freed_memory(size_t retained_bytes) {
#ifdef __GLIBC__
  // 32 MiB is the largest mmap threshold glibc accepts; setting it also stops its dynamic growth.
  int mapped = mallopt(M_MMAP_THRESHOLD, 32 << 20);
  int trimmed = mallopt(M_TRIM_THRESHOLD, retained_bytes > INT_MAX ? INT_MAX : (int)retained_bytes);
  return mapped == 1 && trimmed == 1 ? 0 : -1;
#else
  (void)retained_bytes;
  return -1;
#endif
}

// MARK: - Loading

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
typedef void (*saxpy_fn)(int, float, const float *, int, float *, int);
typedef float (*sdot_fn)(int, const float *, int, const float *, int);
typedef float (*snrm2_fn)(int, const float *, int);
typedef void (*sscal_fn)(int, float, float *, int);
typedef int (*spotrf_fn)(int, char, int, float *, int);
typedef int (*spotrs_fn)(int, char, int, int, const float *, int, float *, int);
typedef int (*ssyevd_fn)(int, char, char, int, float *, int, float *);
typedef char *(*string_fn)(void);
typedef int (*get_threads_fn)(void);
typedef void (*set_threads_fn)(int);

static struct {
  sgemm_fn sgemm;
  sgemv_fn sgemv;
  saxpy_fn saxpy;
  sdot_fn sdot;
  snrm2_fn snrm2;
  sscal_fn sscal;
  spotrf_fn spotrf;
  spotrs_fn spotrs;
  ssyevd_fn ssyevd;
  string_fn corename;
  string_fn config;
  get_threads_fn get_threads;
  set_threads_fn set_threads;
} blas;

enum { CBLAS_ROW_MAJOR = 101 };
enum { LAPACK_ROW_MAJOR = 101 };

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[512];
static char library_path[512];
static char requested_core[32];
static char overridden_core[32];
static tb_core_source core_source = TB_CORE_FROM_LIBRARY;

/// The OpenBLAS core type to request on this CPU, or NULL to let OpenBLAS detect.
/// SkylakeX is OpenBLAS's AVX-512 kernel set (F, CD, BW, DQ, VL); Cooperlake adds
/// the BF16 kernels. DYNAMIC_ARCH builds have both since 0.3.11.
static const char *preferred_core(uint32_t features) {
  const uint32_t avx512 =
      TB_CPU_AVX512F | TB_CPU_AVX512CD | TB_CPU_AVX512BW | TB_CPU_AVX512DQ | TB_CPU_AVX512VL;
  if ((features & avx512) != avx512) return NULL;
  return (features & TB_CPU_AVX512_BF16) ? "Cooperlake" : "SkylakeX";
}

int tb_blas_core_is_avx512(const char *name) {
  static const char *const cores[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
  for (const char *const *core = cores; *core; core++)
    if (strcasecmp(name, *core) == 0) return 1;
  return 0;
}

/// Chooses the core type before OpenBLAS's constructor reads OPENBLAS_CORETYPE:
/// 1. TRIBUTARY_BLAS_CORETYPE, the explicit setting, always wins;
/// 2. an inherited OPENBLAS_CORETYPE is honoured, unless it would run AVX2 kernels on
///    an AVX-512 CPU (environments export it machine-wide); that override is reported;
/// 3. otherwise the best kernel set for the CPU, or OpenBLAS's own detection.
static void choose_core_type(void) {
  const char *explicit_core = getenv("TRIBUTARY_BLAS_CORETYPE");
  if (explicit_core && explicit_core[0]) {
    setenv("OPENBLAS_CORETYPE", explicit_core, 1);
    core_source = TB_CORE_FROM_USER;
    snprintf(requested_core, sizeof requested_core, "%s", explicit_core);
    return;
  }
  const char *preferred = preferred_core(tb_cpu_features());
  const char *inherited = getenv("OPENBLAS_CORETYPE");
  if (inherited && inherited[0]) {
    if (!preferred || tb_blas_core_is_avx512(inherited)) {
      core_source = TB_CORE_FROM_USER;
      snprintf(requested_core, sizeof requested_core, "%s", inherited);
      return;
    }
    snprintf(overridden_core, sizeof overridden_core, "%s", inherited);
  }
  if (!preferred) return;
  setenv("OPENBLAS_CORETYPE", preferred, 1);
  core_source = TB_CORE_FROM_TRIBUTARY;
  snprintf(requested_core, sizeof requested_core, "%s", preferred);
}

static void *open_first(const char *const *names) {
  for (; *names; names++) {
    void *h = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
  }
  return NULL;
}

#define RESOLVE(handle, field, symbol)                                                  \
  do {                                                                                \
    *(void **)(&blas.field) = dlsym(handle, symbol);                                    \
    if (!blas.field) {                                                                \
      snprintf(load_error, sizeof load_error, "symbol %s not found in %s", symbol, #handle); \
      return;                                                                         \
    }                                                                                 \
  } while (0)

/// Threads OpenBLAS starts with when tb_blas_set_threads came before loading; 0 otherwise.
static _Atomic int threads_at_load;

/// dlopen of OpenBLAS with OPENBLAS_NUM_THREADS set to `threads` while its constructor reads it, then the
/// user's setting put back. Its constructor starts threads - 1 workers, and each spins about 0.1 s
/// (2^28 cycles) before sleeping: a single-threaded user should not start with an idle one spinning.
static void *open_openblas(const char *const *names, int threads) {
  if (threads <= 0) return open_first(names);
  const char *previous = getenv("OPENBLAS_NUM_THREADS");
  char saved[32] = {0};
  if (previous) snprintf(saved, sizeof saved, "%s", previous);
  char value[16];
  snprintf(value, sizeof value, "%d", threads);
  setenv("OPENBLAS_NUM_THREADS", value, 1);
  void *handle = open_first(names);
  if (previous) setenv("OPENBLAS_NUM_THREADS", saved, 1); else unsetenv("OPENBLAS_NUM_THREADS");
  return handle;
}

static void load_libraries(void) {
  choose_core_type();
  static const char *const openblas_names[] = {"libopenblas.so.0", "libopenblas.so", NULL};
  int initial_threads = threads_at_load;
  void *openblas = open_openblas(openblas_names, initial_threads);
  if (!openblas) {
    snprintf(load_error, sizeof load_error,
             "cannot load OpenBLAS (libopenblas.so.0): %s. Install it: apt-get install libopenblas-dev liblapacke-dev",
             dlerror());
    return;
  }
  RESOLVE(openblas, sgemm, "cblas_sgemm");
  RESOLVE(openblas, sgemv, "cblas_sgemv");
  RESOLVE(openblas, saxpy, "cblas_saxpy");
  RESOLVE(openblas, sdot, "cblas_sdot");
  RESOLVE(openblas, snrm2, "cblas_snrm2");
  RESOLVE(openblas, sscal, "cblas_sscal");
  RESOLVE(openblas, corename, "openblas_get_corename");
  RESOLVE(openblas, config, "openblas_get_config");
  RESOLVE(openblas, get_threads, "openblas_get_num_threads");
  RESOLVE(openblas, set_threads, "openblas_set_num_threads");

  Dl_info info;
  if (dladdr((void *)blas.sgemm, &info) && info.dli_fname)
    snprintf(library_path, sizeof library_path, "%s", info.dli_fname);

  // Upstream OpenBLAS builds carry LAPACKE; Debian ships it separately, on top of OpenBLAS's LAPACK.
  void *lapacke = dlsym(openblas, "LAPACKE_spotrf") ? openblas : NULL;
  if (!lapacke) {
    static const char *const lapacke_names[] = {"liblapacke.so.3", "liblapacke.so", NULL};
    lapacke = open_first(lapacke_names);
  }
  if (!lapacke) {
    snprintf(load_error, sizeof load_error,
             "cannot load LAPACKE (liblapacke.so.3): %s. Install it: apt-get install liblapacke-dev", dlerror());
    return;
  }
  RESOLVE(lapacke, spotrf, "LAPACKE_spotrf");
  RESOLVE(lapacke, spotrs, "LAPACKE_spotrs");
  RESOLVE(lapacke, ssyevd, "LAPACKE_ssyevd");
  // OpenBLAS counts CPUs by affinity alone; a cgroup quota can allow fewer.
  if (initial_threads > 0) blas.set_threads(initial_threads);
  else if (!tb_blas_user_threads()) blas.set_threads(tb_available_cpus());
  load_status = 0;
}

int tb_blas_load(void) {
  pthread_once(&load_once, load_libraries);
  return load_status;
}

const char *tb_blas_load_error(void) {
  tb_blas_load();
  return load_error;
}

static void require_blas(void) {
  if (__builtin_expect(tb_blas_load() != 0, 0)) {
    fprintf(stderr, "tributary: %s\n", load_error);
    abort();
  }
}

const char *tb_blas_core_name(void) {
  require_blas();
  return blas.corename();
}

const char *tb_blas_config(void) {
  require_blas();
  return blas.config();
}

const char *tb_blas_library_path(void) {
  require_blas();
  return library_path;
}

tb_core_source tb_blas_core_source(void) {
  tb_blas_load();
  return core_source;
}

const char *tb_blas_requested_core(void) {
  tb_blas_load();
  return requested_core;
}

const char *tb_blas_overridden_core(void) {
  tb_blas_load();
  return overridden_core;
}

int tb_blas_get_threads(void) {
  require_blas();
  return blas.get_threads();
}

void tb_blas_set_threads(int threads) {
  threads_at_load = threads;  // read only if this call is what loads the library
  require_blas();
  blas.set_threads(threads);
}

// MARK: - BLAS

void tb_sgemm(tb_transpose trans_a, tb_transpose trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  require_blas();
  blas.sgemm(CBLAS_ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void tb_sgemv(tb_transpose trans, int m, int n, float alpha, const float *a, int lda,
              const float *x, int incx, float beta, float *y, int incy) {
  require_blas();
  blas.sgemv(CBLAS_ROW_MAJOR, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void tb_saxpy(int n, float alpha, const float *x, int incx, float *y, int incy) {
  require_blas();
  blas.saxpy(n, alpha, x, incx, y, incy);
}

float tb_sdot(int n, const float *x, int incx, const float *y, int incy) {
  require_blas();
  return blas.sdot(n, x, incx, y, incy);
}

float tb_snrm2(int n, const float *x, int incx) {
  require_blas();
  return blas.snrm2(n, x, incx);
}

void tb_sscal(int n, float alpha, float *x, int incx) {
  require_blas();
  blas.sscal(n, alpha, x, incx);
}

// MARK: - LAPACKE

int tb_spotrf(char uplo, int n, float *a, int lda) {
  require_blas();
  return blas.spotrf(LAPACK_ROW_MAJOR, uplo, n, a, lda);
}

int tb_spotrs(char uplo, int n, int nrhs, const float *a, int lda, float *b, int ldb) {
  require_blas();
  return blas.spotrs(LAPACK_ROW_MAJOR, uplo, n, nrhs, a, lda, b, ldb);
}

int tb_ssyevd(char jobz, char uplo, int n, float *a, int lda, float *w) {
  require_blas();
  return blas.ssyevd(LAPACK_ROW_MAJOR, jobz, uplo, n, a, lda, w);
}

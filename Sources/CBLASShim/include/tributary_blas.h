// The one C shim between Tributary and OpenBLAS / LAPACKE.
//
// OpenBLAS picks its kernel set (its "core type") once, while the library
// initialises, from OPENBLAS_CORETYPE or its own CPU detection. So this shim
// never links OpenBLAS: it loads it with dlopen on first use, after choosing
// the core type (see choose_core_type in blas_shim.c). TRIBUTARY_BLAS_CORETYPE,
// the user's explicit setting, always wins.
//
// All matrices are row-major. Integers are OpenBLAS's 32-bit blasint.
#ifndef TRIBUTARY_BLAS_H
#define TRIBUTARY_BLAS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TB_NO_TRANS = 111, TB_TRANS = 112 } tb_transpose;

/// Where the OpenBLAS core type came from.
typedef enum {
  TB_CORE_FROM_LIBRARY = 0,   ///< OpenBLAS's own detection.
  TB_CORE_FROM_USER = 1,      ///< TRIBUTARY_BLAS_CORETYPE, or an inherited OPENBLAS_CORETYPE Tributary kept.
  TB_CORE_FROM_TRIBUTARY = 2, ///< Tributary chose it from the CPU's features.
} tb_core_source;

/// Loads OpenBLAS and LAPACKE once (thread-safe). Returns 0 on success; otherwise
/// tb_blas_load_error() says what is missing. Every routine below calls it.
int tb_blas_load(void);
const char *tb_blas_load_error(void);

/// openblas_get_corename(): the kernel set in use, e.g. "SkylakeX".
const char *tb_blas_core_name(void);
/// openblas_get_config(): build options, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
const char *tb_blas_config(void);
/// The file the BLAS routines were loaded from.
const char *tb_blas_library_path(void);
tb_core_source tb_blas_core_source(void);
/// The core type Tributary asked for, or "" if it asked for none.
const char *tb_blas_requested_core(void);
/// Whether an OpenBLAS core type name is one of its AVX-512 kernel sets (SkylakeX, Cooperlake, SapphireRapids).
int tb_blas_core_is_avx512(const char *name);
/// An inherited OPENBLAS_CORETYPE that Tributary overrode (AVX2 kernels on an AVX-512 CPU), or "".
const char *tb_blas_overridden_core(void);
/// openblas_get_num_threads() / openblas_set_num_threads(). Setting threads before anything loaded the
/// library loads it with exactly that many, so that no idle worker thread starts spinning.
int tb_blas_get_threads(void);
void tb_blas_set_threads(int threads);

/// cblas_sgemm, row-major: C = alpha * op(A) op(B) + beta * C.
void tb_sgemm(tb_transpose trans_a, tb_transpose trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
/// cblas_sgemv, row-major: y = alpha * op(A) x + beta * y.
void tb_sgemv(tb_transpose trans, int m, int n, float alpha, const float *a, int lda,
              const float *x, int incx, float beta, float *y, int incy);
/// cblas_saxpy: y += alpha * x.
void tb_saxpy(int n, float alpha, const float *x, int incx, float *y, int incy);
/// cblas_sdot.
float tb_sdot(int n, const float *x, int incx, const float *y, int incy);
/// cblas_snrm2.
float tb_snrm2(int n, const float *x, int incx);
/// cblas_sscal: x *= alpha.
void tb_sscal(int n, float alpha, float *x, int incx);

/// LAPACKE_spotrf, row-major. Returns LAPACK's info: 0, -i (argument i illegal),
/// or i > 0 (the leading minor of order i is not positive definite).
int tb_spotrf(char uplo, int n, float *a, int lda);
/// LAPACKE_spotrs, row-major: solves A X = B from spotrf's factor.
int tb_spotrs(char uplo, int n, int nrhs, const float *a, int lda, float *b, int ldb);
/// LAPACKE_ssyevd, row-major: eigenvalues ascending in w; eigenvectors in the columns of a if jobz == 'V'.
int tb_ssyevd(char jobz, char uplo, int n, float *a, int lda, float *w);

/// CPU SIMD features, from CPUID and XGETBV (OS support for the register state included).
enum {
  TB_CPU_SSE2 = 1u << 0,
  TB_CPU_AVX = 1u << 1,
  TB_CPU_AVX2 = 1u << 2,
  TB_CPU_FMA = 1u << 3,
  TB_CPU_F16C = 1u << 4,
  TB_CPU_AVX512F = 1u << 5,
  TB_CPU_AVX512DQ = 1u << 6,
  TB_CPU_AVX512CD = 1u << 7,
  TB_CPU_AVX512BW = 1u << 8,
  TB_CPU_AVX512VL = 1u << 9,
  TB_CPU_AVX512_BF16 = 1u << 10,
  TB_CPU_AVX512_FP16 = 1u << 11,
  TB_CPU_AVX512_VNNI = 1u << 12,
  TB_CPU_NEON = 1u << 13,
};
uint32_t tb_cpu_features(void);

/// CPUs this process may use: sched_getaffinity's count, capped by a cgroup v2 CPU quota
/// (/sys/fs/cgroup/cpu.max). At least 1.
int tb_available_cpus(void);
/// BLAS threads the user asked for (OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS), or 0.
/// Otherwise loading sets tb_available_cpus() threads.
int tb_blas_user_threads(void);

/// Keeps freed allocations below 32 MiB in the heap and up to `retained_bytes` of free heap in the
/// process, through glibc's mallopt(M_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD). Returns 0 on
/// success, -1 where the C library has no mallopt or refused a setting.
int tb_retain_freed_memory(size_t retained_bytes);

#ifdef __cplusplus
}
#endif
#endif

#ifndef RAW_MEMORY_H
#define RAW_MEMORY_H
#include <stddef.h>

/// Best-of-`repetitions` rates in GB/s over arrays of `bytes` each, split across `threads` threads.
typedef struct {
    double copy;  /// STREAM's copy, a[i] = b[i]: bytes read plus bytes written.
    double read;  /// A sum over one array: bytes read (what a weight-bound decode step does).
} raw_memory_rates;

/// Returns zeros when the arrays cannot be allocated or a thread cannot start.
raw_memory_rates raw_memory_measure(size_t bytes, int threads, int repetitions);

#endif

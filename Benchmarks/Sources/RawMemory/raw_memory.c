// A STREAM-style measure of the machine's memory bandwidth, the ceiling of a decode step that reads
// every weight once. Plain C and pthreads, so that nothing of Tributary's sits between it and memory.
#include "raw_memory.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    float *destination;
    const float *source;
    size_t count;
    int kind;  // 0 copy, 1 read
    float sum;
    pthread_barrier_t *barrier;
} raw_memory_part;

static double now_seconds(void) {
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec + (double)time.tv_nsec * 1e-9;
}

static void run_part(raw_memory_part *part) {
    if (part->kind == 0) {
        memcpy(part->destination, part->source, part->count * sizeof(float));
        return;
    }
    // Four vector accumulators (GCC/clang vector extensions, SSE or wider), so memory, not the adds, bounds it.
    typedef float lanes __attribute__((vector_size(16)));
    lanes sums[4] = {{0}, {0}, {0}, {0}};
    size_t index = 0;
    for (; index + 16 <= part->count; index += 16) {
        for (int accumulator = 0; accumulator < 4; accumulator++) {
            lanes value;
            memcpy(&value, part->source + index + 4 * accumulator, sizeof value);
            sums[accumulator] += value;
        }
    }
    float total = 0;
    for (; index < part->count; index++) total += part->source[index];
    for (int accumulator = 0; accumulator < 4; accumulator++) {
        for (int lane = 0; lane < 4; lane++) total += sums[accumulator][lane];
    }
    part->sum += total;
}

static void *worker(void *argument) {
    raw_memory_part *part = argument;
    pthread_barrier_wait(part->barrier);  // start together
    run_part(part);
    pthread_barrier_wait(part->barrier);  // finish together
    return NULL;
}

/// Seconds for one pass of `kind` over the arrays, every thread on its own contiguous slice.
static double timed_pass(float *destination, const float *source, size_t count, int threads, int kind, float *sink) {
    raw_memory_part parts[threads];
    pthread_t ids[threads];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
    size_t slice = count / (size_t)threads;
    for (int thread = 0; thread < threads; thread++) {
        size_t start = slice * (size_t)thread;
        size_t length = thread == threads - 1 ? count - start : slice;
        parts[thread] = (raw_memory_part){destination + start, source + start, length, kind, 0, &barrier};
        if (pthread_create(&ids[thread], NULL, worker, &parts[thread]) != 0) {
            // Release the threads already waiting: they run once, unmeasured.
            for (int waiting = thread; waiting < threads; waiting++) pthread_barrier_wait(&barrier);
            return -1;
        }
    }
    pthread_barrier_wait(&barrier);
    double start = now_seconds();
    pthread_barrier_wait(&barrier);
    double elapsed = now_seconds() - start;
    for (int thread = 0; thread < threads; thread++) {
        pthread_join(ids[thread], NULL);
        *sink += parts[thread].sum;
    }
    pthread_barrier_destroy(&barrier);
    return elapsed;
}

raw_memory_rates raw_memory_measure(size_t bytes, int threads, int repetitions) {
    raw_memory_rates rates = {0, 0};
    if (threads < 1 || threads > 256 || repetitions < 1) return rates;
    size_t count = bytes / sizeof(float);
    float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float));
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return rates;
    }
    for (size_t index = 0; index < count; index++) {  // touch every page before timing
        a[index] = 0;
        b[index] = (float)(index & 1023);
    }
    float sink = 0;
    for (int repetition = 0; repetition < repetitions; repetition++) {
        double copy = timed_pass(a, b, count, threads, 0, &sink);
        double read = timed_pass(a, b, count, threads, 1, &sink);
        if (copy > 0 && 2.0 * (double)bytes / copy * 1e-9 > rates.copy) rates.copy = 2.0 * (double)bytes / copy * 1e-9;
        if (read > 0 && (double)bytes / read * 1e-9 > rates.read) rates.read = (double)bytes / read * 1e-9;
    }
    if (sink == -1) rates.read += 0;  // keeps the sums alive
    free(a);
    free(b);
    return rates;
}

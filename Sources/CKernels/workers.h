// A small persistent pool of worker threads for the kernels that split one call across cores
// (internal to CKernels; workers.c).
#ifndef TRIBUTARY_WORKERS_H
#define TRIBUTARY_WORKERS_H

#include <stddef.h>

/// One part of a split call: `part` of `parts`, on the context the caller passed.
typedef void (*tk_part_fn)(void *context, size_t part, size_t parts);

/// Runs body(context, p, parts) once for each p in 0..<parts and returns when all are done: part 0
/// on the calling thread, part p on worker p - 1 unless the caller gets to it first (a worker not
/// yet running its post, a pool busy with another caller), so a part's result must not depend on
/// the thread that runs it.
void tk_workers_run(tk_part_fn body, void *context, size_t parts);

#endif

// A small persistent pool of worker threads for the kernels that split one call across cores
// (internal to CKernels; workers.c).
#ifndef TRIBUTARY_WORKERS_H
#define TRIBUTARY_WORKERS_H

#include <stddef.h>

/// One part of a split call: `part` of `parts`, on the context the caller passed.
typedef void (*tk_part_fn)(void *context, size_t part, size_t parts);

/// Runs body(context, p, parts) once for each p in 0..<parts, on the calling thread and on pool
/// workers (whichever claims a part first runs it), and returns when all are done. When the pool is
/// busy with another caller the calling thread runs every part itself, so a part's result must not
/// depend on the thread that runs it.
void tk_workers_run(tk_part_fn body, void *context, size_t parts);

#endif

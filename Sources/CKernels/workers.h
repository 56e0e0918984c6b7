// A small persistent pool of worker threads for the kernels that split one call across cores
// (internal to CKernels; workers.c).
#ifndef TRIBUTARY_WORKERS_H
#define TRIBUTARY_WORKERS_H

#include <stddef.h>

/// One part of a split call: `part` of `parts`, on the context the caller passed.
typedef void (*tk_part_fn)(void *context, size_t part, size_t parts);

/// Runs body(context, p, parts) for p in 0..<parts, part 0 on the calling thread and the others on
/// pool workers, and returns when all are done. When the pool is busy with another caller (or a
/// worker cannot be started) the calling thread runs every part itself, in order, so callers must
/// not depend on which thread runs a part.
void tk_workers_run(tk_part_fn body, void *context, size_t parts);

#endif

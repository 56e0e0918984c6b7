// The kernels' worker pool: threads started on first use that stay alive for the process.
//
// Each worker has a mailbox (the job and a generation counter). The caller fills the mailboxes of
// the workers it needs, bumps their generations and runs part 0 itself; a worker spins on its
// generation for a while after each part (decode calls the pool every few microseconds, and a
// futex wake costs tens of them), then parks on a futex, so an idle pool costs no CPU. One caller
// uses the pool at a time; another caller meanwhile runs its parts itself (the results do not
// depend on which thread runs a part).
#define _GNU_SOURCE
#include "workers.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TK_MAX_WORKERS 63
/// How long a worker spins for its next part before parking, in nanoseconds.
#define TK_SPIN_NANOSECONDS 200000

typedef struct {
  _Alignas(64) _Atomic uint32_t generation;  // bumped by the caller for each new part
  _Atomic uint32_t finished;                 // set to `generation` by the worker when its part is done
  _Atomic uint32_t parked;                   // 1 while the worker sleeps on the futex
  tk_part_fn body;
  void *context;
  size_t part, parts;
} mailbox;

static mailbox mailboxes[TK_MAX_WORKERS];
static size_t started;  // workers running; grows under pool_lock
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void cpu_relax(void) {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

static uint64_t now_nanoseconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *worker_main(void *argument) {
  mailbox *box = argument;
  uint32_t seen = 0;
  for (;;) {
    uint32_t generation = atomic_load_explicit(&box->generation, memory_order_acquire);
    if (generation == seen) {
      uint64_t deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
      for (unsigned spins = 1; generation == seen; spins++) {
        cpu_relax();
        generation = atomic_load_explicit(&box->generation, memory_order_acquire);
        if (generation != seen || (spins & 255) != 0 || now_nanoseconds() < deadline) continue;
        // Park. The caller bumps the generation before reading `parked`, and we set `parked` before
        // reading the generation (both sequentially consistent), so a wake-up cannot be missed.
        atomic_store(&box->parked, 1);
        if (atomic_load(&box->generation) == seen) futex_wait(&box->generation, seen);
        atomic_store(&box->parked, 0);
        generation = atomic_load_explicit(&box->generation, memory_order_acquire);
        deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
      }
    }
    seen = generation;
    box->body(box->context, box->part, box->parts);
    atomic_store_explicit(&box->finished, generation, memory_order_release);
  }
  return NULL;
}

/// Starts workers until `wanted` run (or none more can be started); returns how many run. Under pool_lock.
static size_t ensure_workers(size_t wanted) {
  if (wanted > TK_MAX_WORKERS) wanted = TK_MAX_WORKERS;
  while (started < wanted) {
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    pthread_t thread;
    int failed = pthread_create(&thread, &attributes, worker_main, &mailboxes[started]);
    pthread_attr_destroy(&attributes);
    if (failed) break;
    started++;
  }
  return started;
}

void tk_workers_run(tk_part_fn body, void *context, size_t parts) {
  if (parts == 0) return;
  size_t helpers = 0;
  if (parts > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
    helpers = ensure_workers(parts - 1);
    if (helpers > parts - 1) helpers = parts - 1;
    if (helpers == 0) pthread_mutex_unlock(&pool_lock);
  }
  if (helpers == 0) {
    for (size_t p = 0; p < parts; p++) body(context, p, parts);
    return;
  }
  uint32_t generations[TK_MAX_WORKERS];
  for (size_t w = 0; w < helpers; w++) {
    mailbox *box = &mailboxes[w];
    box->body = body;
    box->context = context;
    box->part = w + 1;
    box->parts = parts;
    generations[w] = atomic_load_explicit(&box->generation, memory_order_relaxed) + 1;
    atomic_store(&box->generation, generations[w]);
    if (atomic_load(&box->parked)) futex_wake(&box->generation);
  }
  body(context, 0, parts);
  for (size_t p = helpers + 1; p < parts; p++) body(context, p, parts);  // parts beyond the workers started
  for (size_t w = 0; w < helpers; w++)
    while (atomic_load_explicit(&mailboxes[w].finished, memory_order_acquire) != generations[w]) cpu_relax();
  pthread_mutex_unlock(&pool_lock);
}

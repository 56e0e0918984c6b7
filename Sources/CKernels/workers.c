// The kernels' worker pool: threads started on first use that stay alive for the process.
//
// A call hands part p (p >= 1) to worker p - 1 through that worker's mailbox, one cache line that
// carries the whole job, and runs part 0 itself. A worker spins on its mailbox a while after each
// part (decoding calls the pool every few microseconds and a futex wake costs tens of them), then
// parks on a futex, so an idle pool costs no CPU. When the caller is done with its own part it
// takes back any post that its worker has not picked up yet (parked, or descheduled on a busy
// machine) and runs that part itself, so it only ever waits for a worker that is already running.
// One caller uses the pool at a time; another caller meanwhile runs its parts itself.
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
/// How long a worker spins for its next part before parking, in nanoseconds. On a virtual machine a parked
/// worker's CPU halts, and waking it costs the hypervisor's wake-up on top of the futex: measured on the
/// decode workload at 2 threads, 200 us of spinning gave a median of about 5,300 tokens/s, 500 us about 7,200
/// and 2 ms about 7,400 (docs/PERFORMANCE.md). It costs at most this much CPU after a burst of products.
#define TK_SPIN_NANOSECONDS 2000000

/// A mailbox's state: the caller posts (IDLE -> POSTED) and may take a post back (POSTED -> IDLE);
/// the worker takes it (POSTED -> RUNNING) and reports it done (RUNNING -> IDLE).
enum { IDLE, POSTED, RUNNING };

typedef struct {
  _Alignas(64) _Atomic uint32_t state;  // also the futex word a parked worker sleeps on
  _Atomic uint32_t parked;              // 1 while the worker sleeps
  tk_part_fn body;                      // the posted part: written by the caller before POSTED
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

static void *worker_main(void *argument) {
  mailbox *box = argument;
  for (;;) {
    uint64_t deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
    for (unsigned spins = 1;; spins++) {
      uint32_t expected = POSTED;
      if (atomic_load_explicit(&box->state, memory_order_relaxed) == POSTED &&
          atomic_compare_exchange_strong_explicit(&box->state, &expected, RUNNING, memory_order_acquire,
                                                  memory_order_relaxed))
        break;
      cpu_relax();
      if ((spins & 255) != 0 || now_nanoseconds() < deadline) continue;
      // Park. The caller posts, then reads `parked`; we set `parked`, then read the state (all
      // sequentially consistent), so a post cannot be missed.
      atomic_store(&box->parked, 1);
      if (atomic_load(&box->state) == IDLE)
        syscall(SYS_futex, (uint32_t *)&box->state, FUTEX_WAIT_PRIVATE, IDLE, NULL, NULL, 0);
      atomic_store(&box->parked, 0);
      deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
    }
    box->body(box->context, box->part, box->parts);
    atomic_store_explicit(&box->state, IDLE, memory_order_release);
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
  size_t helpers = 0;
  if (parts > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
    helpers = ensure_workers(parts - 1);
    if (helpers > parts - 1) helpers = parts - 1;
    if (helpers == 0) pthread_mutex_unlock(&pool_lock);
  }
  for (size_t w = 0; w < helpers; w++) {
    mailbox *box = &mailboxes[w];
    box->body = body;
    box->context = context;
    box->part = w + 1;
    box->parts = parts;
    atomic_store(&box->state, POSTED);
    if (atomic_load(&box->parked))
      syscall(SYS_futex, (uint32_t *)&box->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
  body(context, 0, parts);
  for (size_t p = helpers + 1; p < parts; p++) body(context, p, parts);  // parts beyond the workers started
  for (size_t w = 0; w < helpers; w++) {
    mailbox *box = &mailboxes[w];
    uint32_t expected = POSTED;
    if (atomic_compare_exchange_strong(&box->state, &expected, IDLE)) {
      body(context, w + 1, parts);  // not picked up yet: taken back
      continue;
    }
    while (atomic_load_explicit(&box->state, memory_order_acquire) != IDLE) cpu_relax();
  }
  if (helpers > 0) pthread_mutex_unlock(&pool_lock);
}

// The kernels' worker pool: threads started on first use that stay alive for the process.
//
// A call posts its job in the mailboxes of the workers it wants and then claims parts itself, one
// at a time from a shared counter, as do the workers that pick the job up; so a worker that is
// slow to wake (parked, or descheduled on a busy machine) costs nothing: the caller runs its parts.
// When no part is left the caller takes back the posts no worker picked up and waits only for the
// workers that did. A worker spins for its next job a while (decoding calls the pool every few
// microseconds and a futex wake costs tens of them), then parks on a futex, so an idle pool costs
// no CPU. One caller uses the pool at a time; another caller meanwhile runs its parts itself.
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
/// How long a worker spins for its next job before parking, in nanoseconds.
#define TK_SPIN_NANOSECONDS 200000

typedef struct {
  tk_part_fn body;
  void *context;
  size_t parts;
  _Atomic size_t next_part;  // the next part to claim
  _Atomic size_t active;     // posts not yet taken back by the caller or finished by a worker
} job;

typedef struct {
  _Alignas(64) _Atomic(job *) posted;  // a job for this worker, or NULL
  _Atomic uint32_t signal;             // bumped after each post: the futex word
  _Atomic uint32_t parked;             // 1 while the worker sleeps on the futex
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

/// Runs the parts of `work` that are left, one at a time.
static void run_parts(job *work) {
  for (;;) {
    size_t part = atomic_fetch_add_explicit(&work->next_part, 1, memory_order_relaxed);
    if (part >= work->parts) return;
    work->body(work->context, part, work->parts);
  }
}

static void *worker_main(void *argument) {
  mailbox *box = argument;
  for (;;) {
    uint64_t deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
    job *work = NULL;
    for (unsigned spins = 1;; spins++) {
      if (atomic_load_explicit(&box->posted, memory_order_relaxed) != NULL) {
        work = atomic_exchange_explicit(&box->posted, NULL, memory_order_acquire);
        if (work != NULL) break;  // else the caller took it back
      }
      cpu_relax();
      if ((spins & 255) != 0 || now_nanoseconds() < deadline) continue;
      // Park. The caller posts, bumps `signal`, then reads `parked`; we set `parked`, then read
      // `posted` (all sequentially consistent), so a post cannot be missed.
      uint32_t signal = atomic_load(&box->signal);
      atomic_store(&box->parked, 1);
      if (atomic_load(&box->posted) == NULL)
        syscall(SYS_futex, (uint32_t *)&box->signal, FUTEX_WAIT_PRIVATE, signal, NULL, NULL, 0);
      atomic_store(&box->parked, 0);
      deadline = now_nanoseconds() + TK_SPIN_NANOSECONDS;
    }
    run_parts(work);
    atomic_fetch_sub_explicit(&work->active, 1, memory_order_release);  // the last touch of the job
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
  job work = {body, context, parts, 0, 0};
  size_t helpers = 0;
  if (parts > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
    helpers = ensure_workers(parts - 1);
    if (helpers > parts - 1) helpers = parts - 1;
    if (helpers == 0) pthread_mutex_unlock(&pool_lock);
  }
  atomic_store_explicit(&work.active, helpers, memory_order_relaxed);
  for (size_t w = 0; w < helpers; w++) {
    mailbox *box = &mailboxes[w];
    atomic_store(&box->posted, &work);
    atomic_fetch_add(&box->signal, 1);
    if (atomic_load(&box->parked))
      syscall(SYS_futex, (uint32_t *)&box->signal, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
  run_parts(&work);
  if (helpers == 0) return;
  for (size_t w = 0; w < helpers; w++) {
    job *expected = &work;
    if (atomic_compare_exchange_strong(&mailboxes[w].posted, &expected, NULL))
      atomic_fetch_sub_explicit(&work.active, 1, memory_order_relaxed);  // never picked up
  }
  while (atomic_load_explicit(&work.active, memory_order_acquire) != 0) cpu_relax();
  pthread_mutex_unlock(&pool_lock);
}

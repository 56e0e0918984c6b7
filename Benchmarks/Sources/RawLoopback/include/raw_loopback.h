// The floor under any protocol's round trip on this machine: two threads ping-ponging a payload over a
// loopback TCP connection with blocking epoll, as an event loop does, and nothing else.
#ifndef RAW_LOOPBACK_H
#define RAW_LOOPBACK_H
#include <stddef.h>

// Runs round trips of `payload` bytes (1 to 65536) for `warmup_seconds`, then `seconds`; stores up to
// `capacity` latencies (microseconds, in order) in `latencies` and returns how many, or -1 on a socket error.
long raw_loopback_round_trips(int payload, double warmup_seconds, double seconds, double *latencies, long capacity);

// A thread at the lowest priority (nice 19) that spins until stopped: it keeps a virtual CPU from parking, so
// that wake-ups do not wait for the hypervisor; any runnable thread of real work preempts it.
void raw_awake_spinner_start(void);
void raw_awake_spinner_stop(void);
#endif

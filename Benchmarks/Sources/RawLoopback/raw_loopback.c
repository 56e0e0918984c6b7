#define _GNU_SOURCE
#include "raw_loopback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

// Reads exactly `count` bytes, waiting in epoll_wait whenever none are there.
static int read_all(int fd, int epoll, char *buffer, int count) {
    int got = 0;
    while (got < count) {
        ssize_t n = read(fd, buffer + got, count - got);
        if (n > 0) { got += (int)n; continue; }
        if (n == 0) return -1;
        struct epoll_event event;
        if (epoll_wait(epoll, &event, 1, -1) < 0) return -1;
    }
    return 0;
}

static int watch(int fd) {
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    return epoll;
}

struct echo_server { int listener; int payload; };

static void *echo(void *argument) {
    struct echo_server *server = argument;
    int fd = accept(server->listener, NULL, NULL);
    if (fd < 0) return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int epoll = watch(fd);
    char *buffer = malloc(server->payload);
    while (read_all(fd, epoll, buffer, server->payload) == 0) {
        if (write(fd, buffer, server->payload) != server->payload) break;
    }
    free(buffer);
    close(epoll);
    close(fd);
    return NULL;
}

long raw_loopback_round_trips(int payload, double warmup_seconds, double seconds, double *latencies, long capacity) {
    if (payload < 1 || payload > 65536) return -1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 1) < 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) < 0) return -1;
    struct echo_server server = {listener, payload};
    pthread_t thread;
    pthread_create(&thread, NULL, echo, &server);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int epoll = watch(fd);
    char *buffer = calloc(payload, 1);
    long count = 0;
    double start = now_us(), measured = start + warmup_seconds * 1e6, end = measured + seconds * 1e6;
    for (double sent = start; sent < end && count < capacity; sent = now_us()) {
        if (write(fd, buffer, payload) != payload || read_all(fd, epoll, buffer, payload) != 0) { count = -1; break; }
        if (sent >= measured) latencies[count++] = now_us() - sent;
    }
    free(buffer);
    close(epoll);
    close(fd);
    pthread_join(thread, NULL);
    close(listener);
    return count;
}

static atomic_bool spinning;
static pthread_t spinner;

static void *spin(void *unused) {
    (void)unused;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    while (atomic_load_explicit(&spinning, memory_order_relaxed)) {}
    return NULL;
}

void raw_awake_spinner_start(void) {
    atomic_store(&spinning, true);
    pthread_create(&spinner, NULL, spin, NULL);
}

void raw_awake_spinner_stop(void) {
    atomic_store(&spinning, false);
    pthread_join(spinner, NULL);
}

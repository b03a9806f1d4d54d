/*
 * The event loop: edge-triggered epoll over non-blocking sockets.
 *
 * Output is only queued while events are dispatched; every connection with
 * pending bytes is flushed once at the end of the loop turn, so the packets
 * one turn produces for a socket leave in as few write(2) calls as the kernel
 * allows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

enum {
    MAX_EVENTS = 512,
    READ_CHUNK = 64 * 1024,
};

static int epoll_fd = -1;
static struct epoll_event events[MAX_EVENTS];
static conn_t **registry;
static uint32_t registry_len;
static uint32_t registry_cap;
static conn_t **dirty;
static size_t dirty_len;
static struct sockaddr_in broker_addr;

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void loop_init(int max_conns)
{
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1 failed: %s", strerror(errno));
    registry_cap = (uint32_t)max_conns;
    registry = calloc(registry_cap, sizeof *registry);
    /* A connection can be re-queued once while the list is walked. */
    dirty = calloc(2 * (size_t)registry_cap, sizeof *dirty);
    if (!registry || !dirty)
        die("out of memory for %d connections", max_conns);

    memset(&broker_addr, 0, sizeof broker_addr);
    broker_addr.sin_family = AF_INET;
    broker_addr.sin_port = htons((uint16_t)g_opts.port);
    if (inet_pton(AF_INET, g_opts.host, &broker_addr.sin_addr) != 1)
        die("invalid IPv4 address %s for --host", g_opts.host);
}

static void mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        dirty[dirty_len++] = c;
    }
}

bool conn_start(conn_t *c)
{
    if (!c->slot) {
        if (registry_len == registry_cap)
            die("more connections than the %u the loop was sized for",
                registry_cap);
        registry[registry_len++] = c;
        c->slot = registry_len;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    c->fd = fd;
    c->gen++;
    c->state = CS_CONNECTING;
    c->writable = false;
    c->close_errno = 0;
    c->in.len = 0;
    c->out.len = 0;

    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = ((uint64_t)c->slot << 32) | c->gen,
    };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl ADD failed: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&broker_addr, sizeof broker_addr) < 0 &&
        errno != EINPROGRESS) {
        int err = errno;
        conn_close(c);
        c->close_errno = err;
        errno = err;
        return false;
    }
    return true;
}

buf_t *conn_outbuf(conn_t *c)
{
    mark_dirty(c);
    return &c->out;
}

void conn_queue(conn_t *c, const void *bytes, size_t n)
{
    buf_append(conn_outbuf(c), bytes, n);
}

void conn_close(conn_t *c)
{
    if (c->state == CS_IDLE || c->state == CS_CLOSED)
        return;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CS_CLOSED;
    c->writable = false;
    c->in.len = 0;
    c->out.len = 0;
    c->gen++;
}

/* Close after the peer closed or the socket failed, and tell the scenario. */
static void conn_lost(conn_t *c, int err)
{
    conn_close(c);
    c->close_errno = err;
    if (c->on_close)
        c->on_close(c);
}

/* Dispatch every whole packet in c->in; stop if a callback closes c. */
static void parse_input(conn_t *c)
{
    uint32_t gen = c->gen;
    size_t pos = 0;
    while (c->gen == gen) {
        const uint8_t *p = c->in.data + pos;
        size_t avail = c->in.len - pos;
        if (avail < 2)
            break;
        uint32_t remaining = 0;
        size_t n = 0;
        bool complete = false;
        for (; n < 4 && 1 + n < avail; n++) {
            remaining |= (uint32_t)(p[1 + n] & 0x7F) << (7 * n);
            if (!(p[1 + n] & 0x80)) {
                complete = true;
                n++;
                break;
            }
        }
        if (!complete) {
            if (n == 4) {
                conn_lost(c, EPROTO);
                return;
            }
            break;
        }
        size_t total = 1 + n + remaining;
        if (avail < total)
            break;
        c->on_packet(c, p[0], p + 1 + n, remaining);
        pos += total;
    }
    if (c->gen == gen)
        buf_consume(&c->in, pos);
}

static void handle_readable(conn_t *c, bool hung_up)
{
    uint32_t gen = c->gen;
    for (;;) {
        buf_reserve(&c->in, READ_CHUNK);
        size_t space = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.data + c->in.len, space);
        if (n > 0) {
            c->in.len += (size_t)n;
            parse_input(c);
            if (c->gen != gen)
                return;
            /* A short read drained the socket and new bytes raise a new
             * edge, but an end of stream already signalled would not. */
            if ((size_t)n < space && !hung_up)
                return;
            continue;
        }
        if (n == 0) {
            conn_lost(c, 0);
            return;
        }
        if (errno == EAGAIN)
            return;
        if (errno == EINTR)
            continue;
        conn_lost(c, errno);
        return;
    }
}

static void handle_connected(conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        conn_lost(c, err);
        return;
    }
    c->state = CS_OPEN;
    c->writable = true;
    if (c->out.len)
        mark_dirty(c); /* bytes queued while the handshake was running */
    if (c->on_open)
        c->on_open(c);
}

static void flush(conn_t *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + off, c->out.len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->writable = false;
            break;
        }
        buf_consume(&c->out, off);
        conn_lost(c, n < 0 ? errno : EPIPE);
        return;
    }
    buf_consume(&c->out, off);
}

static void flush_dirty(void)
{
    /* A flush may close a connection whose callback queues more output, so
     * walk by index and let the list grow while walking. */
    for (size_t i = 0; i < dirty_len; i++) {
        conn_t *c = dirty[i];
        c->dirty = false;
        if (c->state == CS_OPEN && c->writable && c->out.len)
            flush(c);
    }
    dirty_len = 0;
}

/* Sleep out the rest of a --turn-us turn that started at turn_start. */
static void pace(void)
{
    static uint64_t turn_start;
    uint64_t turn_ns = (uint64_t)(g_opts.turn_us * 1e3);
    uint64_t now = now_ns();
    if (turn_ns && now - turn_start < turn_ns) {
        uint64_t rest = turn_ns - (now - turn_start);
        struct timespec ts = {0, (long)rest};
        nanosleep(&ts, NULL);
        now = now_ns();
    }
    turn_start = now;
}

void loop_turn(uint64_t timeout_ns)
{
    flush_dirty();
    if (timeout_ns)
        pace();
    struct timespec ts = {
        .tv_sec = (time_t)(timeout_ns / 1000000000u),
        .tv_nsec = (long)(timeout_ns % 1000000000u),
    };
    int n = epoll_pwait2(epoll_fd, events, MAX_EVENTS, &ts, NULL);
    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_pwait2 failed: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        uint32_t slot = (uint32_t)(events[i].data.u64 >> 32);
        uint32_t gen = (uint32_t)events[i].data.u64;
        conn_t *c = registry[slot - 1];
        if (c->gen != gen)
            continue; /* the socket this event was for is gone */
        uint32_t ev = events[i].events;

        if (c->state == CS_CONNECTING) {
            if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                continue;
            handle_connected(c);
            if (c->gen != gen)
                continue;
        } else if (ev & EPOLLOUT) {
            c->writable = true;
            if (c->out.len)
                mark_dirty(c);
        }
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            handle_readable(c, ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    }
    flush_dirty();
}

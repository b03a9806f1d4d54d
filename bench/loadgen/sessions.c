/*
 * connect: open --count connections, --concurrency at a time; each sends one
 * pre-encoded CONNECT, waits for CONNACK and, on success, sends DISCONNECT and
 * closes.  Tokens for the jwt authenticator come from a file, one a line, and
 * connection i uses token i (modulo the file's length), so a cache of
 * verified tokens only helps when the file repeats tokens or with
 * --same-token.  --warmup-conns connections run first and are not counted;
 * they take the file's first tokens, so the measured ones start after them.
 *
 * idle: open --count connections that stay connected, and read the broker's
 * VmRSS from /proc/PID/status before and after, giving bytes per connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadgen.h"
#include "options.h"

enum { SLOT_FREE, SLOT_WAITING, SLOT_CLOSING, SLOT_HELD };
enum { TIMEOUT_SCAN_NS = 100 * 1000 * 1000 };

typedef struct {
    int concurrency;
    int warmup_conns;
    int keep_alive;
    const char *tokens_path;
    bool same_token;
    const char *auth;
    const char *username;
    const char *method;
    double settle;

    buf_t *connects; /* pre-encoded CONNECT per connection number */
    size_t total;    /* warm-up plus measured connections */
    size_t next;     /* next connection number to start */
    size_t done;     /* connections finished (success or failure) */
    size_t waiting;  /* connections waiting for CONNACK */
    size_t measure_from;
    uint64_t succeeded;
    uint64_t failed;
    uint64_t timeouts;
    uint64_t closed_early;
    int first_failure_code;
    uint64_t *handshake_ns; /* CONNECT to CONNACK, per measured success */
    size_t handshakes;
    bool hold; /* idle: keep connections open after CONNACK */
} sessions_t;

static sessions_t T;

static void check_auth_options(void)
{
    if (strcmp(T.auth, "none") && strcmp(T.auth, "password") &&
        strcmp(T.auth, "enhanced"))
        die("--auth must be none, password or enhanced, not %s", T.auth);
    if (!strcmp(T.auth, "enhanced") && g_opts.version != 5)
        die("--auth enhanced needs --mqtt 5");
    if (strcmp(T.auth, "none") && !T.tokens_path)
        die("--auth %s needs --tokens FILE", T.auth);
}

static void build_connects(void)
{
    char **tokens = NULL;
    size_t token_count = 0;
    if (strcmp(T.auth, "none"))
        tokens = read_lines(T.tokens_path, &token_count);

    T.connects = calloc(T.total, sizeof *T.connects);
    if (!T.connects)
        die("out of memory for %zu CONNECT packets", T.total);
    for (size_t i = 0; i < T.total; i++) {
        char client_id[96];
        snprintf(client_id, sizeof client_id, "%s-c-%zu", g_opts.prefix, i);
        connect_opts_t o = {
            .version = g_opts.version,
            .client_id = client_id,
            .keep_alive = (uint16_t)T.keep_alive,
        };
        const char *token =
            tokens ? tokens[T.same_token ? 0 : i % token_count] : NULL;
        if (token && !strcmp(T.auth, "password")) {
            o.username = T.username;
            o.password = (const uint8_t *)token;
            o.password_len = strlen(token);
        } else if (token) {
            o.auth_method = T.method;
            o.auth_data = (const uint8_t *)token;
            o.auth_data_len = strlen(token);
        }
        encode_connect(&T.connects[i], &o);
    }
    for (size_t i = 0; i < token_count; i++)
        free(tokens[i]);
    free(tokens);
}

static bool measured(const conn_t *c)
{
    return c->mark >= T.measure_from;
}

static void finish(conn_t *c, bool ok)
{
    if (measured(c)) {
        if (ok)
            T.succeeded++;
        else
            T.failed++;
    }
    T.done++;
    T.waiting--;
}

static void note_failure(int code)
{
    if (!T.first_failure_code)
        T.first_failure_code = code;
}

static void on_open(conn_t *c)
{
    const buf_t *packet = &T.connects[c->mark];
    conn_queue(c, packet->data, packet->len);
}

static void on_close(conn_t *c)
{
    if (c->phase == SLOT_WAITING) {
        if (measured(c))
            T.closed_early++;
        note_failure(0x300);
        finish(c, false);
    } else if (c->phase == SLOT_HELD && measured(c)) {
        T.closed_early++;
    }
    c->phase = SLOT_FREE;
}

static void on_packet(conn_t *c, uint8_t header, const uint8_t *body,
                      size_t len)
{
    if (c->phase != SLOT_WAITING)
        return;
    int type = header >> 4;
    int code = type == PT_CONNACK ? decode_connack_code(body, len) : -1;
    if (code == 0) {
        if (measured(c) && T.handshake_ns)
            T.handshake_ns[T.handshakes++] = now_ns() - c->t0;
        finish(c, true);
        if (T.hold) {
            c->phase = SLOT_HELD;
            return;
        }
        encode_disconnect(conn_outbuf(c));
        c->phase = SLOT_CLOSING;
        return;
    }
    /* A CONNACK code, or 0x100 plus the type of another packet. */
    note_failure(type == PT_CONNACK ? code : 0x100 | type);
    finish(c, false);
    conn_close(c);
    c->phase = SLOT_FREE;
}

/* Start connection number T.next in c. */
static void start(conn_t *c)
{
    c->mark = T.next++;
    c->t0 = now_ns();
    c->phase = SLOT_WAITING;
    c->on_open = on_open;
    c->on_packet = on_packet;
    c->on_close = on_close;
    T.waiting++;
    if (!conn_start(c)) {
        note_failure(0x200);
        finish(c, false);
        c->phase = SLOT_FREE;
    }
}

/* Close connections that waited longer than --timeout for CONNACK. */
static void expire_waiting(conn_t *slots, size_t count, uint64_t now)
{
    uint64_t timeout_ns = (uint64_t)(g_opts.timeout * 1e9);
    for (size_t i = 0; i < count; i++) {
        conn_t *c = &slots[i];
        if (c->phase != SLOT_WAITING || now - c->t0 <= timeout_ns)
            continue;
        if (measured(c))
            T.timeouts++;
        note_failure(0x400);
        finish(c, false);
        conn_close(c);
        c->phase = SLOT_FREE;
    }
}

/* connect: recycle --concurrency slots until connection `until` is done. */
static void cycle_until(conn_t *slots, size_t until)
{
    uint64_t last_scan = now_ns();
    while (T.done < until) {
        for (int i = 0; i < T.concurrency; i++) {
            conn_t *c = &slots[i];
            if (c->phase == SLOT_CLOSING && c->out.len == 0) {
                conn_close(c);
                c->phase = SLOT_FREE;
            }
            if (c->phase == SLOT_FREE && T.next < until)
                start(c);
        }
        loop_turn(1000 * 1000);
        uint64_t now = now_ns();
        if (now - last_scan > TIMEOUT_SCAN_NS) {
            expire_waiting(slots, (size_t)T.concurrency, now);
            last_scan = now;
        }
    }
}

/* idle: open connections up to `until`, each in its own slot, and keep them. */
static void open_until(conn_t *conns, size_t until)
{
    uint64_t last_scan = now_ns();
    while (T.done < until) {
        while (T.next < until && T.waiting < (size_t)T.concurrency)
            start(&conns[T.next]);
        loop_turn(1000 * 1000);
        uint64_t now = now_ns();
        if (now - last_scan > TIMEOUT_SCAN_NS) {
            expire_waiting(conns, T.next, now);
            last_scan = now;
        }
    }
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *sorted, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i] / 1e3;
}

static void report_common(void)
{
    json_int("connections", (long long)(T.total - T.measure_from));
    json_int("concurrency", T.concurrency);
    json_str("auth", T.auth);
    json_bool("same_token", T.same_token);
    json_int("succeeded", (long long)T.succeeded);
    json_int("failed", (long long)T.failed);
    json_int("timeouts", (long long)T.timeouts);
    json_int("closed_by_broker", (long long)T.closed_early);
    json_int("first_failure_code", T.first_failure_code);
}

static const option_t *session_options(bool with_auth)
{
    static option_t table[16];
    const option_t common[] = {
        {"concurrency", 'i', &T.concurrency, "connections opening at once"},
        {"warmup-conns", 'i', &T.warmup_conns,
         "connections made first and not counted"},
        {"keep-alive", 'i', &T.keep_alive, "Keep Alive, seconds"},
        {"settle", 'd', &T.settle, "idle: seconds to wait before VmRSS"},
    };
    const option_t auth[] = {
        {"auth", 's', &T.auth, "none, password (User Name + token) or "
                               "enhanced (5.0 Authentication Method)"},
        {"tokens", 's', &T.tokens_path, "file with one token a line"},
        {"same-token", 'b', &T.same_token, "every connection uses token 1"},
        {"username", 's', &T.username, "User Name sent with --auth password"},
        {"method", 's', &T.method, "Authentication Method, --auth enhanced"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        table[n++] = common[i];
    for (size_t i = 0; with_auth && i < sizeof auth / sizeof *auth; i++)
        table[n++] = auth[i];
    table[n] = (option_t){NULL, 0, NULL, NULL};
    return table;
}

static void defaults(uint64_t count, int concurrency, int warmup)
{
    T = (sessions_t){
        .concurrency = concurrency,
        .warmup_conns = warmup,
        .keep_alive = 600,
        .auth = "none",
        .username = "JWT",
        .method = "JWT",
        .settle = 1.0,
    };
    g_opts.count = count;
}

int run_connect(int argc, char **argv)
{
    defaults(2000, 50, 50);
    parse_options(argc, argv, "connect", session_options(true));
    check_auth_options();
    if (T.concurrency < 1)
        die("--concurrency must be >= 1");
    raise_fd_limit(T.concurrency + 64);

    T.measure_from = (size_t)T.warmup_conns;
    T.total = T.measure_from + g_opts.count;
    build_connects();
    T.handshake_ns = calloc(g_opts.count, sizeof *T.handshake_ns);
    conn_t *slots = calloc((size_t)T.concurrency, sizeof *slots);
    loop_init(T.concurrency);

    cpu_mark_t whole = cpu_mark();
    cycle_until(slots, T.measure_from);
    cpu_mark_t start = cpu_mark();
    double broker_start = read_cpu_seconds(g_opts.broker_pid);
    cycle_until(slots, T.total);
    cpu_mark_t end = cpu_mark();
    double broker_end = read_cpu_seconds(g_opts.broker_pid);
    for (int i = 0; i < T.concurrency; i++)
        conn_close(&slots[i]);

    double elapsed = (end.wall_ns - start.wall_ns) / 1e9;
    double cpu = (end.user_s + end.sys_s) - (start.user_s + start.sys_s);
    qsort(T.handshake_ns, T.handshakes, sizeof *T.handshake_ns, compare_u64);
    json_begin("connect");
    report_common();
    json_num("elapsed_s", elapsed);
    json_num("connects_per_s", elapsed > 0 ? T.succeeded / elapsed : 0);
    json_num("connack_p50_us",
             percentile_us(T.handshake_ns, T.handshakes, 0.50));
    json_num("connack_p99_us",
             percentile_us(T.handshake_ns, T.handshakes, 0.99));
    json_num("loadgen_window_cpu_fraction", elapsed > 0 ? cpu / elapsed : 0);
    json_broker_cpu(broker_start, broker_end, elapsed, (double)T.succeeded,
                    "connects_per_broker_cpu_s");
    json_bool("ok", T.failed == 0);
    json_end(whole);
    return T.failed ? 1 : 0;
}

static void sleep_in_loop(double seconds)
{
    uint64_t until = now_ns() + (uint64_t)(seconds * 1e9);
    for (uint64_t now = now_ns(); now < until; now = now_ns())
        loop_turn(until - now);
}

int run_idle(int argc, char **argv)
{
    defaults(5000, 100, 100);
    parse_options(argc, argv, "idle", session_options(false));
    if (g_opts.broker_pid <= 0)
        die("idle needs --broker-pid PID to read the broker's VmRSS");
    if (read_vmrss_kib(g_opts.broker_pid) < 0)
        die("cannot read VmRSS of pid %d", g_opts.broker_pid);
    T.hold = true;
    T.measure_from = (size_t)T.warmup_conns;
    T.total = T.measure_from + g_opts.count;
    raise_fd_limit((long)T.total + 64);
    build_connects();
    conn_t *conns = calloc(T.total, sizeof *conns);
    loop_init((int)T.total);

    cpu_mark_t whole = cpu_mark();
    open_until(conns, T.measure_from);
    sleep_in_loop(T.settle);
    long before = read_vmrss_kib(g_opts.broker_pid);
    uint64_t started = now_ns();
    open_until(conns, T.total);
    double open_s = (now_ns() - started) / 1e9;
    sleep_in_loop(T.settle);
    long after = read_vmrss_kib(g_opts.broker_pid);

    size_t still_open = 0;
    for (size_t i = T.measure_from; i < T.total; i++)
        still_open += conns[i].phase == SLOT_HELD;
    for (size_t i = 0; i < T.total; i++)
        if (conns[i].state == CS_OPEN)
            encode_disconnect(conn_outbuf(&conns[i]));
    loop_turn(0);
    for (size_t i = 0; i < T.total; i++)
        conn_close(&conns[i]);

    json_begin("idle");
    report_common();
    json_int("still_open", (long long)still_open);
    json_num("open_s", open_s);
    json_int("rss_before_kib", before);
    json_int("rss_after_kib", after);
    json_num("bytes_per_connection",
             T.succeeded ? (after - before) * 1024.0 / T.succeeded : 0);
    json_bool("ok", T.failed == 0 && still_open == T.succeeded);
    json_end(whole);
    return T.failed ? 1 : 0;
}

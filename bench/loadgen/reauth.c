/*
 * reauth: --connections MQTT 5 clients connect with Enhanced Authentication
 * (Authentication Method --method, the token in Authentication Data), then
 * each in turn sends AUTH 0x19 Re-authenticate with the next token from the
 * file and waits for AUTH 0x00 Success before sending the next, until --count
 * re-authentications succeeded or --duration passed.  Every token in the file
 * must name the same principal, because a re-authentication may not change
 * it.  The figure is AUTH 0x00 answers per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "options.h"

enum { R_CONNECTING, R_READY, R_WAITING, R_DONE, R_FAILED };

typedef struct {
    int connections;
    const char *tokens_path;
    const char *method;
    buf_t *auths; /* pre-encoded AUTH 0x19 per token */
    size_t token_count;
    size_t next_token;
    uint64_t started;   /* AUTH 0x19 sent */
    uint64_t succeeded; /* AUTH 0x00 received */
    uint64_t failed;
    int ready;
    int first_failure_code;
    uint64_t *round_trip_ns;
} reauth_t;

static reauth_t R;

static void fail_conn(conn_t *c, int code)
{
    if (c->phase == R_WAITING || c->phase == R_CONNECTING)
        R.failed++;
    if (!R.first_failure_code)
        R.first_failure_code = code;
    if (c->phase == R_CONNECTING)
        R.ready++; /* counted as settled, so setup does not wait for it */
    c->phase = R_FAILED;
    conn_close(c);
}

static void send_reauth(conn_t *c)
{
    const buf_t *packet = &R.auths[R.next_token++ % R.token_count];
    conn_queue(c, packet->data, packet->len);
    c->t0 = now_ns();
    c->phase = R_WAITING;
    R.started++;
}

static void on_packet(conn_t *c, uint8_t header, const uint8_t *body,
                      size_t len)
{
    int type = header >> 4;
    if (c->phase == R_CONNECTING && type == PT_CONNACK) {
        int code = decode_connack_code(body, len);
        if (code) {
            fail_conn(c, code);
            return;
        }
        c->phase = R_READY;
        R.ready++;
        return;
    }
    if (c->phase == R_WAITING && type == PT_AUTH &&
        decode_leading_reason(body, len) == 0x00) {
        if (R.succeeded < g_opts.count)
            R.round_trip_ns[R.succeeded] = now_ns() - c->t0;
        R.succeeded++;
        c->phase = R_READY;
        return;
    }
    /* AUTH 0x18 Continue, DISCONNECT or anything else: 0x100 + type. */
    fail_conn(c, type == PT_DISCONNECT ? decode_leading_reason(body, len)
                                       : 0x100 | type);
}

static void on_close(conn_t *c)
{
    if (c->phase != R_DONE && c->phase != R_FAILED)
        fail_conn(c, 0x300);
}

static char **load(void)
{
    char **tokens = read_lines(R.tokens_path, &R.token_count);
    R.auths = calloc(R.token_count, sizeof *R.auths);
    for (size_t i = 0; i < R.token_count; i++)
        encode_auth(&R.auths[i], 0x19, R.method, (const uint8_t *)tokens[i],
                    strlen(tokens[i]));
    return tokens;
}

static void open_all(conn_t *conns, char **tokens)
{
    for (int i = 0; i < R.connections; i++) {
        conn_t *c = &conns[i];
        buf_t *connect = calloc(1, sizeof *connect);
        char client_id[96];
        snprintf(client_id, sizeof client_id, "%s-r-%d", g_opts.prefix, i);
        const char *token = tokens[(size_t)i % R.token_count];
        connect_opts_t o = {
            .version = 5,
            .client_id = client_id,
            .keep_alive = 600,
            .auth_method = R.method,
            .auth_data = (const uint8_t *)token,
            .auth_data_len = strlen(token),
        };
        encode_connect(connect, &o);
        c->index = i;
        c->phase = R_CONNECTING;
        c->on_packet = on_packet;
        c->on_close = on_close;
        if (!conn_start(c)) {
            fail_conn(c, 0x200);
            continue;
        }
        conn_queue(c, connect->data, connect->len);
        buf_free(connect);
        free(connect);
    }
    R.next_token = (size_t)R.connections;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int run_reauth(int argc, char **argv)
{
    R = (reauth_t){.connections = 50, .method = "JWT"};
    g_opts.count = 2000;
    const option_t own[] = {
        {"connections", 'i', &R.connections, "connections re-authenticating"},
        {"tokens", 's', &R.tokens_path, "file with one token a line"},
        {"method", 's', &R.method, "Authentication Method"},
        {NULL, 0, NULL, NULL},
    };
    parse_options(argc, argv, "reauth", own);
    if (!R.tokens_path)
        die("reauth needs --tokens FILE");
    if (g_opts.version != 5)
        die("reauth needs --mqtt 5: MQTT 3.1.1 has no AUTH packet");
    raise_fd_limit(R.connections + 64);
    char **tokens = load();
    R.round_trip_ns = calloc(g_opts.count, sizeof *R.round_trip_ns);
    conn_t *conns = calloc((size_t)R.connections, sizeof *conns);
    loop_init(R.connections);

    cpu_mark_t whole = cpu_mark();
    /* The queued CONNECT goes out once the TCP handshake completes. */
    open_all(conns, tokens);
    uint64_t deadline = now_ns() + (uint64_t)(g_opts.timeout * 1e9);
    while (R.ready < R.connections && now_ns() < deadline)
        loop_turn(10 * 1000 * 1000);

    cpu_mark_t start = cpu_mark();
    double broker_start = read_cpu_seconds(g_opts.broker_pid);
    uint64_t stop_at = start.wall_ns + (uint64_t)(g_opts.duration * 1e9);
    while (R.succeeded < g_opts.count && now_ns() < stop_at) {
        uint64_t now = now_ns();
        int active = 0;
        for (int i = 0; i < R.connections; i++) {
            conn_t *c = &conns[i];
            if (c->phase == R_READY && R.started < g_opts.count)
                send_reauth(c);
            if (c->phase != R_WAITING)
                continue;
            active++;
            if (now > c->t0 && now - c->t0 > (uint64_t)(g_opts.timeout * 1e9))
                fail_conn(c, 0x400);
        }
        /* Done when nothing is in flight: all sent, or every client failed. */
        if (!active)
            break;
        loop_turn(1000 * 1000);
    }
    cpu_mark_t end = cpu_mark();
    double broker_end = read_cpu_seconds(g_opts.broker_pid);

    for (int i = 0; i < R.connections; i++) {
        if (conns[i].state == CS_OPEN)
            encode_disconnect(conn_outbuf(&conns[i]));
        if (conns[i].phase != R_FAILED)
            conns[i].phase = R_DONE;
    }
    loop_turn(0);
    for (int i = 0; i < R.connections; i++)
        conn_close(&conns[i]);

    double elapsed = (end.wall_ns - start.wall_ns) / 1e9;
    double cpu = (end.user_s + end.sys_s) - (start.user_s + start.sys_s);
    size_t samples = R.succeeded < g_opts.count ? R.succeeded : g_opts.count;
    qsort(R.round_trip_ns, samples, sizeof *R.round_trip_ns, compare_u64);
    json_begin("reauth");
    json_int("connections", R.connections);
    json_int("tokens", (long long)R.token_count);
    json_int("started", (long long)R.started);
    json_int("succeeded", (long long)R.succeeded);
    json_int("failed", (long long)R.failed);
    json_int("first_failure_code", R.first_failure_code);
    json_num("elapsed_s", elapsed);
    json_num("reauths_per_s", elapsed > 0 ? R.succeeded / elapsed : 0);
    json_num("auth_p50_us",
             samples ? R.round_trip_ns[samples / 2] / 1e3 : 0);
    json_num("auth_p99_us",
             samples ? R.round_trip_ns[(samples - 1) * 99 / 100] / 1e3 : 0);
    json_num("loadgen_window_cpu_fraction", elapsed > 0 ? cpu / elapsed : 0);
    json_broker_cpu(broker_start, broker_end, elapsed, (double)R.succeeded,
                    "reauths_per_broker_cpu_s");
    json_bool("ok", R.failed == 0 && R.succeeded > 0);
    json_end(whole);
    for (size_t i = 0; i < R.token_count; i++)
        free(tokens[i]);
    free(tokens);
    return R.failed ? 1 : 0;
}

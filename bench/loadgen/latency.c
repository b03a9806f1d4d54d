/*
 * latency: one publisher sends --rate messages per second on a fixed
 * schedule to one subscriber; each payload carries its CLOCK_MONOTONIC send
 * time, and the subscriber records receive time minus send time.  Both ends
 * run in this process, so they share one clock.  Messages sent during the
 * first --warmup seconds are not counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "options.h"

enum { L_SETUP, L_RUN, L_DONE };

typedef struct {
    int rate;
    int qos;
    int payload_len;
    const char *topic;

    conn_t pub;
    conn_t sub;
    int ready;
    buf_t packet;
    size_t seq_offset;
    size_t sent_offset;
    size_t pid_offset;
    uint64_t total; /* messages to send */
    uint64_t skip;  /* warm-up messages */
    uint64_t sent;
    uint64_t acked;
    uint64_t received;
    uint64_t duplicates;
    uint64_t late_sends; /* sends more than one period behind schedule */
    uint64_t *latency_ns; /* per seq; 0 until received */
    int error_code;
} latency_t;

static latency_t L;

static void on_close(conn_t *c)
{
    (void)c;
    if (!L.error_code)
        L.error_code = 0x300;
}

static void on_packet(conn_t *c, uint8_t header, const uint8_t *body,
                      size_t len)
{
    int type = header >> 4;
    if (type == PT_PUBLISH && c == &L.sub) {
        uint64_t now = now_ns();
        publish_view_t v;
        if (!decode_publish(g_opts.version, header, body, len, &v) ||
            v.payload_len < PAYLOAD_MIN)
            return;
        if (v.qos)
            encode_puback(conn_outbuf(c), v.packet_id);
        uint64_t seq, sent;
        memcpy(&seq, v.payload + PAYLOAD_SEQ, sizeof seq);
        memcpy(&sent, v.payload + PAYLOAD_SENT_NS, sizeof sent);
        if (seq >= L.total)
            return;
        if (L.latency_ns[seq]) {
            L.duplicates++;
            return;
        }
        L.latency_ns[seq] = now - sent ? now - sent : 1;
        L.received++;
    } else if (type == PT_PUBACK && c == &L.pub) {
        L.acked++;
    } else if (type == PT_CONNACK) {
        if (decode_connack_code(body, len)) {
            L.error_code = decode_connack_code(body, len);
            return;
        }
        if (c == &L.sub)
            encode_subscribe(conn_outbuf(c), g_opts.version, 1, L.topic,
                             L.qos);
        else
            L.ready++;
    } else if (type == PT_SUBACK) {
        L.ready++;
    } else if (type == PT_DISCONNECT && !L.error_code) {
        L.error_code = 0x100 | type;
    }
}

static void on_open(conn_t *c)
{
    char client_id[96];
    snprintf(client_id, sizeof client_id, "%s-lat-%s", g_opts.prefix,
             c == &L.pub ? "pub" : "sub");
    connect_opts_t o = {
        .version = g_opts.version,
        .client_id = client_id,
        .keep_alive = 600,
        .receive_maximum = 65535,
    };
    encode_connect(conn_outbuf(c), &o);
}

static void send_one(uint64_t now)
{
    buf_t *out = conn_outbuf(&L.pub);
    size_t at = out->len;
    buf_append(out, L.packet.data, L.packet.len);
    memcpy(out->data + at + L.seq_offset, &L.sent, sizeof L.sent);
    memcpy(out->data + at + L.sent_offset, &now, sizeof now);
    if (L.qos) {
        uint16_t pid = (uint16_t)(L.sent % 65535 + 1);
        out->data[at + L.pid_offset] = (uint8_t)(pid >> 8);
        out->data[at + L.pid_offset + 1] = (uint8_t)pid;
    }
    L.sent++;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void build_packet(void)
{
    uint8_t *payload = calloc(1, (size_t)L.payload_len);
    memset(payload, 'x', (size_t)L.payload_len);
    memset(payload, 0, PAYLOAD_MIN);
    size_t offset =
        encode_publish(&L.packet, g_opts.version, L.topic, L.qos, 1, payload,
                       (size_t)L.payload_len, &L.pid_offset);
    L.seq_offset = offset + PAYLOAD_SEQ;
    L.sent_offset = offset + PAYLOAD_SENT_NS;
    free(payload);
}

static void run_schedule(void)
{
    uint64_t period = 1000000000ull / (uint64_t)L.rate;
    uint64_t start = now_ns();
    while (L.sent < L.total && !L.error_code) {
        uint64_t now = now_ns();
        uint64_t due = start + L.sent * period;
        if (now >= due) {
            if (now - due > period)
                L.late_sends++;
            send_one(now);
            /* Flush now, so the send time stamped is the time of write. */
            loop_turn(0);
            continue;
        }
        loop_turn(due - now);
    }
    uint64_t deadline = now_ns() + (uint64_t)(g_opts.timeout * 1e9);
    while (L.received + L.duplicates < L.sent && !L.error_code &&
           now_ns() < deadline)
        loop_turn(10 * 1000 * 1000);
}

int run_latency(int argc, char **argv)
{
    L = (latency_t){.rate = 1000, .qos = 1, .payload_len = 64};
    g_opts.warmup = 1.0;
    const option_t own[] = {
        {"rate", 'i', &L.rate, "messages per second"},
        {"qos", 'i', &L.qos, "QoS of PUBLISH and SUBSCRIBE: 0 or 1"},
        {"payload", 'i', &L.payload_len, "payload bytes (at least 20)"},
        {"topic", 's', &L.topic, "topic (default PREFIX/latency)"},
        {NULL, 0, NULL, NULL},
    };
    parse_options(argc, argv, "latency", own);
    if (L.rate < 1 || L.qos < 0 || L.qos > 1 || L.payload_len < PAYLOAD_MIN)
        die("need --rate >= 1, --qos 0 or 1, --payload >= %d", PAYLOAD_MIN);
    char topic[128];
    if (!L.topic) {
        snprintf(topic, sizeof topic, "%s/latency", g_opts.prefix);
        L.topic = topic;
    }
    L.skip = (uint64_t)(g_opts.warmup * L.rate);
    L.total = L.skip + (uint64_t)(g_opts.duration * L.rate);
    if (L.total > g_opts.count)
        L.total = g_opts.count;
    L.latency_ns = calloc(L.total, sizeof *L.latency_ns);
    build_packet();

    cpu_mark_t whole = cpu_mark();
    loop_init(2);
    conn_t *both[] = {&L.sub, &L.pub};
    for (int i = 0; i < 2; i++) {
        both[i]->on_open = on_open;
        both[i]->on_packet = on_packet;
        both[i]->on_close = on_close;
        if (!conn_start(both[i]))
            die("cannot connect to %s:%d", g_opts.host, g_opts.port);
    }
    uint64_t deadline = now_ns() + (uint64_t)(g_opts.timeout * 1e9);
    while (L.ready < 2 && !L.error_code && now_ns() < deadline)
        loop_turn(10 * 1000 * 1000);
    if (L.ready == 2)
        run_schedule();
    for (int i = 0; i < 2; i++)
        if (both[i]->state == CS_OPEN)
            encode_disconnect(conn_outbuf(both[i]));
    loop_turn(0);
    conn_close(&L.pub);
    conn_close(&L.sub);

    size_t n = 0;
    uint64_t *samples = calloc(L.total, sizeof *samples);
    double sum = 0;
    for (uint64_t i = L.skip; i < L.total; i++)
        if (L.latency_ns[i]) {
            samples[n++] = L.latency_ns[i];
            sum += L.latency_ns[i];
        }
    qsort(samples, n, sizeof *samples, compare_u64);
    json_begin("latency");
    json_int("rate", L.rate);
    json_int("qos", L.qos);
    json_int("sent", (long long)L.sent);
    json_int("acked", (long long)L.acked);
    json_int("received", (long long)L.received);
    json_int("duplicates", (long long)L.duplicates);
    json_int("lost", (long long)(L.sent - L.received));
    json_int("samples", (long long)n);
    json_int("late_sends", (long long)L.late_sends);
    json_num("p50_us", n ? samples[(n - 1) / 2] / 1e3 : 0);
    json_num("p90_us", n ? samples[(n - 1) * 90 / 100] / 1e3 : 0);
    json_num("p99_us", n ? samples[(n - 1) * 99 / 100] / 1e3 : 0);
    json_num("max_us", n ? samples[n - 1] / 1e3 : 0);
    json_num("mean_us", n ? sum / n / 1e3 : 0);
    json_int("error_code", L.error_code);
    json_bool("ok", !L.error_code && L.received == L.sent);
    json_end(whole);
    return L.error_code ? 1 : 0;
}

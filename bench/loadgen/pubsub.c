/*
 * pubsub: P publishers, S subscribers that all subscribe to one filter which
 * matches every publisher's topic.  Fan-in is P=4, S=1, filter "#"; fan-out is
 * P=1, S=50 on one topic.
 *
 * Each payload carries the publisher's index and a sequence number, so every
 * subscriber checks, per publisher, that each message arrives exactly once:
 * a second copy counts as a duplicate, and a message the broker acknowledged
 * (QoS 1) or that was sent (QoS 0) but never arrived counts as lost.
 *
 * QoS 1 publishers keep at most --window PUBLISH packets unacknowledged.
 * QoS 0 publishers have no acknowledgement, so they stay at most --lead
 * messages ahead of the slowest subscriber; otherwise the broker's buffers
 * would grow without bound and the figure would measure buffering.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "options.h"

enum { PHASE_SETUP, PHASE_RUN, PHASE_DRAIN, PHASE_DONE };
enum { ROLE_PUB, ROLE_SUB };
enum {
    OUT_BATCH = 64 * 1024,        /* bytes queued per publisher per turn */
    PID_FREE = 0xFFFFFFFFu,       /* marks an unused packet identifier */
    STALL_NS = 1000 * 1000 * 1000, /* QoS 0: no progress for this long */
};

typedef struct {
    buf_t packet; /* one encoded PUBLISH; seq and packet id patched per copy */
    size_t seq_offset;
    size_t pid_offset;
    uint64_t sent;
    uint64_t acked;
    uint64_t rejected;
    uint64_t unexpected_acks;
    uint32_t inflight;
    uint16_t next_pid;
    uint32_t *pid_seq;    /* QoS 1: packet id -> seq in flight */
    uint64_t *acked_bits; /* QoS 1: seqs the broker acknowledged */
    uint64_t forgiven;    /* QoS 0: messages written off after a stall */
    uint64_t last_min;
    uint64_t last_progress_ns;
    uint64_t stalls;
} publisher_t;

typedef struct {
    uint64_t received; /* copies, duplicates included */
    uint64_t distinct;
    uint64_t duplicates;
    uint64_t out_of_order;
    int64_t last_seq;
    uint64_t *seen;
} flow_t;

typedef struct {
    int publishers;
    int subscribers;
    int qos;
    int payload_len;
    int window;
    int lead;
    int session_expiry;
    const char *topic;
    const char *filter;

    conn_t *pubs;
    conn_t *subs;
    publisher_t *ps;
    flow_t *flows; /* [subscriber * publishers + publisher] */
    size_t bitmap_words;
    int ready;
    int phase;
    uint64_t total_sent;
    uint64_t malformed;
    char error[160];
} pubsub_t;

static pubsub_t S;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record the first error and end the scenario. */
static void fail(const char *fmt, ...)
{
    if (S.error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.error, sizeof S.error, fmt, ap);
    va_end(ap);
    S.phase = PHASE_DONE;
}

static void send_connect(conn_t *c)
{
    char client_id[96];
    snprintf(client_id, sizeof client_id, "%s-%s-%d", g_opts.prefix,
             c->role == ROLE_PUB ? "pub" : "sub", c->index);
    connect_opts_t o = {
        .version = g_opts.version,
        .client_id = client_id,
        .keep_alive = 600,
        .receive_maximum = 65535,
        .session_expiry =
            c->role == ROLE_SUB ? (uint32_t)S.session_expiry : 0,
    };
    encode_connect(conn_outbuf(c), &o);
}

static void on_close(conn_t *c)
{
    if (S.phase != PHASE_DONE)
        fail("broker closed a %s connection (errno %d)",
             c->role == ROLE_PUB ? "publisher" : "subscriber",
             c->close_errno);
}

static void became_ready(void)
{
    if (++S.ready == S.publishers + S.subscribers)
        S.phase = PHASE_RUN;
}

static void handle_puback(publisher_t *p, const uint8_t *body, size_t len)
{
    if (len < 2) {
        S.malformed++;
        return;
    }
    uint16_t pid = (uint16_t)((body[0] << 8) | body[1]);
    uint32_t seq = p->pid_seq ? p->pid_seq[pid] : PID_FREE;
    if (seq == PID_FREE) {
        p->unexpected_acks++;
        return;
    }
    p->pid_seq[pid] = PID_FREE;
    p->inflight--;
    if (decode_reason_after_id(body, len) >= 0x80) {
        p->rejected++;
        return;
    }
    p->acked++;
    p->acked_bits[seq / 64] |= 1ull << (seq % 64);
}

static void handle_publish(conn_t *c, uint8_t header, const uint8_t *body,
                           size_t len)
{
    publish_view_t v;
    if (!decode_publish(g_opts.version, header, body, len, &v) ||
        v.payload_len < PAYLOAD_SENT_NS) {
        S.malformed++;
        return;
    }
    if (v.qos)
        encode_puback(conn_outbuf(c), v.packet_id);

    uint32_t publisher;
    uint64_t seq;
    memcpy(&publisher, v.payload + PAYLOAD_PUBLISHER, sizeof publisher);
    memcpy(&seq, v.payload + PAYLOAD_SEQ, sizeof seq);
    if (publisher >= (uint32_t)S.publishers || seq >= g_opts.count) {
        S.malformed++;
        return;
    }
    flow_t *f = &S.flows[c->index * S.publishers + (int)publisher];
    f->received++;
    uint64_t bit = 1ull << (seq % 64);
    if (f->seen[seq / 64] & bit) {
        f->duplicates++;
        return;
    }
    f->seen[seq / 64] |= bit;
    f->distinct++;
    if ((int64_t)seq < f->last_seq)
        f->out_of_order++;
    f->last_seq = (int64_t)seq;
}

static void on_packet(conn_t *c, uint8_t header, const uint8_t *body,
                      size_t len)
{
    int type = header >> 4;
    if (type == PT_PUBLISH && c->role == ROLE_SUB) {
        handle_publish(c, header, body, len);
    } else if (type == PT_PUBACK && c->role == ROLE_PUB) {
        handle_puback(&S.ps[c->index], body, len);
    } else if (type == PT_CONNACK) {
        int code = decode_connack_code(body, len);
        if (code != 0) {
            fail("CONNACK with reason code %d", code);
            return;
        }
        if (c->role == ROLE_SUB)
            encode_subscribe(conn_outbuf(c), g_opts.version, 1, S.filter,
                             S.qos);
        else
            became_ready();
    } else if (type == PT_SUBACK && c->role == ROLE_SUB) {
        int code = len > 2 ? body[len - 1] : 0x80;
        if (code >= 0x80) {
            fail("SUBACK for %s code %d", S.filter, code);
            return;
        }
        became_ready();
    } else if (type == PT_DISCONNECT) {
        fail("broker sent DISCONNECT with reason code %d",
             decode_leading_reason(body, len));
    } else {
        S.malformed++;
    }
}

/* Lowest count of distinct messages of publisher p that any subscriber has. */
static uint64_t slowest_subscriber(int p)
{
    uint64_t min = UINT64_MAX;
    for (int s = 0; s < S.subscribers; s++) {
        uint64_t d = S.flows[s * S.publishers + p].distinct;
        if (d < min)
            min = d;
    }
    return min;
}

/* QoS 0: how many messages publisher p may send now.  When the slowest
 * subscriber has made no progress for STALL_NS, the broker is taken to have
 * dropped what is outstanding, and that much is written off. */
static uint64_t qos0_budget(publisher_t *p, int index, uint64_t now)
{
    uint64_t slowest = slowest_subscriber(index);
    if (slowest != p->last_min || !p->last_progress_ns) {
        p->last_min = slowest;
        p->last_progress_ns = now;
    }
    int64_t ahead = (int64_t)(p->sent - slowest) - (int64_t)p->forgiven;
    if (ahead < S.lead)
        return (uint64_t)(S.lead - ahead);
    if (now - p->last_progress_ns <= STALL_NS)
        return 0;
    p->forgiven = p->sent - slowest;
    p->last_progress_ns = now;
    p->stalls++;
    return (uint64_t)S.lead;
}

static bool take_packet_id(publisher_t *p, uint16_t *pid)
{
    if (p->inflight >= (uint32_t)S.window)
        return false;
    for (int tries = 0; tries < 65535; tries++) {
        uint16_t candidate = ++p->next_pid ? p->next_pid : ++p->next_pid;
        if (p->pid_seq[candidate] == PID_FREE) {
            *pid = candidate;
            return true;
        }
    }
    return false;
}

static void pump(int index, uint64_t now)
{
    conn_t *c = &S.pubs[index];
    publisher_t *p = &S.ps[index];
    if (c->state != CS_OPEN || !c->writable)
        return;
    uint64_t budget = S.qos ? UINT64_MAX : qos0_budget(p, index, now);
    if (!budget)
        return;

    buf_t *out = conn_outbuf(c);
    size_t n = p->packet.len;
    while (out->len < OUT_BATCH && S.total_sent < g_opts.count && budget) {
        uint16_t pid = 0;
        if (S.qos && !take_packet_id(p, &pid))
            break;
        budget--;
        buf_reserve(out, n);
        uint8_t *dst = out->data + out->len;
        memcpy(dst, p->packet.data, n);
        memcpy(dst + p->seq_offset, &p->sent, sizeof p->sent);
        if (S.qos) {
            dst[p->pid_offset] = (uint8_t)(pid >> 8);
            dst[p->pid_offset + 1] = (uint8_t)pid;
            p->pid_seq[pid] = (uint32_t)p->sent;
            p->inflight++;
        }
        out->len += n;
        p->sent++;
        S.total_sent++;
    }
}

static void build_publisher(int index)
{
    publisher_t *p = &S.ps[index];
    char topic[256];
    const char *mark = strstr(S.topic, "{i}");
    if (mark)
        snprintf(topic, sizeof topic, "%.*s%d%s", (int)(mark - S.topic),
                 S.topic, index, mark + 3);
    else
        snprintf(topic, sizeof topic, "%s", S.topic);

    uint8_t *payload = malloc((size_t)S.payload_len);
    memset(payload, 'x', (size_t)S.payload_len);
    uint32_t idx = (uint32_t)index;
    memcpy(payload + PAYLOAD_PUBLISHER, &idx, sizeof idx);
    size_t payload_offset =
        encode_publish(&p->packet, g_opts.version, topic, S.qos, 1, payload,
                       (size_t)S.payload_len, &p->pid_offset);
    p->seq_offset = payload_offset + PAYLOAD_SEQ;
    free(payload);

    if (S.qos) {
        p->pid_seq = malloc(65536 * sizeof *p->pid_seq);
        memset(p->pid_seq, 0xFF, 65536 * sizeof *p->pid_seq);
        p->acked_bits = calloc(S.bitmap_words, sizeof *p->acked_bits);
    }
}

static void setup(void)
{
    S.pubs = calloc((size_t)S.publishers, sizeof *S.pubs);
    S.subs = calloc((size_t)S.subscribers, sizeof *S.subs);
    S.ps = calloc((size_t)S.publishers, sizeof *S.ps);
    S.flows = calloc((size_t)(S.publishers * S.subscribers), sizeof *S.flows);
    S.bitmap_words = g_opts.count / 64 + 1;
    if (!S.pubs || !S.subs || !S.ps || !S.flows)
        die("out of memory for %d publishers and %d subscribers",
            S.publishers, S.subscribers);

    for (int i = 0; i < S.publishers * S.subscribers; i++) {
        S.flows[i].last_seq = -1;
        S.flows[i].seen = calloc(S.bitmap_words, sizeof(uint64_t));
        if (!S.flows[i].seen)
            die("out of memory for a %zu-word bitmap", S.bitmap_words);
    }
    for (int i = 0; i < S.publishers; i++)
        build_publisher(i);

    loop_init(S.publishers + S.subscribers);
    for (int i = 0; i < S.subscribers + S.publishers; i++) {
        bool sub = i < S.subscribers;
        conn_t *c = sub ? &S.subs[i] : &S.pubs[i - S.subscribers];
        c->index = sub ? i : i - S.subscribers;
        c->role = sub ? ROLE_SUB : ROLE_PUB;
        c->on_open = send_connect;
        c->on_packet = on_packet;
        c->on_close = on_close;
        if (!conn_start(c))
            fail("cannot connect: %s", strerror(errno));
    }
}

static bool drained(void)
{
    for (int p = 0; p < S.publishers; p++) {
        const publisher_t *ps = &S.ps[p];
        if (S.qos && ps->inflight)
            return false;
        uint64_t expected = S.qos ? ps->acked : ps->sent;
        for (int s = 0; s < S.subscribers; s++)
            if (S.flows[s * S.publishers + p].distinct < expected)
                return false;
    }
    return true;
}

static uint64_t total_received(void)
{
    uint64_t sum = 0;
    for (int i = 0; i < S.publishers * S.subscribers; i++)
        sum += S.flows[i].received;
    return sum;
}

/* Messages expected at a subscriber that never arrived there. */
static uint64_t count_lost(void)
{
    uint64_t lost = 0;
    for (int p = 0; p < S.publishers; p++) {
        const publisher_t *ps = &S.ps[p];
        for (int s = 0; s < S.subscribers; s++) {
            const flow_t *f = &S.flows[s * S.publishers + p];
            if (!S.qos) {
                lost += ps->sent - f->distinct;
                continue;
            }
            for (size_t w = 0; w < S.bitmap_words; w++)
                lost += (uint64_t)__builtin_popcountll(ps->acked_bits[w] &
                                                       ~f->seen[w]);
        }
    }
    return lost;
}

static void disconnect_all(void)
{
    for (int i = 0; i < S.publishers; i++)
        if (S.pubs[i].state == CS_OPEN)
            encode_disconnect(conn_outbuf(&S.pubs[i]));
    for (int i = 0; i < S.subscribers; i++)
        if (S.subs[i].state == CS_OPEN)
            encode_disconnect(conn_outbuf(&S.subs[i]));
    loop_turn(0);
    for (int i = 0; i < S.publishers; i++)
        conn_close(&S.pubs[i]);
    for (int i = 0; i < S.subscribers; i++)
        conn_close(&S.subs[i]);
}

typedef struct {
    uint64_t start_ns, end_ns;
    uint64_t received_start, received_end;
    uint64_t sent_start, sent_end;
    cpu_mark_t cpu_start, cpu_end;
    double broker_cpu_start, broker_cpu_end;
    uint64_t drain_ns;
    bool drained;
} window_t;

static void run(window_t *w)
{
    uint64_t deadline = now_ns() + (uint64_t)(g_opts.timeout * 1e9);
    while (S.phase == PHASE_SETUP && now_ns() < deadline)
        loop_turn(10 * 1000 * 1000);
    if (S.phase == PHASE_SETUP)
        fail("connections not ready within --timeout %.1f s", g_opts.timeout);
    if (S.phase != PHASE_RUN)
        return;

    uint64_t run_ns = now_ns();
    uint64_t measure_at = run_ns + (uint64_t)(g_opts.warmup * 1e9);
    uint64_t stop_at = measure_at + (uint64_t)(g_opts.duration * 1e9);
    bool measuring = false;
    w->start_ns = run_ns;
    w->cpu_start = cpu_mark();
    w->broker_cpu_start = read_cpu_seconds(g_opts.broker_pid);
    while (S.phase == PHASE_RUN) {
        uint64_t now = now_ns();
        if (!measuring && now >= measure_at) {
            measuring = true;
            w->start_ns = now;
            w->received_start = total_received();
            w->sent_start = S.total_sent;
            w->cpu_start = cpu_mark();
            w->broker_cpu_start = read_cpu_seconds(g_opts.broker_pid);
        }
        if (now >= stop_at || S.total_sent >= g_opts.count) {
            w->end_ns = now;
            w->received_end = total_received();
            w->sent_end = S.total_sent;
            w->cpu_end = cpu_mark();
            w->broker_cpu_end = read_cpu_seconds(g_opts.broker_pid);
            S.phase = PHASE_DRAIN;
            break;
        }
        for (int i = 0; i < S.publishers; i++)
            pump(i, now);
        loop_turn(1000 * 1000);
    }

    /* Wait for every message; after a stall the written-off ones may never
     * come, so then wait at most one stall period. */
    uint64_t drain_start = now_ns();
    bool stalled = false;
    for (int p = 0; p < S.publishers; p++)
        stalled |= S.ps[p].stalls > 0;
    deadline = drain_start + (stalled ? (uint64_t)STALL_NS
                                      : (uint64_t)(g_opts.timeout * 1e9));
    while (S.phase == PHASE_DRAIN && !drained() && now_ns() < deadline)
        loop_turn(10 * 1000 * 1000);
    w->drained = drained();
    w->drain_ns = now_ns() - drain_start;
    if (S.phase == PHASE_DRAIN)
        S.phase = PHASE_DONE;
}

static void report(const window_t *w, cpu_mark_t whole)
{
    uint64_t sent = 0, acked = 0, rejected = 0, unexpected = 0, stalls = 0;
    for (int p = 0; p < S.publishers; p++) {
        sent += S.ps[p].sent;
        acked += S.ps[p].acked;
        rejected += S.ps[p].rejected;
        unexpected += S.ps[p].unexpected_acks;
        stalls += S.ps[p].stalls;
    }
    uint64_t received = 0, distinct = 0, duplicates = 0, out_of_order = 0;
    for (int i = 0; i < S.publishers * S.subscribers; i++) {
        received += S.flows[i].received;
        distinct += S.flows[i].distinct;
        duplicates += S.flows[i].duplicates;
        out_of_order += S.flows[i].out_of_order;
    }
    double window_s = (w->end_ns - w->start_ns) / 1e9;
    double cpu = (w->cpu_end.user_s + w->cpu_end.sys_s) -
                 (w->cpu_start.user_s + w->cpu_start.sys_s);
    uint64_t lost = count_lost();

    json_begin("pubsub");
    json_int("publishers", S.publishers);
    json_int("subscribers", S.subscribers);
    json_int("qos", S.qos);
    json_int("payload_bytes", S.payload_len);
    json_int("window", S.qos ? S.window : S.lead);
    json_str("filter", S.filter);
    json_num("window_s", window_s);
    json_num("msgs_per_s",
             window_s > 0 ? (w->received_end - w->received_start) / window_s
                          : 0);
    json_num("published_per_s",
             window_s > 0 ? (w->sent_end - w->sent_start) / window_s : 0);
    json_int("sent", (long long)sent);
    json_int("acked", (long long)acked);
    json_int("rejected", (long long)rejected);
    json_int("received", (long long)received);
    json_int("distinct", (long long)distinct);
    json_int("duplicates", (long long)duplicates);
    json_int("lost", (long long)lost);
    json_int("out_of_order", (long long)out_of_order);
    json_int("unexpected_acks", (long long)unexpected);
    json_int("lead_stalls", (long long)stalls);
    json_int("malformed", (long long)S.malformed);
    json_bool("drained", w->drained);
    json_num("drain_s", w->drain_ns / 1e9);
    json_num("loadgen_window_cpu_fraction", window_s > 0 ? cpu / window_s : 0);
    json_broker_cpu(w->broker_cpu_start, w->broker_cpu_end, window_s,
                    (double)(w->received_end - w->received_start),
                    "msgs_per_broker_cpu_s");
    json_bool("ok", !S.error[0] && w->drained);
    if (S.error[0])
        json_str("error", S.error);
    json_end(whole);
}

int run_pubsub(int argc, char **argv)
{
    S = (pubsub_t){
        .publishers = 4,
        .subscribers = 1,
        .qos = 0,
        .payload_len = 64,
        .window = 64,
        .lead = 0,
        .topic = "bench/{i}",
        .filter = "#",
    };
    const option_t own[] = {
        {"publishers", 'i', &S.publishers, "publisher connections"},
        {"subscribers", 'i', &S.subscribers, "subscriber connections"},
        {"qos", 'i', &S.qos, "QoS of PUBLISH and SUBSCRIBE: 0 or 1"},
        {"payload", 'i', &S.payload_len, "payload bytes (at least 20)"},
        {"window", 'i', &S.window, "QoS 1: unacknowledged per publisher"},
        {"lead", 'i', &S.lead,
         "QoS 0: messages a publisher may be ahead of the slowest "
         "subscriber (default 10000 / subscribers, at least 100)"},
        {"topic", 's', &S.topic, "topic; {i} becomes the publisher index"},
        {"filter", 's', &S.filter, "topic filter every subscriber uses"},
        {"session-expiry", 'i', &S.session_expiry,
         "subscriber Session Expiry Interval, seconds (persistent session)"},
        {NULL, 0, NULL, NULL},
    };
    g_opts.turn_us = 200;
    parse_options(argc, argv, "pubsub", own);
    if (S.qos < 0 || S.qos > 1)
        die("--qos must be 0 or 1, not %d", S.qos);
    if (S.payload_len < PAYLOAD_MIN)
        die("--payload must be at least %d bytes", PAYLOAD_MIN);
    if (S.publishers < 1 || S.subscribers < 1 || S.window < 1 || S.lead < 0)
        die("--publishers, --subscribers and --window must be >= 1");
    if (!S.lead)
        S.lead = S.subscribers < 100 ? 10000 / S.subscribers : 100;
    if (g_opts.count > UINT32_MAX - 1)
        die("--count must be below %u", UINT32_MAX);
    raise_fd_limit(S.publishers + S.subscribers + 64);

    cpu_mark_t whole = cpu_mark();
    setup();
    window_t w = {0};
    run(&w);
    disconnect_all();
    report(&w, whole);
    return S.error[0] ? 1 : 0;
}

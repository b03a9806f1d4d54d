/*
 * mqttload: an MQTT 3.1.1 / 5.0 load generator for benchmarking brokers on
 * loopback.
 *
 * One thread, one epoll set, non-blocking sockets.  Packets are encoded once
 * into templates and copied into per-connection output buffers, which are
 * flushed once per event-loop turn, so a write(2) carries many packets.
 * Every scenario prints exactly one JSON object on one line to stdout.
 */
#ifndef MQTTLOAD_H
#define MQTTLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- byte buffers ---------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} buf_t;

void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *bytes, size_t n);
void buf_byte(buf_t *b, uint8_t v);
void buf_u16(buf_t *b, uint16_t v);
void buf_u32(buf_t *b, uint32_t v);
void buf_varint(buf_t *b, uint32_t v);
void buf_string(buf_t *b, const char *s, size_t n);
void buf_consume(buf_t *b, size_t n);
void buf_free(buf_t *b);

/* ---- MQTT packets ---------------------------------------------------- */

enum {
    PT_CONNECT = 1,
    PT_CONNACK = 2,
    PT_PUBLISH = 3,
    PT_PUBACK = 4,
    PT_SUBSCRIBE = 8,
    PT_SUBACK = 9,
    PT_DISCONNECT = 14,
    PT_AUTH = 15,
};

/* What a CONNECT carries; NULL or 0 fields are left out. */
typedef struct {
    int version; /* 4 (3.1.1) or 5 */
    const char *client_id;
    uint16_t keep_alive;
    const char *username;
    const uint8_t *password;
    size_t password_len;
    const char *auth_method;  /* 5.0 Authentication Method */
    const uint8_t *auth_data; /* 5.0 Authentication Data */
    size_t auth_data_len;
    uint16_t receive_maximum; /* 5.0; 0 leaves the property out */
    uint32_t session_expiry;  /* 5.0 seconds; on 3.1.1 nonzero: Clean Session 0 */
} connect_opts_t;

void encode_connect(buf_t *b, const connect_opts_t *o);
void encode_subscribe(buf_t *b, int version, uint16_t packet_id,
                      const char *filter, int qos);
/* Append a PUBLISH; returns the offset of its payload inside b. */
size_t encode_publish(buf_t *b, int version, const char *topic, int qos,
                      uint16_t packet_id, const uint8_t *payload, size_t len,
                      size_t *packet_id_offset);
void encode_puback(buf_t *b, uint16_t packet_id);
void encode_disconnect(buf_t *b);
void encode_auth(buf_t *b, uint8_t reason_code, const char *method,
                 const uint8_t *data, size_t data_len);

/* The parts of a received PUBLISH that the scenarios read. */
typedef struct {
    int qos;
    uint16_t packet_id;
    const uint8_t *payload;
    size_t payload_len;
} publish_view_t;

bool decode_publish(int version, uint8_t header, const uint8_t *body,
                    size_t len, publish_view_t *out);
/* Reason code of a CONNACK, PUBACK, AUTH or DISCONNECT body; -1 if short. */
int decode_connack_code(const uint8_t *body, size_t len);
int decode_reason_after_id(const uint8_t *body, size_t len);
int decode_leading_reason(const uint8_t *body, size_t len);

/* The payload layout every publisher uses (little-endian fields). */
enum {
    PAYLOAD_PUBLISHER = 0, /* uint32: publisher index */
    PAYLOAD_SEQ = 4,       /* uint64: sequence number from 0 */
    PAYLOAD_SENT_NS = 12,  /* uint64: CLOCK_MONOTONIC send time */
    PAYLOAD_MIN = 20,
};

/* ---- connections and the event loop ---------------------------------- */

typedef struct conn conn_t;

typedef void (*packet_cb)(conn_t *c, uint8_t header, const uint8_t *body,
                          size_t len);
typedef void (*conn_cb)(conn_t *c);

enum conn_state {
    CS_IDLE = 0,   /* no socket */
    CS_CONNECTING, /* TCP handshake in progress */
    CS_OPEN,       /* TCP up */
    CS_CLOSED,     /* peer closed or error; fd already closed */
};

struct conn {
    int fd;
    int index;
    enum conn_state state;
    bool writable;
    bool dirty; /* on the flush list */
    buf_t in;
    buf_t out;
    packet_cb on_packet;
    conn_cb on_open;
    conn_cb on_close;
    void *scenario;  /* the scenario's state */
    int role;        /* scenario-defined */
    int phase;       /* scenario-defined */
    uint64_t mark;   /* scenario-defined: a counter */
    uint64_t t0;     /* scenario-defined: a CLOCK_MONOTONIC time, ns */
    int close_errno; /* errno when the connection failed, 0 on EOF */
    uint32_t slot;   /* 1 + index in the loop's registry; 0: unregistered */
    uint32_t gen;    /* bumped per socket, so stale events are ignored */
};

/* Global settings every scenario shares. */
typedef struct {
    const char *host;
    int port;
    int version;
    double duration;    /* seconds of measurement */
    double warmup;      /* seconds before measurement starts */
    double timeout;     /* seconds any wait (CONNACK, drain) may take */
    uint64_t count;     /* upper bound on the scenario's main unit */
    int broker_pid;     /* for /proc/PID/status; 0 when unknown */
    const char *prefix; /* client id and topic prefix */
    double turn_us;     /* minimum loop turn, microseconds (0: none) */
} common_opts_t;

extern common_opts_t g_opts;

uint64_t now_ns(void);
void loop_init(int max_conns);
/* Start a non-blocking TCP connection; false (errno set) if socket fails. */
bool conn_start(conn_t *c);
/* Queue bytes for c; they go out at the end of the current loop turn. */
void conn_queue(conn_t *c, const void *bytes, size_t n);
/* Buffer that conn_queue would append to, for in-place encoding. */
buf_t *conn_outbuf(conn_t *c);
void conn_close(conn_t *c);
/* Wait up to timeout_ns for events, dispatch them, flush output. */
void loop_turn(uint64_t timeout_ns);

/* Scenario entry points: each returns a process exit status. */
int run_pubsub(int argc, char **argv);
int run_connect(int argc, char **argv);
int run_idle(int argc, char **argv);
int run_latency(int argc, char **argv);
int run_reauth(int argc, char **argv);

/* ---- reporting ------------------------------------------------------- */

typedef struct {
    double user_s;
    double sys_s;
    uint64_t wall_ns;
} cpu_mark_t;

cpu_mark_t cpu_mark(void);
/* Start the JSON line with the scenario name and common options. */
void json_begin(const char *scenario);
void json_int(const char *key, long long v);
void json_num(const char *key, double v);
void json_str(const char *key, const char *v);
void json_bool(const char *key, bool v);
/* Add loadgen_cpu_* fields for the interval since `start`, then end the line. */
void json_end(cpu_mark_t start);

long read_vmrss_kib(int pid);
/* User plus system CPU seconds of pid from /proc/PID/stat; -1 if unknown. */
double read_cpu_seconds(int pid);
/* Add broker_window_cpu_s, its share of `wall_s`, and `count` per broker CPU
 * second as `per_cpu_key`, when --broker-pid was given. */
void json_broker_cpu(double cpu_start, double cpu_end, double wall_s,
                     double count, const char *per_cpu_key);
void raise_fd_limit(long wanted);
char **read_lines(const char *path, size_t *count);
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif

/* Byte buffers and the MQTT packets mqttload sends and reads. */
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        die("out of memory growing a buffer to %zu bytes", cap);
    b->data = data;
    b->cap = cap;
}

void buf_append(buf_t *b, const void *bytes, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

void buf_byte(buf_t *b, uint8_t v)
{
    buf_reserve(b, 1);
    b->data[b->len++] = v;
}

void buf_u16(buf_t *b, uint16_t v)
{
    buf_reserve(b, 2);
    b->data[b->len++] = (uint8_t)(v >> 8);
    b->data[b->len++] = (uint8_t)v;
}

void buf_u32(buf_t *b, uint32_t v)
{
    buf_u16(b, (uint16_t)(v >> 16));
    buf_u16(b, (uint16_t)v);
}

void buf_varint(buf_t *b, uint32_t v)
{
    do {
        uint8_t digit = v % 128;
        v /= 128;
        if (v)
            digit |= 0x80;
        buf_byte(b, digit);
    } while (v);
}

void buf_string(buf_t *b, const char *s, size_t n)
{
    buf_u16(b, (uint16_t)n);
    buf_append(b, s, n);
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Append the fixed header for `body` and then the body itself. */
static void finish_packet(buf_t *b, uint8_t first_byte, const buf_t *body)
{
    buf_byte(b, first_byte);
    buf_varint(b, (uint32_t)body->len);
    buf_append(b, body->data, body->len);
}

void encode_connect(buf_t *b, const connect_opts_t *o)
{
    buf_t body = {0};
    buf_string(&body, "MQTT", 4);
    buf_byte(&body, (uint8_t)o->version);

    /* Clean Start is always set; a 3.1.1 session outlives the connection
     * only with Clean Session 0. */
    uint8_t flags = (o->version == 4 && o->session_expiry) ? 0x00 : 0x02;
    if (o->username)
        flags |= 0x80;
    if (o->password)
        flags |= 0x40;
    buf_byte(&body, flags);
    buf_u16(&body, o->keep_alive);

    if (o->version == 5) {
        buf_t props = {0};
        if (o->session_expiry) {
            buf_byte(&props, 0x11);
            buf_u32(&props, o->session_expiry);
        }
        if (o->receive_maximum) {
            buf_byte(&props, 0x21);
            buf_u16(&props, o->receive_maximum);
        }
        if (o->auth_method) {
            buf_byte(&props, 0x15);
            buf_string(&props, o->auth_method, strlen(o->auth_method));
        }
        if (o->auth_data) {
            buf_byte(&props, 0x16);
            buf_string(&props, (const char *)o->auth_data, o->auth_data_len);
        }
        buf_varint(&body, (uint32_t)props.len);
        buf_append(&body, props.data, props.len);
        buf_free(&props);
    }

    buf_string(&body, o->client_id, strlen(o->client_id));
    if (o->username)
        buf_string(&body, o->username, strlen(o->username));
    if (o->password)
        buf_string(&body, (const char *)o->password, o->password_len);

    finish_packet(b, PT_CONNECT << 4, &body);
    buf_free(&body);
}

void encode_subscribe(buf_t *b, int version, uint16_t packet_id,
                      const char *filter, int qos)
{
    buf_t body = {0};
    buf_u16(&body, packet_id);
    if (version == 5)
        buf_byte(&body, 0); /* no properties */
    buf_string(&body, filter, strlen(filter));
    buf_byte(&body, (uint8_t)qos);
    finish_packet(b, (PT_SUBSCRIBE << 4) | 0x02, &body);
    buf_free(&body);
}

size_t encode_publish(buf_t *b, int version, const char *topic, int qos,
                      uint16_t packet_id, const uint8_t *payload, size_t len,
                      size_t *packet_id_offset)
{
    size_t topic_len = strlen(topic);
    size_t remaining = 2 + topic_len + (qos ? 2 : 0) + (version == 5) + len;
    buf_byte(b, (uint8_t)((PT_PUBLISH << 4) | (qos << 1)));
    buf_varint(b, (uint32_t)remaining);
    buf_string(b, topic, topic_len);
    if (qos) {
        if (packet_id_offset)
            *packet_id_offset = b->len;
        buf_u16(b, packet_id);
    }
    if (version == 5)
        buf_byte(b, 0); /* no properties */
    size_t payload_offset = b->len;
    buf_append(b, payload, len);
    return payload_offset;
}

void encode_puback(buf_t *b, uint16_t packet_id)
{
    /* Remaining Length 2 means reason code 0x00 Success in 5.0 too. */
    buf_byte(b, PT_PUBACK << 4);
    buf_byte(b, 2);
    buf_u16(b, packet_id);
}

void encode_disconnect(buf_t *b)
{
    /* Remaining Length 0 means 0x00 Normal disconnection in 5.0 too. */
    buf_byte(b, PT_DISCONNECT << 4);
    buf_byte(b, 0);
}

void encode_auth(buf_t *b, uint8_t reason_code, const char *method,
                 const uint8_t *data, size_t data_len)
{
    buf_t props = {0};
    buf_byte(&props, 0x15);
    buf_string(&props, method, strlen(method));
    buf_byte(&props, 0x16);
    buf_string(&props, (const char *)data, data_len);

    buf_t body = {0};
    buf_byte(&body, reason_code);
    buf_varint(&body, (uint32_t)props.len);
    buf_append(&body, props.data, props.len);
    finish_packet(b, PT_AUTH << 4, &body);
    buf_free(&props);
    buf_free(&body);
}

/* Read a Variable Byte Integer; returns its length, or 0 if malformed. */
static size_t read_varint(const uint8_t *p, size_t len, uint32_t *value)
{
    uint32_t v = 0;
    for (size_t i = 0; i < len && i < 4; i++) {
        v |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *value = v;
            return i + 1;
        }
    }
    return 0;
}

bool decode_publish(int version, uint8_t header, const uint8_t *body,
                    size_t len, publish_view_t *out)
{
    if (len < 2)
        return false;
    size_t pos = 2 + (((size_t)body[0] << 8) | body[1]);
    out->qos = (header >> 1) & 3;
    out->packet_id = 0;
    if (out->qos) {
        if (pos + 2 > len)
            return false;
        out->packet_id = (uint16_t)((body[pos] << 8) | body[pos + 1]);
        pos += 2;
    }
    if (version == 5) {
        uint32_t props_len;
        size_t n = read_varint(body + pos, len - pos, &props_len);
        if (!n || pos + n + props_len > len)
            return false;
        pos += n + props_len;
    }
    if (pos > len)
        return false;
    out->payload = body + pos;
    out->payload_len = len - pos;
    return true;
}

int decode_connack_code(const uint8_t *body, size_t len)
{
    return len >= 2 ? body[1] : -1;
}

int decode_reason_after_id(const uint8_t *body, size_t len)
{
    if (len < 2)
        return -1;
    return len >= 3 ? body[2] : 0;
}

int decode_leading_reason(const uint8_t *body, size_t len)
{
    return len >= 1 ? body[0] : 0;
}

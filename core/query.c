/*
 * query.c - the query language: parsing, the matcher, ordering, keyset
 * cursors, result pages and the core's fallback search (docs/query.md).
 *
 * The matcher here is THE definition of what a query means: a backend that
 * pushes a query down must return exactly what tape__query_run returns.
 * Each term is written once (match_terms) over a small getter table, so
 * entries and whole tapes are judged by the same code.
 */
#include "internal.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(k) (1u << (k))
#define STATS_TERMS (BIT(TAPE_Q_MIN_DURATION_MS) | BIT(TAPE_Q_MAX_DURATION_MS) | \
                     BIT(TAPE_Q_MIN_FRAMES) | BIT(TAPE_Q_MAX_FRAMES))

/* Every key of the language, indexed by TAPE_Q_*. */
static const char *const key_names[TAPE_Q_KEY_COUNT] = {
    "session_id", "name_contains", "tags_any", "tags_all", "status",
    "created_after", "created_before", "min_duration_ms", "max_duration_ms",
    "min_frames", "max_frames", "text", "order_by", "descending", "limit", "cursor",
    "strict",
};

#define ORDER_COUNT 6
static const char *const order_names[ORDER_COUNT] = {
    "created_at", "updated_at", "name", "duration_ms", "frame_count", "id",
};

/* A position in some order: the entry's sort key and its id. The id is
 * either given (cursors) or read from the entry when a tie needs it. */
struct pos {
    union {
        int64_t num;        /* created_at, updated_at, duration_ms, frame_count */
        const char *str;    /* name (NULL: unnamed) or, for order "id", the id */
    } k;
    const tape_entry *e;
    const char *id;         /* NULL: tape_entry_id(e) */
};

static const char *pos_id(const struct pos *p)
{
    const char *id = p->id != NULL ? p->id : tape_entry_id(p->e);
    return id != NULL ? id : "";
}

/* A decoded cursor: the order it was made for and the last position. */
struct qcursor {
    int order_by;
    int descending;
    int64_t num;
    char *str;
    char *id;
};

struct tape_query {
    unsigned int set;                   /* BIT(key) of every key given */
    char *str[TAPE_Q_KEY_COUNT];        /* string keys */
    char **list[TAPE_Q_KEY_COUNT];      /* list keys */
    size_t list_n[TAPE_Q_KEY_COUNT];
    int64_t num[TAPE_Q_KEY_COUNT];      /* int, bool and enum keys */
    struct qcursor cur;                 /* str[TAPE_Q_CURSOR], decoded */
};

/* All zero: no terms, order created_at ascending, no limit. Stands in for
 * a NULL query ("every tape"). */
static const tape_query default_query;

struct tape_result {
    tape_entry **v;
    size_t n, cap;
    char *cursor;
};

/* ------------------------------------------------------------------ */
/* Query objects                                                       */
/* ------------------------------------------------------------------ */

static void cursor_clear(struct qcursor *c)
{
    free(c->str);
    free(c->id);
    memset(c, 0, sizeof *c);
}

void tape_query_free(tape_query *q)
{
    if (q == NULL) {
        return;
    }
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        free(q->str[k]);
        for (size_t i = 0; i < q->list_n[k]; i++) {
            free(q->list[k][i]);
        }
        free(q->list[k]);
    }
    cursor_clear(&q->cur);
    free(q);
}

static int is_string_key(int key)
{
    return key == TAPE_Q_SESSION_ID || key == TAPE_Q_NAME_CONTAINS || key == TAPE_Q_TEXT ||
           key == TAPE_Q_CURSOR;
}

static int is_list_key(int key)
{
    return key == TAPE_Q_TAGS_ANY || key == TAPE_Q_TAGS_ALL;
}

static int valid_key(int key)
{
    return key >= 0 && key < TAPE_Q_KEY_COUNT;
}

int tape_query_has(const tape_query *q, int key)
{
    if (q == NULL || !valid_key(key)) {
        return 0;
    }
    /* order_by and descending always have a value (their defaults). */
    if (key == TAPE_Q_ORDER_BY || key == TAPE_Q_DESCENDING) {
        return 1;
    }
    return (q->set & BIT(key)) != 0;
}

const char *tape_query_string(const tape_query *q, int key)
{
    if (q == NULL || !valid_key(key) || !is_string_key(key)) {
        return NULL;
    }
    return q->str[key];
}

int64_t tape_query_int(const tape_query *q, int key)
{
    if (q == NULL || !valid_key(key) || is_string_key(key) || is_list_key(key)) {
        return 0;
    }
    return q->num[key];
}

size_t tape_query_list_count(const tape_query *q, int key)
{
    if (q == NULL || !valid_key(key) || !is_list_key(key)) {
        return 0;
    }
    return q->list_n[key];
}

const char *tape_query_list_at(const tape_query *q, int key, size_t i)
{
    if (q == NULL || !valid_key(key) || !is_list_key(key) || i >= q->list_n[key]) {
        return NULL;
    }
    return q->list[key][i];
}

const char *tape_query_key_name(int key)
{
    return valid_key(key) ? key_names[key] : NULL;
}

/* ------------------------------------------------------------------ */
/* Cursors: "c1." + base64url (no padding) of the compact JSON array    */
/* [order_by name, descending, key, id]. key is a decimal string for     */
/* the numeric orders (exact beyond 2^53), the name or null for "name",  */
/* and null for "id".                                                    */
/* ------------------------------------------------------------------ */

#define CURSOR_PREFIX "c1."
#define CURSOR_PREFIX_LEN 3

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url_encode(const unsigned char *in, size_t n)
{
    size_t outn = CURSOR_PREFIX_LEN + (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
    char *out = malloc(outn + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, CURSOR_PREFIX, CURSOR_PREFIX_LEN);
    char *p = out + CURSOR_PREFIX_LEN;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64url[v >> 18];
        *p++ = b64url[(v >> 12) & 63];
        *p++ = b64url[(v >> 6) & 63];
        *p++ = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = b64url[v >> 18];
        *p++ = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = b64url[v >> 18];
        *p++ = b64url[(v >> 12) & 63];
        *p++ = b64url[(v >> 6) & 63];
    }
    *p = '\0';
    return out;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Strict: only the alphabet, no padding, no impossible lengths, and no
 * stray low bits (so every payload has exactly one spelling).
 * Returns 1 and a NUL-terminated buffer, 0 if malformed, -1 on OOM. */
static int b64url_decode(unsigned char **out, size_t *out_len, const char *in, size_t n)
{
    if (n % 4 == 1) {
        return 0;
    }
    unsigned char *buf = malloc(n / 4 * 3 + 3 + 1);
    if (buf == NULL) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            free(buf);
            return 0;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        free(buf);
        return 0;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 1;
}

static int order_from_name(const char *s)
{
    for (int i = 0; i < ORDER_COUNT; i++) {
        if (strcmp(s, order_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* A canonical decimal int64: optional '-', digits, no leading zeros. */
static int parse_decimal(int64_t *out, const char *s)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    if (d[0] < '0' || d[0] > '9' || (d[0] == '0' && d[1] != '\0')) {
        return 0;
    }
    for (const char *p = d; *p; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0') {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

static int encode_cursor(char **out, int order_by, int descending, const struct pos *k)
{
    *out = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        return tape__oom();
    }
    cJSON *key;
    char num[32];
    if (order_by == TAPE_ORDER_NAME) {
        key = k->k.str != NULL ? cJSON_CreateString(k->k.str) : cJSON_CreateNull();
    } else if (order_by == TAPE_ORDER_ID) {
        key = cJSON_CreateNull();
    } else {
        snprintf(num, sizeof num, "%" PRId64, k->k.num);
        key = cJSON_CreateString(num);
    }
    cJSON *items[4] = {
        cJSON_CreateString(order_names[order_by]), cJSON_CreateBool(descending != 0), key,
        cJSON_CreateString(pos_id(k)),
    };
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        if (items[i] == NULL || !cJSON_AddItemToArray(arr, items[i])) {
            ok = 0;
            cJSON_Delete(items[i]);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (text == NULL) {
        return tape__oom();
    }
    *out = b64url_encode((const unsigned char *)text, strlen(text));
    cJSON_free(text);
    return *out != NULL ? TAPE_OK : tape__oom();
}

static int bad_cursor(const char *why)
{
    return tape_error_set(TAPE_EQUERY, "query key \"cursor\": %s", why);
}

/* Decode `text` into c and check it was made for (order_by, descending). */
static int decode_cursor(struct qcursor *c, const char *text, int order_by, int descending)
{
    memset(c, 0, sizeof *c);
    size_t n = strlen(text);
    if (n <= CURSOR_PREFIX_LEN || memcmp(text, CURSOR_PREFIX, CURSOR_PREFIX_LEN) != 0) {
        return bad_cursor("not a cursor returned by a query (expected \"c1.\" prefix)");
    }
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    int d = b64url_decode(&raw, &raw_len, text + CURSOR_PREFIX_LEN, n - CURSOR_PREFIX_LEN);
    if (d < 0) {
        return tape__oom();
    }
    if (d == 0) {
        return bad_cursor("garbled cursor (bad encoding)");
    }
    /* A NUL inside the payload would hide trailing bytes from cJSON. The
     * length passed includes the terminator: cJSON's null-terminated check
     * reads it. */
    cJSON *arr = strlen((const char *)raw) == raw_len
                     ? cJSON_ParseWithLengthOpts((const char *)raw, raw_len + 1, NULL, 1)
                     : NULL;
    free(raw);
    int rc = TAPE_OK;
    const cJSON *ob = NULL, *desc = NULL, *key = NULL, *id = NULL;
    if (arr == NULL || !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != 4) {
        rc = bad_cursor("garbled cursor (bad content)");
        goto done;
    }
    ob = cJSON_GetArrayItem(arr, 0);
    desc = cJSON_GetArrayItem(arr, 1);
    key = cJSON_GetArrayItem(arr, 2);
    id = cJSON_GetArrayItem(arr, 3);
    int cur_order = cJSON_IsString(ob) ? order_from_name(ob->valuestring) : -1;
    size_t id_len = cJSON_IsString(id) ? strlen(id->valuestring) : 0;
    if (cur_order < 0 || !cJSON_IsBool(desc) || id_len == 0 || id_len > TAPE_ID_MAX) {
        rc = bad_cursor("garbled cursor (bad content)");
        goto done;
    }
    c->order_by = cur_order;
    c->descending = cJSON_IsTrue(desc);
    if (cur_order == TAPE_ORDER_NAME) {
        if (cJSON_IsString(key)) {
            c->str = tape__strdup(key->valuestring);
            if (c->str == NULL) {
                rc = tape__oom();
                goto done;
            }
        } else if (!cJSON_IsNull(key)) {
            rc = bad_cursor("garbled cursor (bad content)");
            goto done;
        }
    } else if (cur_order == TAPE_ORDER_ID) {
        if (!cJSON_IsNull(key)) {
            rc = bad_cursor("garbled cursor (bad content)");
            goto done;
        }
    } else if (!cJSON_IsString(key) || !parse_decimal(&c->num, key->valuestring)) {
        rc = bad_cursor("garbled cursor (bad content)");
        goto done;
    }
    c->id = tape__strdup(id->valuestring);
    if (c->id == NULL) {
        rc = tape__oom();
        goto done;
    }
    if (c->order_by != order_by || c->descending != descending) {
        rc = tape_error_set(TAPE_EQUERY,
                            "query key \"cursor\": made for order_by \"%s\" %s, but the query "
                            "orders by \"%s\" %s",
                            order_names[c->order_by], c->descending ? "descending" : "ascending",
                            order_names[order_by], descending ? "descending" : "ascending");
    }
done:
    cJSON_Delete(arr);
    if (rc != TAPE_OK) {
        cursor_clear(c);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static int find_key(const char *name)
{
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        if (strcmp(name, key_names[k]) == 0) {
            return k;
        }
    }
    return -1;
}

static int key_error(int key, const char *expected)
{
    return tape_error_set(TAPE_EQUERY, "query key \"%s\": expected %s", key_names[key], expected);
}

/* A JSON number with an integral value in int64 range. cJSON reads
 * numbers as doubles, so beyond 2^53 the value is already rounded. */
static int json_int(int64_t *out, const cJSON *v)
{
    if (!cJSON_IsNumber(v)) {
        return 0;
    }
    double d = v->valuedouble;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return 0; /* also rejects NaN */
    }
    int64_t i = (int64_t)d;
    if ((double)i != d) {
        return 0;
    }
    *out = i;
    return 1;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "a value of another type";
}

static int parse_string_key(tape_query *q, int key, const cJSON *v)
{
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        return key_error(key, "a non-empty string");
    }
    q->str[key] = tape__strdup(v->valuestring);
    return q->str[key] != NULL ? TAPE_OK : tape__oom();
}

static int parse_tags(tape_query *q, int key, const cJSON *v)
{
    const char *expected = "a non-empty array of non-empty strings";
    if (!cJSON_IsArray(v)) {
        return key_error(key, expected);
    }
    int n = cJSON_GetArraySize(v);
    if (n <= 0) {
        return key_error(key, expected);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
            return key_error(key, expected);
        }
    }
    q->list[key] = calloc((size_t)n, sizeof(char *));
    if (q->list[key] == NULL) {
        return tape__oom();
    }
    cJSON_ArrayForEach(it, v) {
        char *s = tape__strdup(it->valuestring);
        if (s == NULL) {
            return tape__oom(); /* tape_query_free releases what was copied */
        }
        q->list[key][q->list_n[key]++] = s;
    }
    return TAPE_OK;
}

static int parse_time(tape_query *q, int key, const cJSON *v)
{
    const char *expected = "an integer (ms since the epoch) or an ISO-8601 time string";
    if (cJSON_IsString(v)) {
        if (tape__time_parse(&q->num[key], v->valuestring) != TAPE_OK) {
            return tape_error_set(TAPE_EQUERY,
                                  "query key \"%s\": \"%.64s\" is not an ISO-8601 time "
                                  "(e.g. \"2025-08-14T10:30:00.000Z\")",
                                  key_names[key], v->valuestring);
        }
        return TAPE_OK;
    }
    if (!json_int(&q->num[key], v)) {
        return key_error(key, expected);
    }
    return TAPE_OK;
}

static int parse_value(tape_query *q, int key, const cJSON *v)
{
    switch (key) {
    case TAPE_Q_SESSION_ID:
    case TAPE_Q_NAME_CONTAINS:
    case TAPE_Q_TEXT:
        return parse_string_key(q, key, v);
    case TAPE_Q_CURSOR:
        if (!cJSON_IsString(v)) {
            return key_error(key, "a string returned as a next cursor, or null");
        }
        q->str[key] = tape__strdup(v->valuestring);
        return q->str[key] != NULL ? TAPE_OK : tape__oom();
    case TAPE_Q_TAGS_ANY:
    case TAPE_Q_TAGS_ALL:
        return parse_tags(q, key, v);
    case TAPE_Q_STATUS:
        if (cJSON_IsString(v) && strcmp(v->valuestring, "recording") == 0) {
            q->num[key] = TAPE_STATUS_RECORDING;
        } else if (cJSON_IsString(v) && strcmp(v->valuestring, "finalized") == 0) {
            q->num[key] = TAPE_STATUS_FINALIZED;
        } else {
            return key_error(key, "\"recording\" or \"finalized\"");
        }
        return TAPE_OK;
    case TAPE_Q_CREATED_AFTER:
    case TAPE_Q_CREATED_BEFORE:
        return parse_time(q, key, v);
    case TAPE_Q_MIN_DURATION_MS:
    case TAPE_Q_MAX_DURATION_MS:
    case TAPE_Q_MIN_FRAMES:
    case TAPE_Q_MAX_FRAMES:
        if (!json_int(&q->num[key], v) || q->num[key] < 0) {
            return key_error(key, "an integer >= 0");
        }
        return TAPE_OK;
    case TAPE_Q_ORDER_BY: {
        int o = cJSON_IsString(v) ? order_from_name(v->valuestring) : -1;
        if (o < 0) {
            return key_error(key, "one of \"created_at\", \"updated_at\", \"name\", "
                                  "\"duration_ms\", \"frame_count\", \"id\"");
        }
        q->num[key] = o;
        return TAPE_OK;
    }
    case TAPE_Q_DESCENDING:
    case TAPE_Q_STRICT:
        if (!cJSON_IsBool(v)) {
            return key_error(key, "true or false");
        }
        q->num[key] = cJSON_IsTrue(v) ? 1 : 0;
        return TAPE_OK;
    case TAPE_Q_LIMIT:
        if (!json_int(&q->num[key], v) || q->num[key] < 1) {
            return key_error(key, "an integer >= 1");
        }
        return TAPE_OK;
    default:
        return tape_error_set(TAPE_EQUERY, "query: internal error (key %d)", key);
    }
}

static int parse_object(tape_query *q, const cJSON *root)
{
    unsigned int seen = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *name = item->string != NULL ? item->string : "";
        int key = find_key(name);
        if (key < 0) {
            return tape_error_set(TAPE_EQUERY, "unknown query key \"%.64s\"", name);
        }
        if (seen & BIT(key)) {
            return tape_error_set(TAPE_EQUERY, "query key \"%s\" appears more than once",
                                  key_names[key]);
        }
        seen |= BIT(key);
        if (cJSON_IsNull(item)) {
            continue; /* null: the key is not set (its default applies) */
        }
        int rc = parse_value(q, key, item);
        if (rc != TAPE_OK) {
            return rc;
        }
        q->set |= BIT(key);
    }
    if (q->set & BIT(TAPE_Q_CURSOR)) {
        return decode_cursor(&q->cur, q->str[TAPE_Q_CURSOR], (int)q->num[TAPE_Q_ORDER_BY],
                             (int)q->num[TAPE_Q_DESCENDING]);
    }
    return TAPE_OK;
}

int tape_query_parse(tape_query **out, const char *json)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_parse: out is NULL");
    }
    *out = NULL;
    tape_query *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return tape__oom();
    }
    if (json == NULL || json[0] == '\0') {
        *out = q;
        return TAPE_OK;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    int rc;
    if (root == NULL) {
        size_t off = (end != NULL && end >= json) ? (size_t)(end - json) : 0;
        rc = tape_error_set(TAPE_EQUERY, "query is not valid JSON (error at byte %zu)", off);
    } else if (!cJSON_IsObject(root)) {
        rc = tape_error_set(TAPE_EQUERY, "query must be a JSON object, not %s",
                            json_type_name(root));
    } else {
        rc = parse_object(q, root);
    }
    cJSON_Delete(root);
    if (rc != TAPE_OK) {
        tape_query_free(q);
        return rc;
    }
    *out = q;
    return TAPE_OK;
}

static int query_clone(tape_query **out, const tape_query *q)
{
    *out = NULL;
    tape_query *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return tape__oom();
    }
    c->set = q->set;
    memcpy(c->num, q->num, sizeof c->num);
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        if (q->str[k] != NULL && (c->str[k] = tape__strdup(q->str[k])) == NULL) {
            goto oom;
        }
        if (q->list_n[k] > 0) {
            c->list[k] = calloc(q->list_n[k], sizeof(char *));
            if (c->list[k] == NULL) {
                goto oom;
            }
            for (size_t i = 0; i < q->list_n[k]; i++) {
                if ((c->list[k][i] = tape__strdup(q->list[k][i])) == NULL) {
                    goto oom;
                }
                c->list_n[k] = i + 1;
            }
        }
    }
    c->cur.order_by = q->cur.order_by;
    c->cur.descending = q->cur.descending;
    c->cur.num = q->cur.num;
    if ((q->cur.str != NULL && (c->cur.str = tape__strdup(q->cur.str)) == NULL) ||
        (q->cur.id != NULL && (c->cur.id = tape__strdup(q->cur.id)) == NULL)) {
        goto oom;
    }
    *out = c;
    return TAPE_OK;
oom:
    tape_query_free(c);
    return tape__oom();
}

int tape_query_with_cursor(tape_query **out, const tape_query *q, const char *cursor)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_with_cursor: out is NULL");
    }
    *out = NULL;
    if (q == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_with_cursor: query is NULL");
    }
    tape_query *c = NULL;
    int rc = query_clone(&c, q);
    if (rc != TAPE_OK) {
        return rc;
    }
    free(c->str[TAPE_Q_CURSOR]);
    c->str[TAPE_Q_CURSOR] = NULL;
    cursor_clear(&c->cur);
    c->set &= ~BIT(TAPE_Q_CURSOR);
    if (cursor != NULL) {
        rc = decode_cursor(&c->cur, cursor, (int)c->num[TAPE_Q_ORDER_BY],
                           (int)c->num[TAPE_Q_DESCENDING]);
        if (rc == TAPE_OK && (c->str[TAPE_Q_CURSOR] = tape__strdup(cursor)) == NULL) {
            rc = tape__oom();
        }
        if (rc != TAPE_OK) {
            tape_query_free(c);
            return rc;
        }
        c->set |= BIT(TAPE_Q_CURSOR);
    }
    *out = c;
    return TAPE_OK;
}

/* Adds an exact integer: cJSON numbers are doubles, raw text is not. */
static int add_int(cJSON *obj, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(obj, name, buf) != NULL;
}

int tape_query_to_json(char **out, const tape_query *q)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_to_json: out is NULL");
    }
    *out = NULL;
    if (q == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_to_json: query is NULL");
    }
    cJSON *obj = cJSON_CreateObject();
    int ok = obj != NULL;
    for (int k = 0; ok && k < TAPE_Q_KEY_COUNT; k++) {
        const char *name = key_names[k];
        if (k == TAPE_Q_ORDER_BY) {
            ok = cJSON_AddStringToObject(obj, name, order_names[q->num[k]]) != NULL;
            continue;
        }
        if (k == TAPE_Q_DESCENDING) {
            ok = cJSON_AddBoolToObject(obj, name, q->num[k] != 0) != NULL;
            continue;
        }
        if (!(q->set & BIT(k))) {
            continue;
        }
        if (is_string_key(k)) {
            ok = cJSON_AddStringToObject(obj, name, q->str[k]) != NULL;
        } else if (is_list_key(k)) {
            cJSON *arr = cJSON_AddArrayToObject(obj, name);
            ok = arr != NULL;
            for (size_t i = 0; ok && i < q->list_n[k]; i++) {
                cJSON *s = cJSON_CreateString(q->list[k][i]);
                ok = s != NULL && cJSON_AddItemToArray(arr, s);
                if (!ok) {
                    cJSON_Delete(s);
                }
            }
        } else if (k == TAPE_Q_STRICT) {
            ok = cJSON_AddBoolToObject(obj, name, q->num[k] != 0) != NULL;
        } else if (k == TAPE_Q_STATUS) {
            ok = cJSON_AddStringToObject(obj, name, q->num[k] == TAPE_STATUS_RECORDING
                                                        ? "recording"
                                                        : "finalized") != NULL;
        } else {
            ok = add_int(obj, name, q->num[k]);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (text == NULL) {
        return tape__oom();
    }
    /* cJSON's allocator is malloc unless a host changed its hooks; hand
     * back a copy we know tape_string_free can release. */
    *out = tape__strdup(text);
    cJSON_free(text);
    return *out != NULL ? TAPE_OK : tape__oom();
}

/* ------------------------------------------------------------------ */
/* Matching: one definition of every term, over a getter table         */
/* ------------------------------------------------------------------ */

struct getters {
    const char *(*name)(const void *o);
    const char *(*session_id)(const void *o);
    int (*status)(const void *o);
    int64_t (*created_at)(const void *o);
    int (*has_tag)(const void *o, const char *tag);
    int (*stats)(tape_stats *out, const void *o);
};

static const char *e_name(const void *o) { return tape_entry_name(o); }
static const char *e_session(const void *o) { return tape_entry_session_id(o); }
static int e_status(const void *o) { return tape_entry_status(o); }
static int64_t e_created(const void *o) { return tape_entry_created_at(o); }
static int e_has_tag(const void *o, const char *t) { return tape_entry_has_tag(o, t); }
static int e_stats(tape_stats *s, const void *o) { return tape_entry_get_stats(s, o); }

static const struct getters entry_getters = {
    e_name, e_session, e_status, e_created, e_has_tag, e_stats,
};

static const char *t_name(const void *o) { return tape_name(o); }
static const char *t_session(const void *o) { return tape_session_id(o); }
static int t_status(const void *o) { return tape_status(o); }
static int64_t t_created(const void *o) { return tape_created_at(o); }
static int t_has_tag(const void *o, const char *t) { return tape_has_tag(o, t); }
static int t_stats(tape_stats *s, const void *o) { return tape_get_stats(s, o); }

static const struct getters tape_getters = {
    t_name, t_session, t_status, t_created, t_has_tag, t_stats,
};

/* Every term except text. Cheapest and most selective terms first; stats
 * are fetched only when a stats term is present. No allocation. */
static int match_terms(const tape_query *q, const struct getters *g, const void *o)
{
    const unsigned int set = q->set;
    if (set & BIT(TAPE_Q_STATUS)) {
        if (g->status(o) != q->num[TAPE_Q_STATUS]) {
            return 0;
        }
    }
    if (set & (BIT(TAPE_Q_CREATED_AFTER) | BIT(TAPE_Q_CREATED_BEFORE))) {
        int64_t c = g->created_at(o);
        if ((set & BIT(TAPE_Q_CREATED_AFTER)) && !(c > q->num[TAPE_Q_CREATED_AFTER])) {
            return 0;
        }
        if ((set & BIT(TAPE_Q_CREATED_BEFORE)) && !(c < q->num[TAPE_Q_CREATED_BEFORE])) {
            return 0;
        }
    }
    if (set & BIT(TAPE_Q_SESSION_ID)) {
        const char *s = g->session_id(o);
        if (s == NULL || strcmp(s, q->str[TAPE_Q_SESSION_ID]) != 0) {
            return 0;
        }
    }
    if (set & BIT(TAPE_Q_TAGS_ALL)) {
        for (size_t i = 0; i < q->list_n[TAPE_Q_TAGS_ALL]; i++) {
            if (!g->has_tag(o, q->list[TAPE_Q_TAGS_ALL][i])) {
                return 0;
            }
        }
    }
    if (set & BIT(TAPE_Q_TAGS_ANY)) {
        size_t i = 0;
        while (i < q->list_n[TAPE_Q_TAGS_ANY] && !g->has_tag(o, q->list[TAPE_Q_TAGS_ANY][i])) {
            i++;
        }
        if (i == q->list_n[TAPE_Q_TAGS_ANY]) {
            return 0;
        }
    }
    if (set & BIT(TAPE_Q_NAME_CONTAINS)) {
        const char *name = g->name(o);
        if (name == NULL || !tape__contains_nocase(name, strlen(name), q->str[TAPE_Q_NAME_CONTAINS])) {
            return 0;
        }
    }
    if (set & STATS_TERMS) {
        tape_stats st = TAPE_STATS_INIT;
        if (g->stats(&st, o) != TAPE_OK) {
            return 0;
        }
        /* Bounds are >= 0 (checked at parse), so unsigned compares are exact. */
        if ((set & BIT(TAPE_Q_MIN_DURATION_MS)) && st.duration_ms < q->num[TAPE_Q_MIN_DURATION_MS]) {
            return 0;
        }
        if ((set & BIT(TAPE_Q_MAX_DURATION_MS)) && st.duration_ms > q->num[TAPE_Q_MAX_DURATION_MS]) {
            return 0;
        }
        if ((set & BIT(TAPE_Q_MIN_FRAMES)) && st.frame_count < (uint64_t)q->num[TAPE_Q_MIN_FRAMES]) {
            return 0;
        }
        if ((set & BIT(TAPE_Q_MAX_FRAMES)) && st.frame_count > (uint64_t)q->num[TAPE_Q_MAX_FRAMES]) {
            return 0;
        }
    }
    return 1;
}

/* The text term on a whole tape: any frame's message contains it. */
static int tape_has_text(const tape *t, const char *text)
{
    size_t n = tape_frame_count(t);
    for (size_t i = 0; i < n; i++) {
        /* The span in the line: no message copy is made for a search. */
        size_t len;
        const char *msg = tape_frame_message_bytes(tape_frame_at(t, i), &len);
        if (msg != NULL && tape__contains_nocase(msg, len, text)) {
            return 1;
        }
    }
    return 0;
}

int tape_query_match_entry(const tape_query *q, const tape_entry *e)
{
    if (e == NULL) {
        tape_error_set(TAPE_EINVAL, "tape_query_match_entry: entry is NULL");
        return 0;
    }
    return match_terms(q != NULL ? q : &default_query, &entry_getters, e);
}

int tape_query_match_tape(const tape_query *q, const tape *t)
{
    if (t == NULL) {
        tape_error_set(TAPE_EINVAL, "tape_query_match_tape: tape is NULL");
        return 0;
    }
    if (q == NULL) {
        q = &default_query;
    }
    if (!match_terms(q, &tape_getters, t)) {
        return 0;
    }
    return !(q->set & BIT(TAPE_Q_TEXT)) || tape_has_text(t, q->str[TAPE_Q_TEXT]);
}

/* ------------------------------------------------------------------ */
/* Ordering                                                            */
/* ------------------------------------------------------------------ */

/* The position of an entry (or of a cursor) in q's order. */
static void pos_of(struct pos *p, int order_by, const tape_entry *e)
{
    p->e = e;
    p->id = NULL;
    switch (order_by) {
    case TAPE_ORDER_CREATED_AT: p->k.num = tape_entry_created_at(e); break;
    case TAPE_ORDER_UPDATED_AT: p->k.num = tape_entry_updated_at(e); break;
    case TAPE_ORDER_NAME: p->k.str = tape_entry_name(e); break;
    case TAPE_ORDER_ID: p->k.str = pos_id(p); break;
    default: {
        tape_stats st = TAPE_STATS_INIT;
        p->k.num = 0;
        if (tape_entry_get_stats(&st, e) == TAPE_OK) {
            if (order_by == TAPE_ORDER_DURATION_MS) {
                p->k.num = st.duration_ms;
            } else {
                p->k.num = st.frame_count > (uint64_t)INT64_MAX ? INT64_MAX
                                                                : (int64_t)st.frame_count;
            }
        }
        break;
    }
    }
}

static void cursor_pos(struct pos *p, const tape_query *q)
{
    p->e = NULL;
    p->id = q->cur.id;
    if (q->cur.order_by == TAPE_ORDER_NAME) {
        p->k.str = q->cur.str;
    } else if (q->cur.order_by == TAPE_ORDER_ID) {
        p->k.str = q->cur.id;
    } else {
        p->k.num = q->cur.num;
    }
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

/* The single total order: key, then id (bytes), both flipped when
 * descending. Unnamed sorts before named; TAPE_TIME_NONE (INT64_MIN)
 * before any time. The id is fetched only on a tie. */
static int compare_pos(int order_by, int descending, const struct pos *a, const struct pos *b)
{
    int c;
    if (order_by == TAPE_ORDER_NAME) {
        if (a->k.str == NULL || b->k.str == NULL) {
            c = (a->k.str != NULL) - (b->k.str != NULL);
        } else {
            c = sign(strcmp(a->k.str, b->k.str));
        }
    } else if (order_by == TAPE_ORDER_ID) {
        c = sign(strcmp(a->k.str, b->k.str));
    } else {
        c = (a->k.num > b->k.num) - (a->k.num < b->k.num);
    }
    /* A sort compares its pivot with itself: skip the id lookups then. */
    if (c == 0 && order_by != TAPE_ORDER_ID && (a->e != b->e || a->e == NULL)) {
        c = sign(strcmp(pos_id(a), pos_id(b)));
    }
    return descending ? -c : c;
}

int tape_query_compare(const tape_query *q, const tape_entry *a, const tape_entry *b)
{
    if (q == NULL) {
        q = &default_query;
    }
    if (a == NULL || b == NULL) {
        /* No crash; NULLs sort first so the result is still an order. */
        return (a != NULL) - (b != NULL);
    }
    int order = (int)q->num[TAPE_Q_ORDER_BY];
    struct pos pa, pb;
    pos_of(&pa, order, a);
    pos_of(&pb, order, b);
    return compare_pos(order, (int)q->num[TAPE_Q_DESCENDING], &pa, &pb);
}

int tape_query_cursor_after(char **out, const tape_query *q, const tape_entry *last)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_cursor_after: out is NULL");
    }
    *out = NULL;
    if (last == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_cursor_after: entry is NULL");
    }
    if (q == NULL) {
        q = &default_query;
    }
    if (tape_entry_id(last) == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_cursor_after: entry has no id");
    }
    int order = (int)q->num[TAPE_Q_ORDER_BY];
    struct pos p;
    pos_of(&p, order, last);
    return encode_cursor(out, order, (int)q->num[TAPE_Q_DESCENDING], &p);
}

int tape_query_after_cursor(const tape_query *q, const tape_entry *e)
{
    if (e == NULL) {
        tape_error_set(TAPE_EINVAL, "tape_query_after_cursor: entry is NULL");
        return 0;
    }
    if (q == NULL || !(q->set & BIT(TAPE_Q_CURSOR))) {
        return 1;
    }
    int order = (int)q->num[TAPE_Q_ORDER_BY];
    struct pos p, c;
    pos_of(&p, order, e);
    cursor_pos(&c, q);
    return compare_pos(order, (int)q->num[TAPE_Q_DESCENDING], &p, &c) > 0;
}

/* ------------------------------------------------------------------ */
/* Result pages                                                        */
/* ------------------------------------------------------------------ */

int tape_result_new(tape_result **out)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_result_new: out is NULL");
    }
    *out = calloc(1, sizeof **out);
    return *out != NULL ? TAPE_OK : tape__oom();
}

void tape_result_free(tape_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        tape_entry_free(r->v[i]);
    }
    free(r->v);
    free(r->cursor);
    free(r);
}

int tape_result_push(tape_result *r, const tape_entry *e)
{
    if (r == NULL || e == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_result_push: %s is NULL",
                              r == NULL ? "result" : "entry");
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        tape_entry **v = realloc(r->v, cap * sizeof *v);
        if (v == NULL) {
            return tape__oom();
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = tape_entry_ref(e);
    return TAPE_OK;
}

int tape_result_set_cursor(tape_result *r, const char *cursor)
{
    if (r == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_result_set_cursor: result is NULL");
    }
    char *c = NULL;
    if (cursor != NULL && (c = tape__strdup(cursor)) == NULL) {
        return tape__oom();
    }
    free(r->cursor);
    r->cursor = c;
    return TAPE_OK;
}

size_t tape_result_count(const tape_result *r)
{
    return r != NULL ? r->n : 0;
}

const tape_entry *tape_result_at(const tape_result *r, size_t i)
{
    return (r != NULL && i < r->n) ? r->v[i] : NULL;
}

const char *tape_result_next_cursor(const tape_result *r)
{
    return r != NULL ? r->cursor : NULL;
}

/* ------------------------------------------------------------------ */
/* The core's fallback search                                          */
/* ------------------------------------------------------------------ */

/* Sorting and heaps over positions. No qsort: it has no context argument
 * and glibc's allocates a second array; this sorts in place. */
struct order {
    int order_by;
    int descending;
};

static int before(const struct order *o, const struct pos *a, const struct pos *b)
{
    return compare_pos(o->order_by, o->descending, a, b) < 0;
}

static void swap_pos(struct pos *a, struct pos *b)
{
    struct pos t = *a;
    *a = *b;
    *b = t;
}

/* dir +1: the first position in q's order on top; -1: the last. */
static void sift_down(const struct order *o, int dir, struct pos *v, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < n && (dir > 0 ? before(o, &v[l], &v[best]) : before(o, &v[best], &v[l]))) {
            best = l;
        }
        if (l + 1 < n &&
            (dir > 0 ? before(o, &v[l + 1], &v[best]) : before(o, &v[best], &v[l + 1]))) {
            best = l + 1;
        }
        if (best == i) {
            return;
        }
        swap_pos(&v[i], &v[best]);
        i = best;
    }
}

static void heapify(const struct order *o, int dir, struct pos *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(o, dir, v, n, i);
    }
}

static void heap_sort(const struct order *o, struct pos *v, size_t n)
{
    heapify(o, -1, v, n);
    while (n > 1) {
        swap_pos(&v[0], &v[n - 1]);
        n--;
        sift_down(o, -1, v, n, 0);
    }
}

static void insertion_sort(const struct order *o, struct pos *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct pos x = v[i];
        size_t j = i;
        for (; j > 0 && before(o, &x, &v[j - 1]); j--) {
            v[j] = v[j - 1];
        }
        v[j] = x;
    }
}

/* Introsort: quicksort (Hoare, median of three), insertion sort for short
 * runs, heapsort when the recursion gets too deep. */
static void sort_pos(const struct order *o, struct pos *v, size_t n, int depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            heap_sort(o, v, n);
            return;
        }
        size_t mid = n / 2;
        if (before(o, &v[mid], &v[0])) swap_pos(&v[mid], &v[0]);
        if (before(o, &v[n - 1], &v[mid])) {
            swap_pos(&v[n - 1], &v[mid]);
            if (before(o, &v[mid], &v[0])) swap_pos(&v[mid], &v[0]);
        }
        struct pos pivot = v[mid];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (before(o, &v[i], &pivot)) i++;
            while (before(o, &pivot, &v[j])) j--;
            if (i >= j) break;
            swap_pos(&v[i], &v[j]);
            i++;
            j--;
        }
        /* [0, j] <= pivot <= [j + 1, n); recurse into the smaller part. */
        size_t left = j + 1;
        if (left < n - left) {
            sort_pos(o, v, left, depth);
            v += left;
            n -= left;
        } else {
            sort_pos(o, v + left, n - left, depth);
            n = left;
        }
    }
    insertion_sort(o, v, n);
}

static void sort_all(const struct order *o, struct pos *v, size_t n)
{
    int depth = 0;
    for (size_t k = n; k > 1; k >>= 1) {
        depth += 2;
    }
    sort_pos(o, v, n, depth);
}

static int result_reserve(tape_result *r, size_t n)
{
    if (n <= r->cap) {
        return TAPE_OK;
    }
    tape_entry **v = realloc(r->v, n * sizeof *v);
    if (v == NULL) {
        return tape__oom();
    }
    r->v = v;
    r->cap = n;
    return TAPE_OK;
}

/* Three plans, all yielding the same page:
 *  - no text, limit below the count: keep the best limit+1 candidates in a
 *    bounded heap while filtering (memory O(limit));
 *  - no text otherwise: sort the candidates;
 *  - text: heapify the candidates and pop them in order, asking text_match
 *    only about the ones popped, until the page is full and one more match
 *    proves a next page exists (or none is left). */
int tape__query_run(tape_result **out, const tape_query *q, tape_entry *const *entries,
                    size_t n, tape__text_match_fn text_match, void *ud)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "query run: out is NULL");
    }
    *out = NULL;
    if (entries == NULL && n > 0) {
        return tape_error_set(TAPE_EINVAL, "query run: entries is NULL");
    }
    if (q == NULL) {
        q = &default_query;
    }
    const int has_text = (q->set & BIT(TAPE_Q_TEXT)) != 0;
    if (has_text && text_match == NULL) {
        return tape_error_set(TAPE_EINVAL,
                              "query run: the query has \"text\" but no text matcher was given");
    }
    const int has_cursor = (q->set & BIT(TAPE_Q_CURSOR)) != 0;
    const uint64_t limit =
        (q->set & BIT(TAPE_Q_LIMIT)) ? (uint64_t)q->num[TAPE_Q_LIMIT] : UINT64_MAX;
    const struct order o = { (int)q->num[TAPE_Q_ORDER_BY], (int)q->num[TAPE_Q_DESCENDING] };
    const int bounded = !has_text && limit < (uint64_t)n;
    const size_t cap = bounded ? (size_t)limit + 1 : n;

    tape_result *r = NULL;
    int rc = tape_result_new(&r);
    if (rc != TAPE_OK) {
        return rc;
    }
    /* Untouched pages of a large allocation cost nothing: only the
     * candidates' slots are ever written. */
    struct pos *v = NULL;
    if (cap > 0 && (cap > SIZE_MAX / sizeof *v || (v = malloc(cap * sizeof *v)) == NULL)) {
        tape_result_free(r);
        return tape__oom();
    }
    struct pos cur = { { 0 }, NULL, NULL };
    if (has_cursor) {
        cursor_pos(&cur, q);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const tape_entry *e = entries[i];
        if (e == NULL) {
            rc = tape_error_set(TAPE_EINVAL, "query run: entries[%zu] is NULL", i);
            goto done;
        }
        if (!match_terms(q, &entry_getters, e)) {
            continue;
        }
        struct pos p;
        pos_of(&p, o.order_by, e);
        if (has_cursor && !before(&o, &cur, &p)) {
            continue;
        }
        if (!bounded || m < cap) {
            v[m++] = p;
            if (bounded && m == cap) {
                heapify(&o, -1, v, m); /* the worst kept candidate on top */
            }
        } else if (before(&o, &p, &v[0])) {
            v[0] = p;
            sift_down(&o, -1, v, m, 0);
        }
    }

    if (!has_text) {
        sort_all(&o, v, m);
        size_t page = (uint64_t)m > limit ? (size_t)limit : m;
        rc = result_reserve(r, page);
        for (size_t i = 0; rc == TAPE_OK && i < page; i++) {
            rc = tape_result_push(r, (tape_entry *)v[i].e);
        }
        if (rc == TAPE_OK && page < m) {
            rc = encode_cursor(&r->cursor, o.order_by, o.descending, &v[page - 1]);
        }
        goto done;
    }

    heapify(&o, 1, v, m);
    struct pos last = { { 0 }, NULL, NULL };
    while (m > 0) {
        struct pos p = v[0];
        v[0] = v[--m];
        sift_down(&o, 1, v, m, 0);
        int match = 0;
        rc = text_match(&match, ud, p.e);
        if (rc != TAPE_OK) {
            if (rc > 0) {
                rc = tape_error_set(TAPE_EPROVIDER, "query run: text matcher returned %d", rc);
            }
            goto done;
        }
        if (!match) {
            continue;
        }
        if ((uint64_t)r->n == limit) {
            /* One more match exists: the page gets a cursor. */
            rc = encode_cursor(&r->cursor, o.order_by, o.descending, &last);
            break;
        }
        rc = tape_result_push(r, (tape_entry *)p.e);
        if (rc != TAPE_OK) {
            goto done;
        }
        last = p;
    }
done:
    free(v);
    if (rc != TAPE_OK) {
        tape_result_free(r);
        return rc;
    }
    *out = r;
    return TAPE_OK;
}

/* The text term is the caller's: a script provider that pre-filters by
 * text pages what is left with the core's own order and cursors. */
static int text_taken_as_matched(int *out_match, void *ud, const tape_entry *e)
{
    (void)ud;
    (void)e;
    *out_match = 1;
    return TAPE_OK;
}

int tape_query_page(tape_result **out, const tape_query *q, const tape_entry *const *entries,
                    size_t count)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || q == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_query_page: %s is NULL",
                              out == NULL ? "out" : "query");
    }
    /* query_run only reads the entries and takes its own references. */
    return tape__query_run(out, q, (tape_entry *const *)entries, count, text_taken_as_matched,
                           NULL);
}

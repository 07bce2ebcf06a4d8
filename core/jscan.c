/*
 * jscan.c - the writer's JSON check: one pass over a message, no tree.
 *
 * Appending a frame used to validate its message by building a cJSON tree
 * and freeing it again: most of an append's time went to malloc and free
 * per value. The writer needs less: is this exactly one JSON value (RFC
 * 8259, under the writing rules of docs/tape-format.md), is it an object,
 * and which of `error`, `method` and `id` does that object have. So this
 * scanner answers just that, strictly: numbers follow the grammar (cJSON
 * took `01`, `+1`, `.5` and `1.`, which Python's json and JavaScript
 * refuse), whitespace is the four JSON blanks, strings hold no raw control
 * character, escapes are the JSON ones, and lone surrogate escapes are
 * accepted (RFC 8259 allows any \uXXXX). Reading stays lenient (codec.c).
 */
#include "codec_internal.h"

#include <string.h>

/* cJSON's nesting limit (CJSON_NESTING_LIMIT), which reading keeps: a
 * message we write must load again. */
#define JSCAN_DEPTH 1000

typedef struct jscan {
    const char *s;
    size_t n;
    size_t i;
    const char *what;
} jscan;

static int jbad(const jscan *j, const char *detail)
{
    return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: %s at byte %zu", j->what, detail,
                          j->i);
}

static const char *const jhint = " (escape it, or record the line with "
                                 "TAPE_FRAME_INVALID_JSON)";

/* Skip the JSON blanks; any other byte below 0x20 is an error. */
static int jws(jscan *j)
{
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            j->i++;
        } else if (c < 0x20) {
            return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: control character 0x%02x "
                                  "outside a string at byte %zu%s",
                                  j->what, c, j->i, jhint);
        } else {
            return TAPE_OK;
        }
    }
    return TAPE_OK;
}

static int jhex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static unsigned jhexval(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* A string starting at s[i] == '"'. When key is not NULL, the decoded
 * string (if it is short and plain ASCII) is copied there, NUL-terminated,
 * else key[0] is set to '\0' - enough to compare against member names. */
static int jstring(jscan *j, char key[16])
{
    size_t k = 0;
    int keep = key != NULL;
    j->i++; /* the opening quote */
    for (;;) {
        if (j->i >= j->n) {
            return jbad(j, "unterminated string");
        }
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"') {
            j->i++;
            if (keep) {
                key[k] = '\0';
            }
            return TAPE_OK;
        }
        if (c == '\\') {
            unsigned char e = j->i + 1 < j->n ? (unsigned char)j->s[j->i + 1] : 0;
            unsigned char decoded = 0;
            if (e == 'u') {
                unsigned v = 0;
                for (size_t h = j->i + 2; h < j->i + 6; h++) {
                    if (h >= j->n || !jhex((unsigned char)j->s[h])) {
                        return jbad(j, "bad \\u escape");
                    }
                    v = v * 16 + jhexval((unsigned char)j->s[h]);
                }
                decoded = v > 0 && v < 0x80 ? (unsigned char)v : 0;
                j->i += 6;
            } else if (e != 0 && strchr("\"\\/bfnrt", e) != NULL) {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                decoded = (unsigned char)to[strchr(from, e) - from];
                j->i += 2;
            } else {
                return jbad(j, "bad escape");
            }
            if (keep) {
                if (decoded == 0 || k == 15) {
                    keep = 0;
                    key[0] = '\0';
                } else {
                    key[k++] = (char)decoded;
                }
            }
            continue;
        }
        if (c < 0x20) {
            if (c == '\n' || c == '\r') {
                return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: a string contains a "
                                      "raw line break at byte %zu%s",
                                      j->what, j->i, jhint);
            }
            return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: raw control character "
                                  "0x%02x in a string at byte %zu%s",
                                  j->what, c, j->i, jhint);
        }
        if (keep) {
            if (c >= 0x80 || k == 15) {
                keep = 0;
                key[0] = '\0';
            } else {
                key[k++] = (char)c;
            }
        }
        j->i++;
    }
}

static int jdigits(jscan *j)
{
    size_t start = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        j->i++;
    }
    return j->i > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jnumber(jscan *j)
{
    if (j->s[j->i] == '-') {
        j->i++;
    }
    if (j->i < j->n && j->s[j->i] == '0') {
        j->i++;
        if (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
            return jbad(j, "a number with a leading zero");
        }
    } else if (!jdigits(j)) {
        return jbad(j, "a number without digits");
    }
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (!jdigits(j)) {
            return jbad(j, "a number without digits after '.'");
        }
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) {
            j->i++;
        }
        if (!jdigits(j)) {
            return jbad(j, "a number without exponent digits");
        }
    }
    return TAPE_OK;
}

static int jliteral(jscan *j, const char *word, size_t len)
{
    if (j->n - j->i < len || memcmp(j->s + j->i, word, len) != 0) {
        return jbad(j, "expected a value");
    }
    j->i += len;
    return TAPE_OK;
}

int tape__json_scan(tape__jscan *out, const char *s, size_t n, const char *what)
{
    jscan j = { s, n, 0, what };
    unsigned char stack[JSCAN_DEPTH]; /* '{' or '[' per open container */
    size_t depth = 0;
    char key[16];
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (j.i == n) {
        return jbad(&j, "no value");
    }
    out->is_object = s[j.i] == '{';

value:
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (j.i == n) {
        return jbad(&j, "expected a value");
    }
    switch (s[j.i]) {
    case '{':
    case '[':
        if (depth == JSCAN_DEPTH) {
            return jbad(&j, "nested deeper than 1000 levels");
        }
        stack[depth++] = (unsigned char)s[j.i];
        j.i++;
        if ((rc = jws(&j)) != TAPE_OK) {
            return rc;
        }
        if (j.i < n && s[j.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            j.i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{') {
            goto member;
        }
        goto value;
    case '"':
        rc = jstring(&j, NULL);
        break;
    case 't':
        rc = jliteral(&j, "true", 4);
        break;
    case 'f':
        rc = jliteral(&j, "false", 5);
        break;
    case 'n':
        rc = jliteral(&j, "null", 4);
        break;
    default:
        if (s[j.i] == '-' || (s[j.i] >= '0' && s[j.i] <= '9')) {
            rc = jnumber(&j);
        } else {
            rc = jbad(&j, "expected a value");
        }
        break;
    }
    if (rc != TAPE_OK) {
        return rc;
    }

after:
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (depth == 0) {
        return j.i == n ? TAPE_OK : jbad(&j, "more after the value");
    }
    if (j.i == n) {
        return jbad(&j, stack[depth - 1] == '{' ? "unterminated object" : "unterminated array");
    }
    if (s[j.i] == ',') {
        j.i++;
        if (stack[depth - 1] == '{') {
            goto member;
        }
        goto value;
    }
    if (s[j.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        j.i++;
        depth--;
        goto after;
    }
    return jbad(&j, stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");

member:
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (j.i == n || s[j.i] != '"') {
        return jbad(&j, "expected a member name");
    }
    /* Names only matter in the outermost object. */
    if ((rc = jstring(&j, depth == 1 && out->is_object ? key : NULL)) != TAPE_OK) {
        return rc;
    }
    if (depth == 1 && out->is_object) {
        out->has_error |= strcmp(key, "error") == 0;
        out->has_method |= strcmp(key, "method") == 0;
        out->has_id |= strcmp(key, "id") == 0;
    }
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (j.i == n || s[j.i] != ':') {
        return jbad(&j, "expected ':' after a member name");
    }
    j.i++;
    goto value;
}

size_t tape__json_minify(char *dst, const char *s, size_t n)
{
    /* s passed tape__json_scan: strings are well formed, so tracking quotes
     * and backslashes is enough to tell blanks between tokens. (cJSON_Minify,
     * used before, also strips comments and lost its place in some strings.) */
    size_t k = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            dst[k++] = c;
            if (c == '\\') {
                dst[k++] = s[++i];
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
            dst[k++] = c;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            dst[k++] = c;
        }
    }
    return k;
}

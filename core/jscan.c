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

#include <stdint.h>
#include <string.h>

/* cJSON's nesting limit (CJSON_NESTING_LIMIT), which reading keeps: a
 * message we write must load again. */
#define JSCAN_DEPTH 1000

/* The scanner's state is the cursor's (codec_internal.h): the cursor
 * calls work on it in place. (Copying it in and out per call made each
 * call wait on the previous one's store.) */
typedef tape__jcur jscan;

/* A check with what == NULL (the reader's fast path, which falls back to
 * cJSON on any refusal) sets no message: formatting one per declined line
 * would cost more than the scan. */
static int jbad(const jscan *j, const char *detail)
{
    if (j->what == NULL) {
        return TAPE_EINVAL;
    }
    return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: %s at byte %zu", j->what, detail,
                          j->i);
}

static const char *const jhint = " (escape it, or record the line with "
                                 "TAPE_FRAME_INVALID_JSON)";

/* Skip the JSON blanks; any other byte below 0x20 is an error. Most
 * calls find a token right away, so that case is checked first, inline. */
static int jws_slow(jscan *j);

static inline int jws(jscan *j)
{
    if (j->i < j->n && (unsigned char)j->s[j->i] > ' ') {
        return TAPE_OK;
    }
    return jws_slow(j);
}

static int jws_slow(jscan *j)
{
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            j->i++;
        } else if (c < 0x20) {
            if (j->what == NULL) {
                return TAPE_EINVAL;
            }
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

/* The first index from i on whose byte ends a run of plain string bytes
 * (a quote, a backslash, a control character), or n. Eight bytes at a
 * time: strings are most of a message, and this loop most of a scan. */
static inline size_t jplain(const char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        /* A byte is zero in q / b, or below 0x20 in w: the high bit of
         * that byte (and maybe of later ones) is set. */
        uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w);
        if ((hit & highs) != 0) {
            break;
        }
        i += 8;
    }
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            break;
        }
        i++;
    }
    return i;
}

/* The usual string at s[i] == '"': plain bytes up to the closing quote.
 * If it is one, j->i moves past it and it returns 1; else (an escape, a
 * control character, no end) nothing moves and it returns 0. */
static inline int jplain_string(jscan *j)
{
    size_t end = jplain(j->s, j->i + 1, j->n);
    if (end < j->n && j->s[end] == '"') {
        j->i = end + 1;
        return 1;
    }
    return 0;
}

/* A string starting at s[i] == '"'. When key is not NULL, the decoded
 * string (if it is short and plain ASCII) is copied there, NUL-terminated,
 * else key[0] is set to '\0' - enough to compare against member names. */
static int jstring(jscan *j, char key[16])
{
    size_t k = 0;
    int keep = key != NULL;
    size_t start = j->i + 1; /* past the opening quote */
    if (jplain_string(j)) {
        if (keep) { /* a name as its bytes are */
            size_t len = j->i - 1 - start;
            key[0] = '\0';
            if (len < 16) {
                memcpy(key, j->s + start, len);
                key[len] = '\0';
                for (size_t b = 0; b < len; b++) {
                    if ((unsigned char)key[b] >= 0x80) {
                        key[0] = '\0';
                        break;
                    }
                }
            }
        }
        return TAPE_OK;
    }
    j->i = start; /* the general loop, from the start */
    for (;;) {
        if (!keep) {
            j->i = jplain(j->s, j->i, j->n);
        }
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
            if (j->what == NULL) {
                return TAPE_EINVAL;
            }
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

/* One value starting at j->i (no blanks before it); j->i ends just past
 * it. out describes that value. */
static int jvalue(jscan *j, tape__jscan *out)
{
    const char *s = j->s;
    size_t n = j->n;
    unsigned char stack[JSCAN_DEPTH]; /* '{' or '[' per open container */
    size_t depth = 0;
    char key[16];
    int rc;

    memset(out, 0, sizeof *out);
    if (j->i == n) {
        return jbad(j, "expected a value");
    }
    out->is_object = s[j->i] == '{';
    goto first;

value:
    if ((rc = jws(j)) != TAPE_OK) {
        return rc;
    }
    if (j->i == n) {
        return jbad(j, "expected a value");
    }
first:
    switch (s[j->i]) {
    case '{':
    case '[':
        if (depth == JSCAN_DEPTH) {
            return jbad(j, "nested deeper than 1000 levels");
        }
        stack[depth++] = (unsigned char)s[j->i];
        j->i++;
        if ((rc = jws(j)) != TAPE_OK) {
            return rc;
        }
        if (j->i < n && s[j->i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            j->i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{') {
            goto member;
        }
        goto value;
    case '"':
        rc = jstring(j, NULL);
        break;
    case 't':
        rc = jliteral(j, "true", 4);
        break;
    case 'f':
        rc = jliteral(j, "false", 5);
        break;
    case 'n':
        rc = jliteral(j, "null", 4);
        break;
    default:
        if (s[j->i] == '-' || (s[j->i] >= '0' && s[j->i] <= '9')) {
            rc = jnumber(j);
        } else {
            rc = jbad(j, "expected a value");
        }
        break;
    }
    if (rc != TAPE_OK) {
        return rc;
    }

after:
    if (depth == 0) {
        return TAPE_OK;
    }
    if ((rc = jws(j)) != TAPE_OK) {
        return rc;
    }
    if (j->i == n) {
        return jbad(j, stack[depth - 1] == '{' ? "unterminated object" : "unterminated array");
    }
    if (s[j->i] == ',') {
        j->i++;
        if (stack[depth - 1] == '{') {
            goto member;
        }
        goto value;
    }
    if (s[j->i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        j->i++;
        depth--;
        goto after;
    }
    return jbad(j, stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");

member:
    if ((rc = jws(j)) != TAPE_OK) {
        return rc;
    }
    if (j->i == n || s[j->i] != '"') {
        return jbad(j, "expected a member name");
    }
    /* Names only matter in the outermost object. */
    if ((rc = depth == 1 && out->is_object ? jstring(j, key) : jstring(j, NULL)) != TAPE_OK) {
        return rc;
    }
    if (depth == 1 && out->is_object) {
        out->has_error |= strcmp(key, "error") == 0;
        out->has_method |= strcmp(key, "method") == 0;
        out->has_id |= strcmp(key, "id") == 0;
    }
    if ((rc = jws(j)) != TAPE_OK) {
        return rc;
    }
    if (j->i == n || s[j->i] != ':') {
        return jbad(j, "expected ':' after a member name");
    }
    j->i++;
    goto value;
}

int tape__json_scan(tape__jscan *out, const char *s, size_t n, const char *what)
{
    jscan j = { s, n, 0, what, 0 };
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    if (j.i == n) {
        return jbad(&j, "no value");
    }
    if ((rc = jvalue(&j, out)) != TAPE_OK || (rc = jws(&j)) != TAPE_OK) {
        return rc;
    }
    return j.i == n ? TAPE_OK : jbad(&j, "more after the value");
}

/* ------------------------------------------------------------ cursor
 * The reader's fast path (frame.c) walks a line's members with these:
 * the same strict rules, no messages (it falls back to cJSON instead). */

int tape__jcur_open(tape__jcur *c)
{
    c->what = NULL;
    if (jws(c) != TAPE_OK || c->i == c->n || c->s[c->i] != '{') {
        return TAPE_EINVAL;
    }
    c->i++;
    c->first = 1;
    return TAPE_OK;
}

int tape__jcur_member(tape__jcur *c, const char **name, size_t *name_len, int *escaped)
{
    if (jws(c) != TAPE_OK || c->i == c->n) {
        return TAPE_EINVAL;
    }
    if (c->s[c->i] == '}') {
        c->i++;
        return 0;
    }
    if (!c->first) {
        if (c->s[c->i] != ',') {
            return TAPE_EINVAL;
        }
        c->i++;
        if (jws(c) != TAPE_OK || c->i == c->n) {
            return TAPE_EINVAL;
        }
    }
    if (c->s[c->i] != '"') {
        return TAPE_EINVAL;
    }
    size_t start = c->i + 1;
    *escaped = !jplain_string(c); /* the usual name: no escape */
    if (*escaped && jstring(c, NULL) != TAPE_OK) {
        return TAPE_EINVAL;
    }
    *name = c->s + start;
    *name_len = c->i - 1 - start;
    if (jws(c) != TAPE_OK || c->i == c->n || c->s[c->i] != ':') {
        return TAPE_EINVAL;
    }
    c->i++;
    c->first = 0;
    return 1;
}

int tape__jcur_value(tape__jcur *c, tape__jscan *info, const char **value, size_t *value_len)
{
    tape__jscan local;
    if (jws(c) != TAPE_OK) {
        return TAPE_EINVAL;
    }
    size_t start = c->i;
    int rc;
    /* Scalars (most of a frame line's members) without jvalue's setup. */
    char ch = c->i < c->n ? c->s[c->i] : '\0';
    if (ch == '"' || ch == '-' || (ch >= '0' && ch <= '9') || ch == 't' || ch == 'f' || ch == 'n') {
        if (info != NULL) {
            memset(info, 0, sizeof *info);
        }
        rc = ch == '"'   ? jstring(c, NULL)
             : ch == 't' ? jliteral(c, "true", 4)
             : ch == 'f' ? jliteral(c, "false", 5)
             : ch == 'n' ? jliteral(c, "null", 4)
                         : jnumber(c);
    } else {
        rc = jvalue(c, info != NULL ? info : &local);
    }
    if (rc != TAPE_OK) {
        return TAPE_EINVAL;
    }
    *value = c->s + start;
    *value_len = c->i - start;
    return TAPE_OK;
}

int tape__jcur_peek(tape__jcur *c)
{
    return jws(c) == TAPE_OK && c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

int tape__jcur_end(tape__jcur *c)
{
    return jws(c) == TAPE_OK && c->i == c->n ? TAPE_OK : TAPE_EINVAL;
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

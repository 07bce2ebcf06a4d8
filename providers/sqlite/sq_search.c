/*
 * sq_search.c - the sqlite provider's native search: the whole query
 * (filters, text, order, cursor, limit) translated to one SQL statement.
 *
 * Exactness with the core's matcher (docs/query.md):
 *  - the columns the SQL filters and sorts on are read from the entry the
 *    stored meta document decodes to, the same entry returned;
 *  - name_contains and text use tape_icontains, the matcher's ASCII
 *    case-insensitive substring; for text, the FTS5 trigram index only
 *    pre-selects frames (its Unicode case folding finds a superset);
 *  - ties are broken by id (BINARY collation = strcmp), NULL names first,
 *    descending flips both;
 *  - each row is confirmed with tape_query_match_entry and
 *    tape_query_after_cursor before it counts, and cursors are made with
 *    tape_query_cursor_after.
 */
#include "sq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int icontains(const unsigned char *h, size_t hn, const unsigned char *n, size_t nn)
{
    if (nn == 0) return 1;
    if (nn > hn) return 0;
    int first = lower(n[0]);
    for (size_t i = 0; i + nn <= hn; i++) {
        if (lower(h[i]) != first) continue;
        size_t j = 1;
        while (j < nn && lower(h[i + j]) == lower(n[j])) j++;
        if (j == nn) return 1;
    }
    return 0;
}

void sq_fn_icontains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    const unsigned char *h = sqlite3_value_text(argv[0]);
    size_t hn = (size_t)sqlite3_value_bytes(argv[0]);
    const unsigned char *n = sqlite3_value_text(argv[1]);
    size_t nn = (size_t)sqlite3_value_bytes(argv[1]);
    if (h == NULL || n == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_int(ctx, icontains(h, hn, n, nn));
}

/* ------------------------------------------------------------ parameters */

#define MAXP 64

typedef struct params {
    int n;
    int is_text[MAXP];
    int64_t num[MAXP];
    const char *text[MAXP];
    char *owned[MAXP]; /* texts we built (FTS phrase, cursor parts) */
} params;

/* Append "?N" for a new parameter. */
static int p_int(sq_buf *b, params *p, int64_t v)
{
    if (p->n == MAXP) return tape_error_set(TAPE_ELIMIT, "sqlite: query has too many terms");
    char tmp[16];
    p->is_text[p->n] = 0;
    p->num[p->n] = v;
    p->n++;
    snprintf(tmp, sizeof tmp, "?%d", p->n);
    sq_buf_puts(b, tmp);
    return TAPE_OK;
}

static int p_text(sq_buf *b, params *p, const char *v, char *owned)
{
    if (p->n == MAXP) {
        free(owned);
        return tape_error_set(TAPE_ELIMIT, "sqlite: query has too many terms");
    }
    char tmp[16];
    p->is_text[p->n] = 1;
    p->text[p->n] = v;
    p->owned[p->n] = owned;
    p->n++;
    snprintf(tmp, sizeof tmp, "?%d", p->n);
    sq_buf_puts(b, tmp);
    return TAPE_OK;
}

static void p_free(params *p)
{
    for (int i = 0; i < p->n; i++) free(p->owned[i]);
}

/* ------------------------------------------------------------ cursor */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* The JSON payload of a "c1." cursor, or NULL if it is not one. Only a
 * pre-filter is derived from it: every row is still checked with
 * tape_query_after_cursor, so a cursor format this code does not know
 * costs speed, never correctness. */
static char *cursor_payload(const char *c)
{
    if (c == NULL || strncmp(c, "c1.", 3) != 0) return NULL;
    c += 3;
    size_t n = strlen(c);
    char *out = malloc(n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)c[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    if (strlen(out) != o) {
        free(out);
        return NULL;
    }
    return out;
}

typedef struct cursor_pos {
    int ok;
    int key_null;
    char *key; /* string form: decimal number or name */
    char *id;
} cursor_pos;

/* Decode [order, descending, key, id] with SQLite's own JSON functions. */
static void cursor_decode(sq_store *st, cursor_pos *cp, const char *cursor)
{
    memset(cp, 0, sizeof *cp);
    char *json = cursor_payload(cursor);
    if (json == NULL) return;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT json_type(?1, '$[2]'), json_extract(?1, '$[2]'),"
                           " json_extract(?1, '$[3]') WHERE json_valid(?1)",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 2) == SQLITE_TEXT) {
            const char *type = (const char *)sqlite3_column_text(s, 0);
            cp->key_null = type != NULL && strcmp(type, "null") == 0;
            int key_text = type != NULL && strcmp(type, "text") == 0;
            if (key_text) cp->key = strdup((const char *)sqlite3_column_text(s, 1));
            cp->id = strdup((const char *)sqlite3_column_text(s, 2));
            cp->ok = cp->id != NULL && (cp->key_null || cp->key != NULL);
        }
    }
    sqlite3_finalize(s);
    free(json);
    if (!cp->ok) {
        free(cp->key);
        free(cp->id);
        memset(cp, 0, sizeof *cp);
    }
}

static const char *const order_col[] = { "created_at", "updated_at", "name",
                                         "duration_ms", "frame_count", "id" };

/* Rows strictly after the cursor position, in the query's order. */
static int cursor_sql(sq_buf *b, params *p, int order, int desc, cursor_pos *cp)
{
    const char *gt = desc ? "<" : ">";
    int rc = TAPE_OK;
    char *id = cp->id;
    cp->id = NULL;
    if (order == TAPE_ORDER_ID) {
        sq_buf_puts(b, " AND t.id ");
        sq_buf_puts(b, gt);
        sq_buf_puts(b, " ");
        return p_text(b, p, id, id);
    }
    if (order == TAPE_ORDER_NAME) {
        char *key = cp->key;
        cp->key = NULL;
        if (cp->key_null) {
            /* ascending: unnamed with a greater id, then every named tape;
             * descending: only unnamed with a smaller id */
            sq_buf_puts(b, desc ? " AND (t.name IS NULL AND t.id < " : " AND ((t.name IS NULL AND t.id > ");
            rc = p_text(b, p, id, id);
            sq_buf_puts(b, desc ? ")" : ") OR t.name IS NOT NULL)");
            free(key);
            return rc;
        }
        sq_buf_puts(b, " AND (");
        if (desc) sq_buf_puts(b, "t.name IS NULL OR ");
        sq_buf_puts(b, "t.name ");
        sq_buf_puts(b, gt);
        sq_buf_puts(b, " ");
        rc = p_text(b, p, key, key);
        if (rc == TAPE_OK) {
            sq_buf_puts(b, " OR (t.name = ");
            rc = p_text(b, p, key, NULL);
        }
        if (rc == TAPE_OK) {
            sq_buf_puts(b, " AND t.id ");
            sq_buf_puts(b, gt);
            sq_buf_puts(b, " ");
            rc = p_text(b, p, id, id);
        } else {
            free(id);
        }
        sq_buf_puts(b, "))");
        return rc;
    }
    /* numeric keys */
    char *end = NULL;
    long long v = cp->key != NULL ? strtoll(cp->key, &end, 10) : 0;
    if (cp->key == NULL || end == cp->key || *end != '\0') {
        free(id);
        return TAPE_OK; /* not understood: no pre-filter */
    }
    sq_buf_puts(b, " AND (t.");
    sq_buf_puts(b, order_col[order]);
    sq_buf_puts(b, ", t.id) ");
    sq_buf_puts(b, gt);
    sq_buf_puts(b, " (");
    rc = p_int(b, p, (int64_t)v);
    sq_buf_puts(b, ", ");
    if (rc == TAPE_OK) rc = p_text(b, p, id, id);
    else free(id);
    sq_buf_puts(b, ")");
    return rc;
}

/* ------------------------------------------------------------ the SQL */

/* FTS5 phrase for the needle: "..." with quotes doubled. NULL when the
 * trigram index cannot serve it exactly as a pre-filter: fewer than 3
 * bytes, or non-ASCII bytes (Unicode folding of those is not the
 * matcher's, and a short UTF-8 needle can be < 3 characters). */
static char *fts_phrase(const char *needle)
{
    size_t n = strlen(needle), q = 0;
    if (n < 3) return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)needle[i] >= 0x80) return NULL;
        q += needle[i] == '"';
    }
    char *out = malloc(n + q + 3);
    if (out == NULL) return NULL;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        out[o++] = needle[i];
        if (needle[i] == '"') out[o++] = '"';
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static int build_sql(sq_buf *b, params *p, sq_store *st, const tape_query *q, int64_t sql_limit)
{
    int rc = TAPE_OK;
    sq_buf_puts(b, "SELECT t.meta FROM ");
    sq_buf_puts(b, sq_tapes(st));
    sq_buf_puts(b, " t WHERE 1");
    if (tape_query_has(q, TAPE_Q_SESSION_ID)) {
        sq_buf_puts(b, " AND t.session_id = ");
        rc = p_text(b, p, tape_query_string(q, TAPE_Q_SESSION_ID), NULL);
    }
    if (rc == TAPE_OK && tape_query_has(q, TAPE_Q_NAME_CONTAINS)) {
        sq_buf_puts(b, " AND t.name IS NOT NULL AND tape_icontains(t.name, ");
        rc = p_text(b, p, tape_query_string(q, TAPE_Q_NAME_CONTAINS), NULL);
        sq_buf_puts(b, ")");
    }
    if (rc == TAPE_OK && tape_query_has(q, TAPE_Q_TAGS_ANY)) {
        size_t n = tape_query_list_count(q, TAPE_Q_TAGS_ANY);
        sq_buf_puts(b, " AND EXISTS (SELECT 1 FROM tags g WHERE g.tape_id = t.id AND g.tag IN (");
        for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
            if (i > 0) sq_buf_puts(b, ", ");
            rc = p_text(b, p, tape_query_list_at(q, TAPE_Q_TAGS_ANY, i), NULL);
        }
        sq_buf_puts(b, "))");
    }
    if (rc == TAPE_OK && tape_query_has(q, TAPE_Q_TAGS_ALL)) {
        size_t n = tape_query_list_count(q, TAPE_Q_TAGS_ALL);
        for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
            sq_buf_puts(b, " AND EXISTS (SELECT 1 FROM tags g WHERE g.tape_id = t.id AND g.tag = ");
            rc = p_text(b, p, tape_query_list_at(q, TAPE_Q_TAGS_ALL, i), NULL);
            sq_buf_puts(b, ")");
        }
    }
    static const struct { int key; const char *sql; } num_terms[] = {
        { TAPE_Q_STATUS, " AND t.status = " },
        { TAPE_Q_CREATED_AFTER, " AND t.created_at > " },
        { TAPE_Q_CREATED_BEFORE, " AND t.created_at < " },
        { TAPE_Q_MIN_DURATION_MS, " AND t.duration_ms >= " },
        { TAPE_Q_MAX_DURATION_MS, " AND t.duration_ms <= " },
        { TAPE_Q_MIN_FRAMES, " AND t.frame_count >= " },
        { TAPE_Q_MAX_FRAMES, " AND t.frame_count <= " },
    };
    for (size_t i = 0; rc == TAPE_OK && i < sizeof num_terms / sizeof num_terms[0]; i++) {
        if (tape_query_has(q, num_terms[i].key)) {
            sq_buf_puts(b, num_terms[i].sql);
            rc = p_int(b, p, tape_query_int(q, num_terms[i].key));
        }
    }
    if (rc == TAPE_OK && tape_query_has(q, TAPE_Q_TEXT)) {
        const char *needle = tape_query_string(q, TAPE_Q_TEXT);
        /* unreadable tapes match no text (sq_unreadable reports them) */
        if (st->has_stale) sq_buf_puts(b, " AND t.stale != 2");
        char *phrase = fts_phrase(needle);
        if (phrase != NULL) {
            sq_buf_puts(b, " AND t.id IN (SELECT f.tape_id FROM frames_fts JOIN frames f ON"
                           " f.id = frames_fts.rowid WHERE frames_fts MATCH ");
            rc = p_text(b, p, phrase, phrase);
            sq_buf_puts(b, " AND tape_icontains(f.message, ");
        } else {
            sq_buf_puts(b, " AND EXISTS (SELECT 1 FROM frames f WHERE f.tape_id = t.id AND"
                           " tape_icontains(f.message, ");
        }
        if (rc == TAPE_OK) rc = p_text(b, p, needle, NULL);
        sq_buf_puts(b, "))");
    }
    int order = (int)tape_query_int(q, TAPE_Q_ORDER_BY);
    int desc = (int)tape_query_int(q, TAPE_Q_DESCENDING) != 0;
    if (order < 0 || order > TAPE_ORDER_ID) order = TAPE_ORDER_CREATED_AT;
    if (rc == TAPE_OK && tape_query_has(q, TAPE_Q_CURSOR)) {
        cursor_pos cp;
        cursor_decode(st, &cp, tape_query_string(q, TAPE_Q_CURSOR));
        if (cp.ok) rc = cursor_sql(b, p, order, desc, &cp);
        free(cp.key);
        free(cp.id);
    }
    sq_buf_puts(b, " ORDER BY ");
    if (order != TAPE_ORDER_ID) {
        sq_buf_puts(b, "t.");
        sq_buf_puts(b, order_col[order]);
        sq_buf_puts(b, desc ? " DESC, " : ", ");
    }
    sq_buf_puts(b, desc ? "t.id DESC" : "t.id");
    if (rc == TAPE_OK && sql_limit > 0) {
        sq_buf_puts(b, " LIMIT ");
        rc = p_int(b, p, sql_limit);
    }
    if (rc == TAPE_OK && b->oom) rc = tape_error_set(TAPE_ENOMEM, "out of memory");
    return rc;
}

/* One run with an SQL LIMIT (0: none). *exhausted says whether the SQL
 * returned fewer rows than its limit (so no further row exists). */
static int run_page(tape_result **out, int *exhausted, sq_store *st, const tape_query *q,
                    int64_t sql_limit)
{
    sq_buf b = { 0 };
    params p;
    memset(&p, 0, sizeof p);
    tape_result *r = NULL;
    sqlite3_stmt *s = NULL;
    int rc = build_sql(&b, &p, st, q, sql_limit);
    if (rc == TAPE_OK) {
        int src = sqlite3_prepare_v2(st->db, b.p, -1, &s, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot prepare the search");
    }
    for (int i = 0; rc == TAPE_OK && i < p.n; i++) {
        if (p.is_text[i]) sqlite3_bind_text(s, i + 1, p.text[i], -1, SQLITE_STATIC);
        else sqlite3_bind_int64(s, i + 1, p.num[i]);
    }
    if (rc == TAPE_OK) rc = tape_result_new(&r);
    int has_limit = tape_query_has(q, TAPE_Q_LIMIT);
    uint64_t limit = (uint64_t)tape_query_int(q, TAPE_Q_LIMIT);
    int64_t rows = 0;
    tape_entry *last = NULL;
    *exhausted = 1;
    int src = SQLITE_DONE;
    while (rc == TAPE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        rows++;
        tape_entry *e = NULL;
        rc = tape_entry_from_meta(&e, (const char *)sqlite3_column_text(s, 0),
                                  (size_t)sqlite3_column_bytes(s, 0));
        if (rc != TAPE_OK) {
            rc = tape_error_set(TAPE_ECORRUPT, "sqlite \"%s\": a stored meta document: %s",
                                st->path, tape_errmsg());
            break;
        }
        if (!tape_query_match_entry(q, e) || !tape_query_after_cursor(q, e)) {
            tape_entry_free(e);
            continue;
        }
        if (has_limit && tape_result_count(r) == limit) {
            /* one more match exists: the page is full and gets a cursor */
            char *cursor = NULL;
            rc = tape_query_cursor_after(&cursor, q, last);
            if (rc == TAPE_OK) rc = tape_result_set_cursor(r, cursor);
            tape_string_free(cursor);
            tape_entry_free(e);
            *exhausted = 1;
            src = SQLITE_DONE;
            break;
        }
        rc = tape_result_push(r, e);
        tape_entry_free(last);
        last = e;
    }
    if (rc == TAPE_OK && src != SQLITE_DONE && src != SQLITE_ROW) {
        rc = sq_err(st, src, "search failed");
    }
    if (rc == TAPE_OK && sql_limit > 0 && rows == sql_limit && tape_result_next_cursor(r) == NULL &&
        (!has_limit || tape_result_count(r) <= limit)) {
        *exhausted = 0; /* the SQL limit cut rows off: the caller retries wider */
    }
    tape_entry_free(last);
    sqlite3_finalize(s);
    p_free(&p);
    free(b.p);
    if (rc != TAPE_OK) {
        tape_result_free(r);
        return rc;
    }
    *out = r;
    return TAPE_OK;
}

/* Text search skips the tapes whose frames cannot be read (as the core's
 * fallback does): each one the other terms would admit is reported to the
 * log hook, or fails a strict query. */
static int sq_unreadable(sq_store *st, const tape_query *q)
{
    if (!st->has_stale || !tape_query_has(q, TAPE_Q_TEXT)) return TAPE_OK;
    sqlite3_stmt *s = NULL;
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT id, meta FROM %s WHERE stale = 2 ORDER BY id", sq_tapes(st));
    int src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    int rc = src == SQLITE_OK ? TAPE_OK : sq_err(st, src, "cannot prepare the search");
    int strict = tape_query_int(q, TAPE_Q_STRICT) != 0;
    while (rc == TAPE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        tape_entry *e = NULL;
        if (tape_entry_from_meta(&e, (const char *)sqlite3_column_text(s, 1),
                                 (size_t)sqlite3_column_bytes(s, 1)) == TAPE_OK &&
            !tape_query_match_entry(q, e)) {
            tape_entry_free(e);
            continue;
        }
        tape_entry_free(e);
        if (strict) {
            rc = tape_error_set(TAPE_ECORRUPT,
                                "sqlite \"%s\": tape \"%s\" cannot be read (its frames were "
                                "changed from outside and are invalid)",
                                st->path, id);
        } else {
            tape_log(TAPE_LOG_WARN,
                     "sqlite \"%s\": text search skips tape \"%s\", which cannot be read",
                     st->path, id);
        }
    }
    if (rc == TAPE_OK && src != SQLITE_DONE) rc = sq_err(st, src, "search failed");
    sqlite3_finalize(s);
    return rc;
}

int sq_search(tape_result **out, void *self, const tape_query *q)
{
    sq_store *st = self;
    int rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = sq_repair(st);
    if (rc != TAPE_OK) return rc;
    rc = sq_begin_read(st);
    if (rc == TAPE_OK) rc = sq_unreadable(st, q);
    if (rc != TAPE_OK) {
        sq_end_read(st);
        return rc;
    }
    /* The SQL is exact, so limit + 1 rows decide the page; should a row be
     * refused by the confirmation, run again with a wider limit. */
    int64_t sql_limit = 0;
    if (tape_query_has(q, TAPE_Q_LIMIT)) {
        int64_t l = tape_query_int(q, TAPE_Q_LIMIT);
        sql_limit = l < INT64_MAX / 4 ? l + 1 : 0;
    }
    for (;;) {
        tape_result *r = NULL;
        int exhausted = 1;
        rc = run_page(&r, &exhausted, st, q, sql_limit);
        if (rc != TAPE_OK || exhausted) {
            sq_end_read(st);
            if (rc == TAPE_OK) *out = r;
            return rc;
        }
        tape_result_free(r);
        sql_limit = sql_limit < INT64_MAX / 4 ? sql_limit * 4 : 0;
    }
}

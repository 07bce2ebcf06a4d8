/*
 * migrate.c - `tapestore migrate`: copy tapes between two stores and verify
 * each copy.
 *
 * Resumable because each copy is one save (atomic per tape in the builtin
 * providers: a transaction in sqlite, temp+rename in filesystem) and a tape
 * already in the target with equal content is skipped: after a kill, a
 * rerun copies what is missing and nothing twice. "Equal" is the encoded
 * .jsonl and .meta.json, byte for byte, which is also what the verification
 * after each save compares (the tape loaded back from the target against
 * the source's).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct mig_opts {
    const char *from, *to;
    int overwrite;
} mig_opts;

static int mig_opt(cli *c, void *ctx, int id, const char *arg)
{
    mig_opts *o = ctx;
    (void)c;
    if (id == OPT_CMD) o->from = arg;
    if (id == OPT_CMD + 1) o->to = arg;
    if (id == OPT_CMD + 2) o->overwrite = 1;
    return -1;
}

static int open_spec(cli *c, const char *spec, const char *which, tape_store **out)
{
    int rc = tape_store_open_spec(out, NULL, spec, TAPE_OPEN_EAGER);
    if (rc != TAPE_OK) {
        *out = NULL;
        return cli_lib_error(c, rc, "cannot open the %s store %s", which, spec);
    }
    return CLI_OK;
}

/* Where two documents first differ, for the message. */
static size_t first_diff(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

typedef struct encoded {
    char *jsonl, *meta;
    size_t jl, ml;
} encoded;

static int encode(encoded *e, const tape *t)
{
    e->jsonl = e->meta = NULL;
    int rc = tape_encode_jsonl(&e->jsonl, &e->jl, t);
    if (rc == TAPE_OK) rc = tape_encode_meta(&e->meta, &e->ml, t);
    return rc;
}

static void encoded_free(encoded *e)
{
    tape_string_free(e->jsonl);
    tape_string_free(e->meta);
}

/* NULL when equal, else which document differs and where. */
static const char *differs(char *buf, size_t len, const encoded *a, const encoded *b)
{
    if (a->jl != b->jl || memcmp(a->jsonl, b->jsonl, a->jl) != 0) {
        snprintf(buf, len, "its .jsonl differs from the source's at byte %zu",
                 first_diff(a->jsonl, a->jl, b->jsonl, b->jl));
        return buf;
    }
    if (a->ml != b->ml || memcmp(a->meta, b->meta, a->ml) != 0) {
        snprintf(buf, len, "its .meta.json differs from the source's at byte %zu",
                 first_diff(a->meta, a->ml, b->meta, b->ml));
        return buf;
    }
    return NULL;
}

/* 1 if the target's copy has the source's frames but only the metadata its
 * init line gives: what a filesystem target holds after a kill between its
 * two renames (.jsonl first, then .meta.json; the meta is then rebuilt
 * from the .jsonl at open). Completing that copy loses nothing. */
static int interrupted_copy(const encoded *src, const encoded *dst)
{
    if (src->jl != dst->jl || memcmp(src->jsonl, dst->jsonl, src->jl) != 0) {
        return 0;
    }
    tape *bare = NULL;
    encoded e = {0};
    int same = 0;
    if (tape_decode(&bare, dst->jsonl, dst->jl, NULL, 0, NULL, NULL) == TAPE_OK &&
        encode(&e, bare) == TAPE_OK) {
        same = e.ml == dst->ml && memcmp(e.meta, dst->meta, e.ml) == 0;
    }
    encoded_free(&e);
    tape_free(bare);
    return same;
}

/* Copy one tape. *action: "copied", "completed" (an interrupted copy
 * finished), "replaced", "skipped"; on failure a message in err and an
 * exit code. */
static int migrate_one(tape_store *src, tape_store *dst, const char *id, int overwrite,
                       const char **action, uint64_t *frames, uint64_t *bytes, char *err,
                       size_t errlen)
{
    tape *t = NULL, *old = NULL, *back = NULL;
    encoded a = {0}, b = {0};
    char why[256];
    int code = CLI_OK;
    int rc = tape_store_load(&t, src, id);
    if (rc != TAPE_OK) {
        snprintf(err, errlen, "cannot load it from the source: %s", tape_errmsg());
        return rc == TAPE_ENOTFOUND ? CLI_NOTFOUND : CLI_FAIL;
    }
    *frames = tape_frame_count(t);
    if ((rc = encode(&a, t)) != TAPE_OK) {
        snprintf(err, errlen, "cannot encode it: %s", tape_errmsg());
        code = CLI_FAIL;
        goto out;
    }
    *bytes = a.jl;
    *action = "copied";
    rc = tape_store_load(&old, dst, id);
    if (rc == TAPE_OK) {
        if ((rc = encode(&b, old)) != TAPE_OK) {
            snprintf(err, errlen, "cannot encode the target's copy: %s", tape_errmsg());
            code = CLI_FAIL;
            goto out;
        }
        const char *d = differs(why, sizeof why, &a, &b);
        int bare = d != NULL && interrupted_copy(&a, &b);
        encoded_free(&b);
        b = (encoded){0};
        if (d == NULL) {
            *action = "skipped";
            goto out;
        }
        if (bare) {
            *action = "completed";
        } else if (!overwrite) {
            snprintf(err, errlen,
                     "the target already has a different tape with this id (%s); --overwrite "
                     "replaces it", d);
            code = CLI_FAIL;
            goto out;
        } else {
            *action = "replaced";
        }
    } else if (rc != TAPE_ENOTFOUND) {
        snprintf(err, errlen, "cannot check the target: %s", tape_errmsg());
        code = CLI_FAIL;
        goto out;
    }
    if ((rc = tape_store_save(dst, t)) != TAPE_OK) {
        snprintf(err, errlen, "cannot save it in the target: %s", tape_errmsg());
        code = CLI_FAIL;
        goto out;
    }
    /* Verify: what the target gives back encodes as the source does. */
    if ((rc = tape_store_load(&back, dst, id)) != TAPE_OK) {
        snprintf(err, errlen, "verification failed: cannot load it back from the target: %s",
                 tape_errmsg());
        code = CLI_FAIL;
        goto out;
    }
    if ((rc = encode(&b, back)) != TAPE_OK) {
        snprintf(err, errlen, "verification failed: cannot encode the target's copy: %s",
                 tape_errmsg());
        code = CLI_FAIL;
        goto out;
    }
    const char *d = differs(why, sizeof why, &a, &b);
    if (d != NULL) {
        snprintf(err, errlen, "verification failed: the copy in the target is not the same: %s",
                 d);
        code = CLI_FAIL;
    }
out:
    encoded_free(&a);
    encoded_free(&b);
    tape_free(t);
    tape_free(old);
    tape_free(back);
    return code;
}

/* Every matching id of the source, in query order. */
static int collect_ids(cli *c, tape_store *src, tape_query *q, int has_limit, char ***out,
                       size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    tape_query *cur = q;
    int code = CLI_OK;
    for (;;) {
        tape_result *page = NULL;
        int rc = tape_store_query(&page, src, cur);
        if (cur != q) tape_query_free(cur);
        cur = NULL;
        if (rc != TAPE_OK) {
            code = cli_lib_error(c, rc, "cannot list the source store");
            break;
        }
        for (size_t i = 0; i < tape_result_count(page); i++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 256;
                char **nv = realloc(*out, cap * sizeof *nv);
                if (nv == NULL) {
                    tape_result_free(page);
                    return cli_error(c, CLI_FAIL, "out of memory");
                }
                *out = nv;
            }
            (*out)[*n] = strdup(tape_entry_id(tape_result_at(page, i)));
            if ((*out)[*n] == NULL) {
                tape_result_free(page);
                return cli_error(c, CLI_FAIL, "out of memory");
            }
            (*n)++;
        }
        const char *next = tape_result_next_cursor(page);
        if (next == NULL || has_limit) {
            tape_result_free(page);
            break;
        }
        rc = tape_query_with_cursor(&cur, q, next);
        tape_result_free(page);
        if (rc != TAPE_OK) {
            code = cli_lib_error(c, rc, "cannot page through the source store");
            break;
        }
    }
    return code;
}

static void progress(const cli *c, int tty, size_t done, size_t total, const char *action,
                     const char *id, uint64_t frames)
{
    if (!tty) {
        fprintf(stderr, "[%zu/%zu] %s %s (%llu frames)\n", done, total, action, id,
                (unsigned long long)frames);
        return;
    }
    enum { W = 30 };
    size_t fill = total > 0 ? done * W / total : W;
    char bar[W + 1];
    for (size_t i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = '\0';
    fprintf(stderr, "\r\033[K%s[%s]%s %zu/%zu %s %s", cli_ce(c, CLI_GREEN), bar,
            cli_ce(c, CLI_RESET), done, total, action, cli_safe(id, 5));
    fflush(stderr);
}

int cmd_migrate(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, OPT_CMD},
        {"to", required_argument, NULL, OPT_CMD + 1},
        {"overwrite", no_argument, NULL, OPT_CMD + 2},
        {NULL, 0, NULL, 0},
    };
    mig_opts o = {NULL, NULL, 0};
    cli_query_flags qf = {cJSON_CreateObject(), NULL, 1, 1};
    if (qf.obj == NULL) return cli_error(c, CLI_FAIL, "out of memory");
    char **pos;
    int npos;
    tape_store *src = NULL, *dst = NULL;
    tape_query *q = NULL;
    char **ids = NULL;
    size_t nids = 0;
    cJSON *list = NULL;
    int code = cli_parse(c, argc, argv, NULL, opts, mig_opt, &o, &qf, &pos, &npos);
    if (code != -1) goto done;
    if (npos > 0) {
        code = cli_error(c, CLI_USAGE, "unexpected argument \"%s\" (see tapestore help migrate)",
                         pos[0]);
        goto done;
    }
    if (o.from == NULL || o.to == NULL) {
        code = cli_error(c, CLI_USAGE, "--from SPEC and --to SPEC are both required");
        goto done;
    }
    if (c->store_spec != NULL) {
        code = cli_error(c, CLI_USAGE, "migrate takes --from and --to, not --store");
        goto done;
    }
    int has_limit = 0;
    if ((code = cli_query_build(c, &qf, &q, &has_limit)) != -1) goto done;
    if (!has_limit) {
        /* Page through the source rather than holding one huge page. */
        tape_query_free(q);
        q = NULL;
        cJSON_AddNumberToObject(qf.obj, "limit", 500);
        if ((code = cli_query_build(c, &qf, &q, NULL)) != -1) goto done;
    }
    if ((code = cli_load_plugins(c)) != CLI_OK) goto done;
    if ((code = open_spec(c, o.from, "source", &src)) != CLI_OK) goto done;
    if ((code = open_spec(c, o.to, "target", &dst)) != CLI_OK) goto done;
    if ((code = collect_ids(c, src, q, has_limit, &ids, &nids)) != CLI_OK) goto done;
    int tty = isatty(2);
    size_t copied = 0, skipped = 0, replaced = 0, completed = 0, failed = 0;
    int first_fail = CLI_OK; /* the exit code of the first tape that failed */
    list = cJSON_CreateArray();
    for (size_t i = 0; i < nids; i++) {
        const char *action = "failed";
        uint64_t frames = 0, bytes = 0;
        char err[4096];
        int rc = migrate_one(src, dst, ids[i], o.overwrite, &action, &frames, &bytes, err,
                             sizeof err);
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "id", ids[i]);
        if (rc != CLI_OK) {
            action = "failed";
            failed++;
            if (tty) fputs("\r\033[K", stderr);
            cli_error(c, rc, "tape \"%s\": %s", ids[i], err);
            if (first_fail == CLI_OK) first_fail = rc;
        } else if (strcmp(action, "skipped") == 0) {
            skipped++;
        } else if (strcmp(action, "replaced") == 0) {
            replaced++;
        } else if (strcmp(action, "completed") == 0) {
            completed++;
        } else {
            copied++;
        }
        cJSON_AddStringToObject(item, "action", action);
        cJSON_AddNumberToObject(item, "frames", (double)frames);
        cJSON_AddNumberToObject(item, "bytes", (double)bytes);
        cJSON_AddItemToObject(item, "error", rc != CLI_OK ? cJSON_CreateString(err)
                                                          : cJSON_CreateNull());
        cJSON_AddItemToArray(list, item);
        progress(c, tty, i + 1, nids, action, ids[i], frames);
    }
    if (tty && nids > 0) fputc('\n', stderr);
    code = first_fail;
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "from", o.from);
        cJSON_AddStringToObject(doc, "to", o.to);
        cJSON_AddNumberToObject(doc, "total", (double)nids);
        cJSON_AddNumberToObject(doc, "copied", (double)copied);
        cJSON_AddNumberToObject(doc, "completed", (double)completed);
        cJSON_AddNumberToObject(doc, "replaced", (double)replaced);
        cJSON_AddNumberToObject(doc, "skipped", (double)skipped);
        cJSON_AddNumberToObject(doc, "failed", (double)failed);
        cJSON_AddItemToObject(doc, "tapes", list);
        list = NULL;
        int pc = cli_print_json(c, doc);
        if (code == CLI_OK) code = pc;
    } else {
        printf("%zu tapes from %s to %s: %zu copied, %zu completed, %zu replaced, %zu skipped "
               "(already there), %s%zu failed%s\n",
               nids, o.from, o.to, copied, completed, replaced, skipped,
               cli_c(c, failed > 0 ? CLI_RED : ""), failed, cli_c(c, failed > 0 ? CLI_RESET : ""));
    }
done:
    cJSON_Delete(list);
    for (size_t i = 0; i < nids; i++) free(ids[i]);
    free(ids);
    tape_query_free(q);
    cJSON_Delete(qf.obj);
    if (src != NULL) {
        int rc = tape_store_close(src);
        if (rc != TAPE_OK && code == CLI_OK) code = cli_lib_error(c, rc, "closing %s", o.from);
    }
    if (dst != NULL) {
        int rc = tape_store_close(dst);
        if (rc != TAPE_OK && code == CLI_OK) code = cli_lib_error(c, rc, "closing %s", o.to);
    }
    return code;
}

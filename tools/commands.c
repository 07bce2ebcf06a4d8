/*
 * commands.c - the subcommands of `tapestore` that read or change one
 * store: providers, ls, search, show, export, import, rm, stats, tail.
 * (migrate is in migrate.c.) The --json documents are specified in
 * docs/cli.md; keep the two in step.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int no_positional(cli *c, int npos, char **pos)
{
    if (npos > 0) {
        return cli_error(c, CLI_USAGE, "unexpected argument \"%s\" (see tapestore help %s)",
                         pos[0], c->cmd);
    }
    return -1;
}

static int check_id(cli *c, const char *id)
{
    if (tape_id_validate(id) != TAPE_OK) {
        return cli_error(c, CLI_USAGE, "invalid tape id \"%s\": %s", id, tape_errmsg());
    }
    return -1;
}

/* ---------------------------------------------------------------- providers */

int cmd_providers(cli *c, int argc, char **argv)
{
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, NULL, NULL, NULL, NULL, NULL, &pos, &npos);
    if (code == -1) code = no_positional(c, npos, pos);
    if (code != -1) return code;
    if ((code = cli_load_plugins(c)) != CLI_OK) return code;
    tape_provider_list *l = NULL;
    int rc = tape_registry_list(&l, tape_registry_default());
    if (rc != TAPE_OK) return cli_lib_error(c, rc, "cannot list providers");
    size_t n = tape_provider_list_count(l);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "providers");
        for (size_t i = 0; i < n; i++) {
            const tape_provider_info *p = tape_provider_list_at(l, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", tape_provider_info_name(p));
            cJSON_AddNumberToObject(o, "version", tape_provider_info_version(p));
            cJSON_AddItemToObject(o, "description",
                                  cli_json_str(tape_provider_info_description(p)));
            cJSON_AddItemToObject(o, "capabilities",
                                  cli_caps_json(tape_provider_info_capabilities(p)));
            cJSON_AddItemToArray(arr, o);
        }
        tape_provider_list_free(l);
        return cli_print_json(c, doc);
    }
    size_t wn = 4, wc = 12;
    char caps[256];
    for (size_t i = 0; i < n; i++) {
        const tape_provider_info *p = tape_provider_list_at(l, i);
        size_t w = cli_width(cli_safe(tape_provider_info_name(p), 0));
        wn = w > wn ? w : wn;
        w = strlen(cli_caps_text(caps, sizeof caps, tape_provider_info_capabilities(p)));
        wc = w > wc ? w : wc;
    }
    printf("%s", cli_c(c, CLI_BOLD));
    cli_pad(stdout, "NAME", wn + 2);
    cli_pad(stdout, "VERSION", 9);
    cli_pad(stdout, "CAPABILITIES", wc + 2);
    printf("DESCRIPTION%s\n", cli_c(c, CLI_RESET));
    for (size_t i = 0; i < n; i++) {
        const tape_provider_info *p = tape_provider_list_at(l, i);
        char ver[32];
        snprintf(ver, sizeof ver, "%u", tape_provider_info_version(p));
        printf("%s", cli_c(c, CLI_CYAN));
        cli_pad(stdout, cli_safe(tape_provider_info_name(p), 0), wn + 2);
        printf("%s", cli_c(c, CLI_RESET));
        cli_pad(stdout, ver, 9);
        cli_pad(stdout, cli_caps_text(caps, sizeof caps, tape_provider_info_capabilities(p)),
                wc + 2);
        printf("%s\n", cli_safe(tape_provider_info_description(p), 1));
    }
    tape_provider_list_free(l);
    return CLI_OK;
}

/* ---------------------------------------------------------------- ls, search */

static const char *status_text(int st)
{
    return st == TAPE_STATUS_FINALIZED ? "finalized" : "recording";
}

static void print_table(const cli *c, const tape_result *page)
{
    size_t n = tape_result_count(page);
    size_t wid = 2, wname = 4;
    for (size_t i = 0; i < n; i++) {
        const tape_entry *e = tape_result_at(page, i);
        size_t w = strlen(tape_entry_id(e));
        wid = w > wid ? w : wid;
        w = cli_width(cli_safe(tape_entry_name(e), 0));
        wname = w > wname ? w : wname;
    }
    wname = wname > 40 ? 40 : wname;
    printf("%s", cli_c(c, CLI_BOLD));
    cli_pad(stdout, "ID", wid + 2);
    cli_pad(stdout, "NAME", wname + 2);
    cli_pad(stdout, "STATUS", 11);
    cli_pad(stdout, "CREATED", 21);
    printf("%8s  %10s  TAGS%s\n", "FRAMES", "DURATION", cli_c(c, CLI_RESET));
    for (size_t i = 0; i < n; i++) {
        const tape_entry *e = tape_result_at(page, i);
        tape_stats st = TAPE_STATS_INIT;
        tape_entry_get_stats(&st, e);
        char name[512], when[64], dur[32], tags[512];
        snprintf(name, sizeof name, "%s", cli_safe(tape_entry_name(e), 0));
        if (cli_width(name) > 40) {
            /* cut at a character boundary, then mark it */
            size_t w = 0, b = 0;
            while (name[b] != '\0' && w < 37) {
                b++;
                while (((unsigned char)name[b] & 0xC0) == 0x80) b++;
                w++;
            }
            snprintf(name + b, sizeof name - b, "...");
        }
        snprintf(dur, sizeof dur, "%lld ms", (long long)st.duration_ms);
        tags[0] = '\0';
        for (size_t k = 0, used = 0; k < tape_entry_tag_count(e) && used < sizeof tags; k++) {
            int m = snprintf(tags + used, sizeof tags - used, "%s%s", k > 0 ? "," : "",
                             tape_entry_tag_at(e, k));
            used += m > 0 ? (size_t)m : 0;
        }
        int st_code = tape_entry_status(e);
        cli_pad(stdout, tape_entry_id(e), wid + 2);
        cli_pad(stdout, name, wname + 2);
        printf("%s", cli_c(c, st_code == TAPE_STATUS_FINALIZED ? CLI_GREEN : CLI_YELLOW));
        cli_pad(stdout, status_text(st_code), 11);
        printf("%s", cli_c(c, CLI_RESET));
        cli_pad(stdout, cli_time_text(when, sizeof when, tape_entry_created_at(e), 1), 21);
        printf("%8llu  %10s  %s\n", (unsigned long long)st.frame_count, dur,
               cli_safe(tags[0] != '\0' ? tags : "-", 1));
    }
}

static int list_tapes(cli *c, cli_query_flags *qf)
{
    tape_query *q = NULL;
    int code = cli_query_build(c, qf, &q, NULL);
    if (code != -1) return code;
    if ((code = cli_open_store(c)) != CLI_OK) {
        tape_query_free(q);
        return code;
    }
    tape_result *page = NULL;
    int rc = tape_store_query(&page, c->store, q);
    tape_query_free(q);
    if (rc != TAPE_OK) return cli_lib_error(c, rc, "cannot query store %s", cli_store_name(c));
    const char *next = tape_result_next_cursor(page);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "tapes");
        for (size_t i = 0; i < tape_result_count(page); i++) {
            cJSON *e = cli_entry_json(tape_result_at(page, i));
            if (e == NULL) {
                cJSON_Delete(doc);
                tape_result_free(page);
                return cli_error(c, CLI_FAIL, "cannot encode an entry: %s", tape_errmsg());
            }
            cJSON_AddItemToArray(arr, e);
        }
        cJSON_AddNumberToObject(doc, "count", (double)tape_result_count(page));
        cJSON_AddItemToObject(doc, "next_cursor", cli_json_str(next));
        tape_result_free(page);
        return cli_print_json(c, doc);
    }
    if (tape_result_count(page) == 0) {
        printf("no tapes in %s%s\n", cli_store_name(c),
               strcmp(c->cmd, "search") == 0 ? " match the query" : "");
    } else {
        print_table(c, page);
    }
    if (next != NULL) {
        printf("%smore: --cursor %s%s\n", cli_c(c, CLI_DIM), next, cli_c(c, CLI_RESET));
    }
    tape_result_free(page);
    return CLI_OK;
}

static int cmd_list(cli *c, int argc, char **argv, int all_keys)
{
    cli_query_flags qf = {cJSON_CreateObject(), NULL, all_keys, 1};
    if (qf.obj == NULL) return cli_error(c, CLI_FAIL, "out of memory");
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, NULL, NULL, NULL, NULL, &qf, &pos, &npos);
    if (code == -1) code = no_positional(c, npos, pos);
    if (code == -1) code = list_tapes(c, &qf);
    cJSON_Delete(qf.obj);
    return code;
}

int cmd_ls(cli *c, int argc, char **argv)
{
    return cmd_list(c, argc, argv, 0);
}

int cmd_search(cli *c, int argc, char **argv)
{
    return cmd_list(c, argc, argv, 1);
}

/* ---------------------------------------------------------------- frame summaries */

/* Requests seen, by direction and id (hash table, open addressing; the
 * latest request with an id wins), so a response gets its method in O(1);
 * round-trip times by response seq (sorted, binary search). */
typedef struct req {
    int dir;      /* 0: an empty slot */
    char *id;     /* the JSON text of the request's id */
    char *method;
} req;

typedef struct rtt_entry {
    uint64_t seq;
    int64_t ms;
} rtt_entry;

struct cli_frames {
    req *slots;
    size_t nslots, used; /* nslots: a power of two */
    rtt_entry *rtts;
    size_t nrtts;
};

static int cmp_rtt(const void *a, const void *b)
{
    const rtt_entry *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int cli_frames_new(cli_frames **out, const tape *t)
{
    cli_frames *fs = calloc(1, sizeof *fs);
    if (fs == NULL) return TAPE_ENOMEM;
    size_t n = t != NULL ? tape_correlation_count(t) : 0;
    if (n > 0) {
        fs->rtts = malloc(n * sizeof *fs->rtts);
        if (fs->rtts == NULL) {
            free(fs);
            return TAPE_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t resp = 0;
            int64_t ms = 0;
            if (tape_correlation_get(NULL, NULL, &resp, &ms, NULL, t, i) == TAPE_OK) {
                fs->rtts[fs->nrtts++] = (rtt_entry){resp, ms};
            }
        }
        qsort(fs->rtts, fs->nrtts, sizeof *fs->rtts, cmp_rtt);
    }
    *out = fs;
    return TAPE_OK;
}

void cli_frames_free(cli_frames *fs)
{
    if (fs == NULL) return;
    for (size_t i = 0; i < fs->nslots; i++) {
        free(fs->slots[i].id);
        free(fs->slots[i].method);
    }
    free(fs->slots);
    free(fs->rtts);
    free(fs);
}

static size_t req_hash(int dir, const char *id)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)dir; /* FNV-1a */
    for (; *id != '\0'; id++) {
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    }
    return (size_t)h;
}

static req *req_slot(req *slots, size_t nslots, int dir, const char *id)
{
    for (size_t i = req_hash(dir, id) & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
        if (slots[i].dir == 0 || (slots[i].dir == dir && strcmp(slots[i].id, id) == 0)) {
            return &slots[i];
        }
    }
}

/* Remember a request; failing to (out of memory) only costs a later
 * response its method in the summary. */
static void remember(cli_frames *fs, int dir, const char *id, const char *method)
{
    if ((fs->used + 1) * 2 > fs->nslots) {
        size_t n = fs->nslots ? fs->nslots * 2 : 64;
        req *ns = calloc(n, sizeof *ns);
        if (ns == NULL) return;
        for (size_t i = 0; i < fs->nslots; i++) {
            if (fs->slots[i].dir != 0) {
                *req_slot(ns, n, fs->slots[i].dir, fs->slots[i].id) = fs->slots[i];
            }
        }
        free(fs->slots);
        fs->slots = ns;
        fs->nslots = n;
    }
    req *r = req_slot(fs->slots, fs->nslots, dir, id);
    char *m = strdup(method);
    if (m == NULL) return;
    if (r->dir != 0) { /* the same id again: the latest wins */
        free(r->method);
        r->method = m;
        return;
    }
    char *i = strdup(id);
    if (i == NULL) {
        free(m);
        return;
    }
    *r = (req){dir, i, m};
    fs->used++;
}

/* The method of the latest request with this id sent the other way. */
static const char *method_of(const cli_frames *fs, int dir, const char *id)
{
    if (fs->nslots == 0) return NULL;
    int other = dir == TAPE_DIR_CLIENT_TO_SERVER ? TAPE_DIR_SERVER_TO_CLIENT
                                                 : TAPE_DIR_CLIENT_TO_SERVER;
    const req *r = req_slot(fs->slots, fs->nslots, other, id);
    return r->dir != 0 ? r->method : NULL;
}

static cJSON *rtt_of(const cli_frames *fs, uint64_t seq)
{
    rtt_entry key = {seq, 0};
    const rtt_entry *r = fs->nrtts > 0 ? bsearch(&key, fs->rtts, fs->nrtts, sizeof key, cmp_rtt) : NULL;
    return r != NULL ? cJSON_CreateNumber((double)r->ms) : cJSON_CreateNull();
}

cJSON *cli_frame_json(cli_frames *fs, const tape_frame *f)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    int dir = tape_frame_direction(f);
    uint64_t seq = tape_frame_seq(f);
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    cJSON_AddNumberToObject(o, "ts", (double)tape_frame_ts(f));
    cJSON_AddStringToObject(o, "direction", dir == TAPE_DIR_CLIENT_TO_SERVER
                                                ? "client_to_server"
                                                : "server_to_client");
    const char *kind = "other";
    char *idtext = NULL;
    const char *method = NULL;
    cJSON *err = cJSON_CreateNull();
    unsigned int flags = tape_frame_flags(f);
    cJSON *msg = NULL;
    if (flags & TAPE_FRAME_OVERSIZE) {
        kind = "oversize";
    } else if (flags & TAPE_FRAME_INVALID_JSON) {
        kind = "invalid_json";
    } else {
        size_t len = 0;
        const char *text = tape_frame_message(f, &len);
        msg = text != NULL ? cJSON_ParseWithLength(text, len) : NULL;
    }
    if (cJSON_IsArray(msg)) {
        kind = "batch";
    } else if (cJSON_IsObject(msg)) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
        cJSON *m = cJSON_GetObjectItemCaseSensitive(msg, "method");
        cJSON *e = cJSON_GetObjectItemCaseSensitive(msg, "error");
        if (id != NULL) idtext = cJSON_PrintUnformatted(id);
        if (cJSON_IsString(m)) {
            method = m->valuestring;
            kind = id != NULL ? "request" : "notification";
            if (idtext != NULL) remember(fs, dir, idtext, method);
        } else if (e != NULL) {
            kind = "error";
            cJSON_Delete(err);
            err = cJSON_CreateObject();
            cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
            cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "message");
            cJSON_AddItemToObject(err, "code", cJSON_IsNumber(code)
                                                   ? cJSON_CreateNumber(code->valuedouble)
                                                   : cJSON_CreateNull());
            cJSON_AddItemToObject(err, "message",
                                  cli_json_str(cJSON_IsString(text) ? text->valuestring : NULL));
        } else if (cJSON_GetObjectItemCaseSensitive(msg, "result") != NULL) {
            kind = "response";
        }
        if (method == NULL && idtext != NULL) method = method_of(fs, dir, idtext);
    }
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddItemToObject(o, "method", cli_json_str(method));
    cJSON_AddItemToObject(o, "id", idtext != NULL ? cJSON_Parse(idtext) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "correlation_id", cli_json_str(tape_frame_correlation_id(f)));
    cJSON_AddBoolToObject(o, "is_error", tape_frame_is_error(f));
    cJSON_AddItemToObject(o, "error", err);
    cJSON_AddItemToObject(o, "rtt_ms", rtt_of(fs, seq));
    free(idtext);
    cJSON_Delete(msg);
    return o;
}

void cli_frame_header(const cli *c, FILE *out)
{
    fprintf(out, "%s%6s %8s  %-3s %-12s %-28s %-8s %s%s\n", cli_c(c, CLI_BOLD), "SEQ", "TS",
            "DIR", "KIND", "METHOD", "ID", "DETAIL", cli_c(c, CLI_RESET));
}

void cli_frame_row(const cli *c, FILE *out, const cJSON *s)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(s, "kind");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(s, "method");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(s, "error");
    const cJSON *rtt = cJSON_GetObjectItemCaseSensitive(s, "rtt_ms");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(s, "direction");
    int c2s = strcmp(dir->valuestring, "client_to_server") == 0;
    char ts[32], idtext[64] = "-", detail[600] = "";
    snprintf(ts, sizeof ts, "%.0fms", cJSON_GetObjectItemCaseSensitive(s, "ts")->valuedouble);
    if (!cJSON_IsNull(id)) {
        char *t = cJSON_PrintUnformatted(id);
        snprintf(idtext, sizeof idtext, "%s", t != NULL ? cli_safe(t, 2) : "?");
        free(t);
    }
    size_t used = 0;
    if (cJSON_IsObject(err)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
        int n = snprintf(detail, sizeof detail, "%serror", cli_c(c, CLI_RED));
        if (cJSON_IsNumber(code) && n > 0)
            n += snprintf(detail + n, sizeof detail - (size_t)n, " %.0f", code->valuedouble);
        if (cJSON_IsString(msg) && n > 0)
            n += snprintf(detail + n, sizeof detail - (size_t)n, ": %s",
                          cli_safe(msg->valuestring, 3));
        if (n > 0)
            n += snprintf(detail + n, sizeof detail - (size_t)n, "%s", cli_c(c, CLI_RESET));
        used = n > 0 ? (size_t)n : 0;
    }
    if (cJSON_IsNumber(rtt) && used < sizeof detail) {
        snprintf(detail + used, sizeof detail - used, "%srtt %.0f ms", used > 0 ? "  " : "",
                 rtt->valuedouble);
    }
    fprintf(out, "%6.0f %8s  %s%-3s%s %-12s %-28s %-8s %s\n",
            cJSON_GetObjectItemCaseSensitive(s, "seq")->valuedouble, ts,
            cli_c(c, c2s ? CLI_CYAN : CLI_GREEN), c2s ? ">" : "<", cli_c(c, CLI_RESET),
            kind->valuestring, cJSON_IsString(method) ? cli_safe(method->valuestring, 4) : "-",
            idtext, detail);
}

/* ---------------------------------------------------------------- show */

static int load_tape(cli *c, const char *id, tape **out)
{
    int rc = tape_store_load(out, c->store, id);
    if (rc == TAPE_ENOTFOUND) {
        return cli_error(c, CLI_NOTFOUND, "no tape \"%s\" in %s", id, cli_store_name(c));
    }
    if (rc != TAPE_OK) {
        return cli_lib_error(c, rc, "cannot load tape \"%s\" from %s", id, cli_store_name(c));
    }
    return -1;
}

static int show_human(cli *c, const tape *t, cli_frames *fs)
{
    char buf[64];
    tape_stats st = TAPE_STATS_INIT;
    tape_get_stats(&st, t);
    int status = tape_status(t);
    printf("%sTape %s%s\n", cli_c(c, CLI_BOLD), tape_id(t), cli_c(c, CLI_RESET));
    printf("  name:         %s\n", cli_safe(tape_name(t), 0));
    printf("  description:  %s\n", cli_safe(tape_description(t), 0));
    printf("  status:       %s%s%s\n",
           cli_c(c, status == TAPE_STATUS_FINALIZED ? CLI_GREEN : CLI_YELLOW), status_text(status),
           cli_c(c, CLI_RESET));
    printf("  created:      %s\n", cli_time_text(buf, sizeof buf, tape_created_at(t), 0));
    printf("  updated:      %s\n", cli_time_text(buf, sizeof buf, tape_updated_at(t), 0));
    printf("  finalized:    %s\n", cli_time_text(buf, sizeof buf, tape_finalized_at(t), 0));
    printf("  session:      %s\n", cli_safe(tape_session_id(t), 0));
    printf("  protocol:     %s\n", cli_safe(tape_protocol_version(t), 0));
    printf("  tags:        ");
    for (size_t i = 0; i < tape_tag_count(t); i++) {
        printf(" %s", cli_safe(tape_tag_at(t, i), 0));
    }
    printf("%s\n", tape_tag_count(t) == 0 ? " -" : "");
    printf("  transport:    %s\n", cli_safe(tape_transport_json(t), 0));
    printf("  environment:  %s\n", cli_safe(tape_environment_json(t), 0));
    printf("%sStats%s\n", cli_c(c, CLI_BOLD), cli_c(c, CLI_RESET));
    printf("  frames:       %llu (%llu client to server, %llu server to client)\n",
           (unsigned long long)st.frame_count, (unsigned long long)st.client_to_server,
           (unsigned long long)st.server_to_client);
    printf("  errors:       %s%llu%s\n", cli_c(c, st.error_count > 0 ? CLI_RED : ""),
           (unsigned long long)st.error_count, cli_c(c, st.error_count > 0 ? CLI_RESET : ""));
    printf("  correlations: %llu\n", (unsigned long long)st.correlation_count);
    printf("  duration:     %lld ms\n", (long long)st.duration_ms);
    printf("  size:         %llu bytes\n", (unsigned long long)st.file_size_bytes);
    size_t nc = tape_correlation_count(t);
    printf("%sCorrelations%s\n", cli_c(c, CLI_BOLD), cli_c(c, CLI_RESET));
    if (nc == 0) printf("  none\n");
    else printf("  %-20s %8s %9s %8s  %s\n", "ID", "REQUEST", "RESPONSE", "RTT", "STATUS");
    for (size_t i = 0; i < nc; i++) {
        const char *cid = NULL, *cst = NULL;
        uint64_t rq = 0, rs = 0;
        int64_t rtt = 0;
        tape_correlation_get(&cid, &rq, &rs, &rtt, &cst, t, i);
        char r[32];
        snprintf(r, sizeof r, "%lld ms", (long long)rtt);
        printf("  %-20s %8llu %9llu %8s  %s\n", cli_safe(cid, 0), (unsigned long long)rq,
               (unsigned long long)rs, r, cli_safe(cst, 1));
    }
    printf("%sFrames%s\n", cli_c(c, CLI_BOLD), cli_c(c, CLI_RESET));
    if (tape_frame_count(t) == 0) {
        printf("  none\n");
        return CLI_OK;
    }
    cli_frame_header(c, stdout);
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        cJSON *s = cli_frame_json(fs, tape_frame_at(t, i));
        if (s == NULL) return cli_error(c, CLI_FAIL, "out of memory");
        cli_frame_row(c, stdout, s);
        cJSON_Delete(s);
    }
    return CLI_OK;
}

static int show_json(cli *c, const tape *t, cli_frames *fs)
{
    char *meta = NULL;
    size_t len = 0;
    int rc = tape_encode_meta(&meta, &len, t);
    if (rc != TAPE_OK) return cli_lib_error(c, rc, "cannot encode tape \"%s\"", tape_id(t));
    cJSON *doc = cJSON_CreateObject();
    cJSON *m = cJSON_ParseWithLength(meta, len);
    tape_string_free(meta);
    if (doc == NULL || m == NULL) {
        cJSON_Delete(doc);
        cJSON_Delete(m);
        return cli_error(c, CLI_FAIL, "out of memory");
    }
    cJSON_AddItemToObject(doc, "tape", m);
    cJSON *cs = cJSON_AddArrayToObject(doc, "correlations");
    for (size_t i = 0; i < tape_correlation_count(t); i++) {
        const char *cid = NULL, *cst = NULL;
        uint64_t rq = 0, rs = 0;
        int64_t rtt = 0;
        tape_correlation_get(&cid, &rq, &rs, &rtt, &cst, t, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "id", cli_json_str(cid));
        cJSON_AddNumberToObject(o, "request_seq", (double)rq);
        cJSON_AddNumberToObject(o, "response_seq", (double)rs);
        cJSON_AddNumberToObject(o, "rtt_ms", (double)rtt);
        cJSON_AddItemToObject(o, "status", cli_json_str(cst));
        cJSON_AddItemToArray(cs, o);
    }
    cJSON *fr = cJSON_AddArrayToObject(doc, "frames");
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        cJSON *s = cli_frame_json(fs, tape_frame_at(t, i));
        if (s == NULL) {
            cJSON_Delete(doc);
            return cli_error(c, CLI_FAIL, "out of memory");
        }
        cJSON_AddItemToArray(fr, s);
    }
    return cli_print_json(c, doc);
}

int cmd_show(cli *c, int argc, char **argv)
{
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, NULL, NULL, NULL, NULL, NULL, &pos, &npos);
    if (code != -1) return code;
    if (npos != 1) {
        return cli_error(c, CLI_USAGE, "expected one tape id (usage: tapestore show ID)");
    }
    if ((code = check_id(c, pos[0])) != -1) return code;
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    tape *t = NULL;
    if ((code = load_tape(c, pos[0], &t)) != -1) return code;
    cli_frames *fs = NULL;
    if (cli_frames_new(&fs, t) != TAPE_OK) {
        tape_free(t);
        return cli_error(c, CLI_FAIL, "out of memory");
    }
    code = c->json ? show_json(c, t, fs) : show_human(c, t, fs);
    cli_frames_free(fs);
    tape_free(t);
    return code;
}

/* ---------------------------------------------------------------- export */

/* Write data to path atomically: a temporary file beside it, synced, then
 * renamed over it, so a reader never sees half a document. */
static int write_file(cli *c, const char *path, const char *data, size_t len)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    if (tmp == NULL) return cli_error(c, CLI_FAIL, "out of memory");
    snprintf(tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return cli_error(c, e == ENOENT ? CLI_NOTFOUND : CLI_FAIL, "cannot create %s: %s", path,
                         strerror(e));
    }
    size_t off = 0;
    int e = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            e = errno;
            break;
        }
        off += (size_t)w;
    }
    if (e == 0 && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && e == 0) e = errno;
    if (e == 0 && rename(tmp, path) != 0) e = errno;
    if (e != 0) {
        unlink(tmp);
        free(tmp);
        return cli_error(c, CLI_FAIL, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return CLI_OK;
}

typedef struct export_opts {
    const char *output, *meta;
} export_opts;

static int export_opt(cli *c, void *ctx, int id, const char *arg)
{
    export_opts *o = ctx;
    (void)c;
    if (id == 'o') o->output = arg;
    if (id == OPT_CMD) o->meta = arg;
    return -1;
}

int cmd_export(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"meta", required_argument, NULL, OPT_CMD},
        {NULL, 0, NULL, 0},
    };
    export_opts o = {NULL, NULL};
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, "o:", opts, export_opt, &o, NULL, &pos, &npos);
    if (code != -1) return code;
    if (npos != 1) {
        return cli_error(c, CLI_USAGE, "expected one tape id (usage: tapestore export ID [-o FILE])");
    }
    if (c->json && o.output == NULL) {
        return cli_error(c, CLI_USAGE, "--json needs -o FILE (without it the tape itself is "
                                       "written to stdout)");
    }
    if ((code = check_id(c, pos[0])) != -1) return code;
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    tape *t = NULL;
    if ((code = load_tape(c, pos[0], &t)) != -1) return code;
    char *doc = NULL, *meta = NULL;
    size_t len = 0, mlen = 0;
    int rc = tape_encode_jsonl(&doc, &len, t);
    if (rc == TAPE_OK && o.meta != NULL) rc = tape_encode_meta(&meta, &mlen, t);
    tape_free(t);
    if (rc != TAPE_OK) {
        tape_string_free(doc);
        return cli_lib_error(c, rc, "cannot encode tape \"%s\"", pos[0]);
    }
    if (o.output != NULL) {
        code = write_file(c, o.output, doc, len);
    } else {
        code = fwrite(doc, 1, len, stdout) == len && fflush(stdout) == 0
                   ? CLI_OK
                   : cli_error(c, CLI_FAIL, "cannot write to stdout: %s", strerror(errno));
    }
    if (code == CLI_OK && o.meta != NULL) code = write_file(c, o.meta, meta, mlen);
    tape_string_free(doc);
    tape_string_free(meta);
    if (code == CLI_OK && c->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", pos[0]);
        cJSON_AddStringToObject(j, "file", o.output);
        cJSON_AddNumberToObject(j, "bytes", (double)len);
        cJSON_AddItemToObject(j, "meta_file", cli_json_str(o.meta));
        cJSON_AddItemToObject(j, "meta_bytes", o.meta != NULL ? cJSON_CreateNumber((double)mlen)
                                                              : cJSON_CreateNull());
        code = cli_print_json(c, j);
    }
    return code;
}

/* ---------------------------------------------------------------- import */

typedef struct import_opts {
    int recursive, overwrite;
} import_opts;

static int import_opt(cli *c, void *ctx, int id, const char *arg)
{
    import_opts *o = ctx;
    (void)c;
    (void)arg;
    if (id == 'r') o->recursive = 1;
    if (id == OPT_CMD) o->overwrite = 1;
    return -1;
}

/* The whole file into memory. NULL with errno set on failure. */
static char *read_all(const char *path, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            close(fd);
            errno = ENOMEM;
            return NULL;
        }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    *out_len = len;
    return buf;
}

typedef struct import_run {
    cli *c;
    import_opts o;
    cJSON *done, *failed;
    int code; /* the first failure's exit code */
} import_run;

static void import_fail(import_run *r, int code, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void import_fail(import_run *r, int code, const char *file, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error(r->c, code, "%s: %s", file, msg);
    if (r->code == CLI_OK) r->code = code;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddItemToArray(r->failed, o);
}

int cli_same_tape(const tape *a, const tape *b)
{
    char *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    int rc = tape_encode_jsonl(&x, &xl, a);
    if (rc == TAPE_OK) rc = tape_encode_jsonl(&y, &yl, b);
    int same = rc == TAPE_OK && xl == yl && memcmp(x, y, xl) == 0;
    tape_string_free(x);
    tape_string_free(y);
    x = y = NULL;
    if (rc == TAPE_OK && same) {
        rc = tape_encode_meta(&x, &xl, a);
        if (rc == TAPE_OK) rc = tape_encode_meta(&y, &yl, b);
        same = rc == TAPE_OK && xl == yl && memcmp(x, y, xl) == 0;
        tape_string_free(x);
        tape_string_free(y);
    }
    return rc != TAPE_OK ? rc : same;
}

static void import_file(import_run *r, const char *file)
{
    cli *c = r->c;
    size_t len = 0, mlen = 0;
    char *doc = read_all(file, &len);
    if (doc == NULL) {
        int e = errno;
        import_fail(r, e == ENOENT ? CLI_NOTFOUND : CLI_FAIL, file, "cannot read: %s",
                    strerror(e));
        return;
    }
    /* FILE.jsonl -> FILE.meta.json beside it */
    size_t n = strlen(file);
    char *metapath = malloc(n + 16);
    char *meta = NULL;
    if (metapath != NULL) {
        size_t stem = n >= 6 && strcmp(file + n - 6, ".jsonl") == 0 ? n - 6 : n;
        memcpy(metapath, file, stem);
        memcpy(metapath + stem, ".meta.json", 11);
        meta = read_all(metapath, &mlen);
        if (meta == NULL && errno != ENOENT) {
            int e = errno;
            import_fail(r, CLI_FAIL, metapath, "cannot read: %s", strerror(e));
            free(metapath);
            free(doc);
            return;
        }
    }
    tape *t = NULL;
    tape_decode_report rep = TAPE_DECODE_REPORT_INIT;
    int rc = tape_decode(&t, doc, len, meta, mlen, NULL, &rep);
    free(doc);
    free(meta);
    if (rc != TAPE_OK) {
        /* The decoder's message names the line ("line 3: malformed frame...")
         * or the meta; say which file that is. */
        const char *msg = tape_errmsg();
        if (strncmp(msg, "meta", 4) == 0 && metapath != NULL) {
            import_fail(r, CLI_FAIL, file, "%s (from %s)", msg, metapath);
        } else {
            import_fail(r, CLI_FAIL, file, "%s", msg);
        }
        free(metapath);
        return;
    }
    if (rep.torn_tail) {
        cli_warn(c, "%s: the last line is incomplete (a recording cut short); imported without it",
                 file);
    }
    const char *id = tape_id(t);
    const char *action = "imported";
    tape *old = NULL;
    rc = tape_store_load(&old, c->store, id);
    if (rc == TAPE_OK) {
        int same = cli_same_tape(t, old);
        tape_free(old);
        if (same < 0) {
            import_fail(r, CLI_FAIL, file, "cannot compare with tape \"%s\" in the store: %s", id,
                        tape_errmsg());
            goto out;
        }
        if (same) {
            action = "skipped";
        } else if (!r->o.overwrite) {
            import_fail(r, CLI_FAIL, file,
                        "tape \"%s\" is already in the store with different content "
                        "(--overwrite replaces it)", id);
            goto out;
        } else {
            action = "replaced";
        }
    } else if (rc != TAPE_ENOTFOUND) {
        import_fail(r, cli_code(rc) == CLI_NOTFOUND ? CLI_FAIL : cli_code(rc), file,
                    "cannot check tape \"%s\" in the store: %s", id, tape_errmsg());
        goto out;
    }
    if (strcmp(action, "skipped") != 0) {
        rc = tape_store_save(c->store, t);
        if (rc != TAPE_OK) {
            import_fail(r, CLI_FAIL, file, "cannot save tape \"%s\": %s", id, tape_errmsg());
            goto out;
        }
    }
    if (!c->json) {
        printf("%s%s%s %s from %s%s\n", cli_c(c, strcmp(action, "skipped") == 0 ? CLI_DIM
                                                                                 : CLI_GREEN),
               action, cli_c(c, CLI_RESET), id, file,
               strcmp(action, "skipped") == 0 ? " (already in the store, same content)" : "");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "action", action);
    cJSON_AddNumberToObject(o, "frames", (double)tape_frame_count(t));
    cJSON_AddItemToArray(r->done, o);
out:
    free(metapath);
    tape_free(t);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void import_dir(import_run *r, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        import_fail(r, e == ENOENT ? CLI_NOTFOUND : CLI_FAIL, dir, "cannot read directory: %s",
                    strerror(e));
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (nn == NULL) break;
            names = nn;
        }
        size_t l = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = malloc(l);
        if (names[n] == NULL) break;
        snprintf(names[n], l, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (lstat(names[i], &sb) != 0) {
            /* gone since the listing: nothing to import */
        } else if (S_ISDIR(sb.st_mode)) {
            if (r->o.recursive && depth < 64) import_dir(r, names[i], depth + 1);
        } else if (S_ISREG(sb.st_mode)) {
            size_t l = strlen(names[i]);
            if (l > 6 && strcmp(names[i] + l - 6, ".jsonl") == 0) import_file(r, names[i]);
        }
        free(names[i]);
    }
    free(names);
}

int cmd_import(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"recursive", no_argument, NULL, 'r'},
        {"overwrite", no_argument, NULL, OPT_CMD},
        {NULL, 0, NULL, 0},
    };
    import_run r = {c, {0, 0}, NULL, NULL, CLI_OK};
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, "r", opts, import_opt, &r.o, NULL, &pos, &npos);
    if (code != -1) return code;
    if (npos == 0) {
        return cli_error(c, CLI_USAGE, "expected FILE.jsonl or DIR arguments (usage: tapestore import FILE|DIR...)");
    }
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    r.done = cJSON_CreateArray();
    r.failed = cJSON_CreateArray();
    for (int i = 0; i < npos; i++) {
        struct stat sb;
        if (stat(pos[i], &sb) != 0) {
            int e = errno;
            import_fail(&r, e == ENOENT ? CLI_NOTFOUND : CLI_FAIL, pos[i], "%s", strerror(e));
        } else if (S_ISDIR(sb.st_mode)) {
            import_dir(&r, pos[i], 0);
        } else {
            import_file(&r, pos[i]);
        }
    }
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "imported", r.done);
        cJSON_AddItemToObject(doc, "failed", r.failed);
        code = cli_print_json(c, doc);
        return r.code != CLI_OK ? r.code : code;
    }
    int ok = cJSON_GetArraySize(r.done), bad = cJSON_GetArraySize(r.failed);
    cJSON_Delete(r.done);
    cJSON_Delete(r.failed);
    if (ok == 0 && bad == 0) printf("no .jsonl files found\n");
    return r.code;
}

/* ---------------------------------------------------------------- rm */

static int rm_opt(cli *c, void *ctx, int id, const char *arg)
{
    (void)c;
    (void)arg;
    if (id == 'f') *(int *)ctx = 1;
    return -1;
}

int cmd_rm(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int force = 0;
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, "f", opts, rm_opt, &force, NULL, &pos, &npos);
    if (code != -1) return code;
    if (npos == 0) return cli_error(c, CLI_USAGE, "expected tape ids (usage: tapestore rm ID...)");
    for (int i = 0; i < npos; i++) {
        if ((code = check_id(c, pos[i])) != -1) return code;
    }
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    cJSON *removed = cJSON_CreateArray(), *missing = cJSON_CreateArray();
    cJSON *failed = cJSON_CreateArray();
    code = CLI_OK;
    for (int i = 0; i < npos; i++) {
        int rc = tape_store_delete(c->store, pos[i]);
        if (rc == TAPE_OK) {
            cJSON_AddItemToArray(removed, cJSON_CreateString(pos[i]));
            if (!c->json) printf("removed %s\n", pos[i]);
        } else if (rc == TAPE_ENOTFOUND) {
            cJSON_AddItemToArray(missing, cJSON_CreateString(pos[i]));
            if (!force) {
                cli_error(c, CLI_NOTFOUND, "no tape \"%s\" in %s", pos[i], cli_store_name(c));
                if (code == CLI_OK) code = CLI_NOTFOUND;
            }
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", pos[i]);
            cJSON_AddStringToObject(o, "error", tape_errmsg());
            cJSON_AddItemToArray(failed, o);
            cli_lib_error(c, rc, "cannot delete tape \"%s\"", pos[i]);
            if (code == CLI_OK) code = CLI_FAIL;
        }
    }
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "removed", removed);
        cJSON_AddItemToObject(doc, "missing", missing);
        cJSON_AddItemToObject(doc, "failed", failed);
        int pc = cli_print_json(c, doc);
        return code != CLI_OK ? code : pc;
    }
    cJSON_Delete(removed);
    cJSON_Delete(missing);
    cJSON_Delete(failed);
    return code;
}

/* ---------------------------------------------------------------- stats */

int cmd_stats(cli *c, int argc, char **argv)
{
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, NULL, NULL, NULL, NULL, NULL, &pos, &npos);
    if (code == -1) code = no_positional(c, npos, pos);
    if (code != -1) return code;
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    int rc = tape_store_stats_get(&st, c->store);
    if (rc != TAPE_OK) return cli_lib_error(c, rc, "cannot get the stats of %s", cli_store_name(c));
    unsigned int native = 0, avail = 0;
    tape_store_capabilities(&native, &avail, c->store);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "store", cli_store_name(c));
        cJSON_AddStringToObject(doc, "provider", tape_store_provider(c->store));
        cJSON_AddNumberToObject(doc, "tape_count", (double)st.tape_count);
        cJSON_AddNumberToObject(doc, "frame_count", (double)st.frame_count);
        cJSON_AddNumberToObject(doc, "total_bytes", (double)st.total_bytes);
        cJSON *caps = cJSON_AddObjectToObject(doc, "capabilities");
        cJSON_AddItemToObject(caps, "native", cli_caps_json(native));
        cJSON_AddItemToObject(caps, "available", cli_caps_json(avail));
        return cli_print_json(c, doc);
    }
    char b1[256], b2[256];
    printf("%sstore:%s        %s\n", cli_c(c, CLI_BOLD), cli_c(c, CLI_RESET), cli_store_name(c));
    printf("provider:     %s\n", tape_store_provider(c->store));
    printf("tapes:        %llu\n", (unsigned long long)st.tape_count);
    printf("frames:       %llu\n", (unsigned long long)st.frame_count);
    printf("bytes:        %llu\n", (unsigned long long)st.total_bytes);
    printf("native:       %s\n", cli_caps_text(b1, sizeof b1, native));
    printf("available:    %s\n", cli_caps_text(b2, sizeof b2, avail));
    return CLI_OK;
}

/* ---------------------------------------------------------------- tail */

static volatile sig_atomic_t tail_stop = 0;

static void on_sigint(int sig)
{
    (void)sig;
    tail_stop = 1;
}

typedef struct tail_opts {
    int follow, raw;
    int64_t lines;    /* -1: all */
    int64_t interval; /* ms */
} tail_opts;

static int tail_opt(cli *c, void *ctx, int id, const char *arg)
{
    tail_opts *o = ctx;
    if (id == 'f') o->follow = 1;
    if (id == OPT_CMD + 1) o->raw = 1;
    if (id == 'n') {
        if (strcmp(arg, "all") == 0) {
            o->lines = -1;
        } else if (cli_parse_int(&o->lines, arg) != 0 || o->lines < 0) {
            return cli_error(c, CLI_USAGE, "-n: expected a number >= 0 or \"all\", not \"%s\"",
                             arg);
        }
    }
    if (id == OPT_CMD) {
        if (cli_parse_int(&o->interval, arg) != 0 || o->interval < 10 ||
            o->interval > 3600000) {
            return cli_error(c, CLI_USAGE,
                             "--interval: expected milliseconds from 10 to 3600000, not \"%s\"",
                             arg);
        }
    }
    return -1;
}

/* Emit one frame: its stored line (--raw), its summary into `collect`
 * (--json without -f), a summary object on a line (--json -f), or a row.
 * `line` and `s` are taken over. */
static int tail_emit(cli *c, const tail_opts *o, char *line, cJSON *s, cJSON *collect)
{
    if (o->raw) {
        cJSON_Delete(s);
        if (line == NULL) return cli_error(c, CLI_FAIL, "out of memory");
        puts(line);
        free(line);
        return CLI_OK;
    }
    free(line);
    if (s == NULL) return cli_error(c, CLI_FAIL, "out of memory");
    if (collect != NULL) {
        cJSON_AddItemToArray(collect, s);
        return CLI_OK;
    }
    if (c->json) {
        char *t = cJSON_PrintUnformatted(s);
        cJSON_Delete(s);
        if (t == NULL) return cli_error(c, CLI_FAIL, "out of memory");
        puts(t);
        free(t);
        return CLI_OK;
    }
    cli_frame_row(c, stdout, s);
    cJSON_Delete(s);
    return CLI_OK;
}

/* Is the tape still recording? 1 yes, 0 finalized, 2 gone, <0 error. */
static int tail_state(tape_store *s, const char *id)
{
    tape_query *q = NULL;
    int rc = tape_query_parse(&q, "{\"status\":\"recording\"}");
    if (rc != TAPE_OK) return rc;
    tape_result *page = NULL;
    rc = tape_store_query(&page, s, q);
    tape_query_free(q);
    if (rc != TAPE_OK) return rc;
    int state = -1;
    for (size_t i = 0; i < tape_result_count(page); i++) {
        if (strcmp(tape_entry_id(tape_result_at(page, i)), id) == 0) state = 1;
    }
    tape_result_free(page);
    if (state == 1) return 1;
    int exists = 0;
    rc = tape_store_exists(&exists, s, id);
    if (rc != TAPE_OK) return rc;
    return exists ? 0 : 2;
}

/* The frames with seq >= from. Each is summarised (which also teaches the
 * method table the requests, for the responses that follow); with keep >= 0
 * only the last `keep` are emitted (a ring of summaries, so a long tape is
 * never held whole), else every one as it is read. */
static int tail_read(cli *c, const char *id, uint64_t from, int *seen, uint64_t *last,
                     const tail_opts *o, cli_frames *fs, cJSON *collect, int64_t keep)
{
    tape_frame_iter *it = NULL;
    int rc = tape_store_read_frames(&it, c->store, id, from, TAPE_SEQ_END);
    if (rc == TAPE_ENOTFOUND) {
        return cli_error(c, CLI_NOTFOUND, "no tape \"%s\" in %s", id, cli_store_name(c));
    }
    if (rc != TAPE_OK) return cli_lib_error(c, rc, "cannot read the frames of \"%s\"", id);
    typedef struct slot {
        char *line;
        cJSON *s;
    } slot;
    slot *ring = NULL;
    size_t rn = 0, rhead = 0;
    if (keep > 0) {
        ring = calloc((size_t)keep, sizeof *ring);
        if (ring == NULL) {
            tape_frame_iter_free(it);
            return cli_error(c, CLI_FAIL, "out of memory");
        }
    }
    int code = CLI_OK;
    const tape_frame *f = NULL;
    while (code == CLI_OK && !tail_stop && (rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        *last = tape_frame_seq(f);
        *seen = 1;
        size_t len = 0;
        const char *l = tape_frame_line(f, &len);
        char *line = o->raw ? strndup(l, len) : NULL;
        cJSON *s = cli_frame_json(fs, f);
        if (keep < 0) {
            code = tail_emit(c, o, line, s, collect);
        } else if (keep == 0) {
            free(line);
            cJSON_Delete(s);
        } else {
            if (rn == (size_t)keep) { /* the oldest falls out */
                free(ring[rhead].line);
                cJSON_Delete(ring[rhead].s);
                rhead = (rhead + 1) % (size_t)keep;
                rn--;
            }
            ring[(rhead + rn) % (size_t)keep] = (slot){line, s};
            rn++;
        }
    }
    tape_frame_iter_free(it);
    for (size_t i = 0; i < rn; i++) {
        slot *sl = &ring[(rhead + i) % (size_t)keep];
        if (code == CLI_OK) {
            code = tail_emit(c, o, sl->line, sl->s, collect);
        } else {
            free(sl->line);
            cJSON_Delete(sl->s);
        }
    }
    free(ring);
    if (code == CLI_OK && rc != TAPE_DONE && rc != TAPE_OK) {
        code = cli_lib_error(c, rc, "cannot read the frames of \"%s\"", id);
    }
    fflush(stdout);
    return code;
}

int cmd_tail(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, OPT_CMD},
        {"raw", no_argument, NULL, OPT_CMD + 1},
        {NULL, 0, NULL, 0},
    };
    tail_opts o = {0, 0, 10, 200};
    char **pos;
    int npos;
    int code = cli_parse(c, argc, argv, "fn:", opts, tail_opt, &o, NULL, &pos, &npos);
    if (code != -1) return code;
    if (npos != 1) return cli_error(c, CLI_USAGE, "expected one tape id (usage: tapestore tail [-f] ID)");
    if (o.raw && c->json) return cli_error(c, CLI_USAGE, "--raw and --json exclude each other");
    const char *id = pos[0];
    if ((code = check_id(c, id)) != -1) return code;
    if ((code = cli_open_store(c)) != CLI_OK) return code;
    cli_frames *fs = NULL;
    if (cli_frames_new(&fs, NULL) != TAPE_OK) return cli_error(c, CLI_FAIL, "out of memory");
    cJSON *doc = NULL, *collect = NULL;
    if (c->json && !o.follow) {
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        collect = cJSON_AddArrayToObject(doc, "frames");
    }
    if (o.follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the sleep ends at once */
        sigaction(SIGTERM, &sa, NULL);
    }
    int seen = 0;
    uint64_t last = 0;
    /* The state before the first read: a tape finalized by then has every
     * frame in that read. */
    int state = o.follow ? tail_state(c->store, id) : 0;
    if (state < 0) {
        code = cli_lib_error(c, state, "cannot check the status of \"%s\"", id);
    } else if (state == 2) {
        code = cli_error(c, CLI_NOTFOUND, "no tape \"%s\" in %s", id, cli_store_name(c));
    } else {
        code = tail_read(c, id, 0, &seen, &last, &o, fs, collect, o.lines);
    }
    while (code == CLI_OK && o.follow && state == 1 && !tail_stop) {
        struct timespec ts = {(time_t)(o.interval / 1000), (long)(o.interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (tail_stop) break;
        state = tail_state(c->store, id);
        if (state < 0) {
            code = cli_lib_error(c, state, "cannot check the status of \"%s\"", id);
            break;
        }
        if (state == 2) {
            code = cli_error(c, CLI_FAIL, "tape \"%s\" was deleted while following it", id);
            break;
        }
        /* Frames after the last one seen; state 0 (finalized before this
         * read) makes it the last read. */
        code = tail_read(c, id, seen ? last + 1 : 0, &seen, &last, &o, fs, NULL, -1);
    }
    cli_frames_free(fs);
    if (doc != NULL) {
        if (code == CLI_OK) {
            cJSON_AddNumberToObject(doc, "count", cJSON_GetArraySize(collect));
            return cli_print_json(c, doc);
        }
        cJSON_Delete(doc);
    }
    return code;
}

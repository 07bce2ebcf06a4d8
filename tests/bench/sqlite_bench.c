/*
 * sqlite_bench.c - tape-bench-sqlite: figures of the sqlite provider, each
 * beside the memory and filesystem providers on the same data in the same
 * run (ratios, never absolute thresholds: docs/benchmarks.md).
 *
 *   tape-bench-sqlite [--quick] [--size N] [--dir DIR]
 *
 * Search over 10,000 and N tapes (default N = 100,000; 1,000,000 on
 * request) for a tags-and-date query and a text query; save and append
 * throughput against the filesystem provider. One JSON object per line.
 */
#include <tapestore/tapestore.h>

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rm_rf.h"

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tape-bench-sqlite: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc != TAPE_OK) die("%s failed: %s (%s)", what, tape_strerror(rc), tape_errmsg());
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


static char base[512];
static int counter;

/* Open memory, filesystem and sqlite stores on fresh locations. */
static void open3(tape_store *s[3], const char *fs_dur, const char *sq_sync)
{
    char cfg[1200];
    check(tape_store_open(&s[0], NULL, "memory", "{}", TAPE_OPEN_EAGER), "open memory");
    counter++;
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s/fs%d\",\"durability\":\"%s\"}", base, counter, fs_dur);
    check(tape_store_open(&s[1], NULL, "filesystem", cfg, TAPE_OPEN_EAGER), "open filesystem");
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s/sq%d.db\",\"synchronous\":\"%s\"}", base, counter,
             sq_sync);
    check(tape_store_open(&s[2], NULL, "sqlite", cfg, TAPE_OPEN_EAGER), "open sqlite");
}

static void close3(tape_store *s[3])
{
    for (int i = 0; i < 3; i++) check(tape_store_close(s[i]), "close");
}

static const char *const tags[] = { "prod", "staging", "dev", "tools", "payments" };

static void make_tape(tape **out, long i, int frames)
{
    char id[64], msg[256];
    tape *t = NULL;
    snprintf(id, sizeof id, "tape-%08ld", i);
    check(tape_new(&t, id), "tape_new");
    snprintf(msg, sizeof msg, "session %ld", i % 977);
    check(tape_set_name(t, msg), "name");
    check(tape_add_tag(t, tags[i % 5]), "tag");
    if (i % 3 == 0) check(tape_add_tag(t, tags[(i / 3) % 5]), "tag");
    check(tape_set_created_at(t, INT64_C(1754000000000) + (int64_t)i * 1000), "created_at");
    for (int f = 0; f < frames; f++) {
        snprintf(msg, sizeof msg,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"search\",\"arguments\":{\"q\":\"needle-%ld item %d\"}}}",
                 f, i % 10007, f);
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = f % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = f * 10;
        d.message = msg;
        check(tape_append_frame(NULL, t, &d), "append");
    }
    *out = t;
}

/* Median time of `reps` runs of q on s, in ms; *count gets the page size. */
static double time_query(tape_store *s, const char *json, int reps, size_t *count)
{
    tape_query *q = NULL;
    check(tape_query_parse(&q, json), "query");
    double best[16];
    for (int r = 0; r < reps; r++) {
        tape_result *res = NULL;
        double t0 = now_s();
        check(tape_store_query(&res, s, q), "tape_store_query");
        best[r] = (now_s() - t0) * 1e3;
        *count = tape_result_count(res);
        tape_result_free(res);
    }
    tape_query_free(q);
    for (int i = 1; i < reps; i++) {
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double x = best[j];
            best[j] = best[j - 1];
            best[j - 1] = x;
        }
    }
    return best[reps / 2];
}

static void search_figures(long n, int reps)
{
    tape_store *s[3];
    open3(s, "none", "off");
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        tape *t = NULL;
        make_tape(&t, i, 2);
        for (int k = 0; k < 3; k++) check(tape_store_save(s[k], t), "save");
        tape_free(t);
    }
    fprintf(stderr, "tape-bench-sqlite: %ld tapes filled in %.1f s\n", n, now_s() - t0);
    char tags_date[256], text[128];
    snprintf(tags_date, sizeof tags_date,
             "{\"tags_all\":[\"prod\"],\"created_after\":%lld,\"created_before\":%lld,"
             "\"order_by\":\"created_at\",\"descending\":true,\"limit\":50}",
             1754000000000LL + (long long)n * 250, 1754000000000LL + (long long)n * 750);
    snprintf(text, sizeof text, "{\"text\":\"NEEDLE-%ld \",\"limit\":50}", (n / 2) % 10007);
    const char *names[2] = { "tags_date", "text" };
    const char *queries[2] = { tags_date, text };
    for (int qi = 0; qi < 2; qi++) {
        double ms[3];
        size_t cnt[3];
        for (int k = 0; k < 3; k++) ms[k] = time_query(s[k], queries[qi], reps, &cnt[k]);
        if (cnt[0] != cnt[1] || cnt[0] != cnt[2]) {
            die("%s over %ld tapes: memory %zu, filesystem %zu, sqlite %zu results", names[qi], n,
                cnt[0], cnt[1], cnt[2]);
        }
        printf("{\"figure\":\"sqlite_search_%s_%ld\",\"tapes\":%ld,\"results\":%zu,"
               "\"sqlite_ms\":%.3f,\"memory_ms\":%.3f,\"filesystem_ms\":%.3f,"
               "\"filesystem_over_sqlite\":%.2f,\"memory_over_sqlite\":%.2f}\n",
               names[qi], n, n, cnt[2], ms[2], ms[0], ms[1], ms[1] / ms[2], ms[0] / ms[2]);
        fflush(stdout);
    }
    close3(s);
}

static void save_figure(long n, int frames)
{
    tape_store *s[3];
    open3(s, "none", "off");
    tape **v = malloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++) make_tape(&v[i], i, frames);
    double secs[3];
    for (int k = 1; k < 3; k++) {
        double t0 = now_s();
        for (long i = 0; i < n; i++) check(tape_store_save(s[k], v[i]), "save");
        secs[k] = now_s() - t0;
    }
    printf("{\"figure\":\"sqlite_save_%d_frames\",\"tapes\":%ld,\"sqlite_tapes_per_s\":%.0f,"
           "\"filesystem_tapes_per_s\":%.0f,\"sqlite_over_filesystem\":%.2f}\n",
           frames, n, (double)n / secs[2], (double)n / secs[1], secs[1] / secs[2]);
    for (long i = 0; i < n; i++) tape_free(v[i]);
    free(v);
    close3(s);
}

static void append_figure(long frames, const char *fs_dur, const char *sq_sync)
{
    tape_store *s[3];
    open3(s, fs_dur, sq_sync);
    double secs[3];
    char msg[256];
    for (int k = 1; k < 3; k++) {
        tape *h = NULL;
        tape_writer *w = NULL;
        check(tape_new(&h, "recording"), "tape_new");
        check(tape_store_record(&w, s[k], h), "record");
        double t0 = now_s();
        for (long f = 0; f < frames; f++) {
            snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"n\":%ld}}", f, f);
            tape_frame_desc d = TAPE_FRAME_DESC_INIT;
            d.direction = TAPE_DIR_SERVER_TO_CLIENT;
            d.ts_ms = f;
            d.message = msg;
            check(tape_writer_append(NULL, w, &d), "tape_writer_append");
        }
        check(tape_writer_finish(w), "finish");
        secs[k] = now_s() - t0;
        tape_writer_free(w);
        tape_free(h);
    }
    printf("{\"figure\":\"sqlite_append_%s\",\"frames\":%ld,\"filesystem_durability\":\"%s\","
           "\"sqlite_frames_per_s\":%.0f,\"filesystem_frames_per_s\":%.0f,"
           "\"sqlite_over_filesystem\":%.2f}\n",
           sq_sync, frames, fs_dur, (double)frames / secs[2], (double)frames / secs[1],
           secs[1] / secs[2]);
    close3(s);
}

int main(int argc, char **argv)
{
    int quick = 0;
    long size = 100000;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) size = atol(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
        else die("usage: tape-bench-sqlite [--quick] [--size N] [--dir DIR]");
    }
    snprintf(base, sizeof base, "%s/tape-bench-sqlite-XXXXXX", dir);
    if (mkdtemp(base) == NULL) die("cannot create a directory in %s", dir);
    if (quick) {
        search_figures(1000, 3);
        search_figures(3000, 3);
        save_figure(200, 20);
        append_figure(2000, "none", "off");
        append_figure(2000, "batch", "normal");
    } else {
        search_figures(10000, 9);
        if (size > 10000) search_figures(size, 9);
        save_figure(5000, 20);
        append_figure(100000, "none", "off");
        append_figure(100000, "batch", "normal");
        append_figure(2000, "always", "full");
    }
    rm_rf(base);
    return 0;
}

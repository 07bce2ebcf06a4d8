/*
 * fs_bench.c - tape-bench-fs: figures of the filesystem provider, each next
 * to a baseline measured in the same run on the same machine and disk.
 *
 *   tape-bench-fs [--quick] [--size N] [--dir DIR]
 *
 * One JSON object per line on stdout. N is the number of tapes of the
 * largest search figure (default 100000; --quick: 2000 and small tapes).
 * Timings are reported, never asserted (docs/benchmarks.md).
 */
/* mallinfo2 and malloc_trim (heap in use, for the recording-memory figure) are glibc. */
#define _GNU_SOURCE 1
#include <tapestore/tapestore.h>

#include <cjson/cJSON.h>

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
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
    fputs("tape-bench-fs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc != TAPE_OK) {
        die("%s failed: %s (%s)", what, tape_strerror(rc), tape_errmsg());
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char base[512];
static int store_counter;


/* A fresh store directory under the base. */
static tape_store *open_store(const char *durability, char *path_out, size_t n)
{
    char path[600], cfg[800];
    snprintf(path, sizeof path, "%s/s%d", base, store_counter++);
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\",\"durability\":\"%s\"}", path, durability);
    tape_store *s = NULL;
    check(tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER), "open");
    if (path_out != NULL) snprintf(path_out, n, "%s", path);
    return s;
}

/* ~300-byte JSON-RPC messages, as a proxy records them. */
static void message(char *buf, size_t n, int i)
{
    snprintf(buf, n,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"search_documents\",\"arguments\":{\"query\":\"quarterly revenue by region "
             "%d\",\"limit\":25,\"filters\":{\"year\":2025,\"region\":[\"emea\",\"apac\"],"
             "\"include_drafts\":false}}},\"meta\":{\"trace\":\"%08x-%04x\"}}",
             i, i, (unsigned)i * 2654435761u, (unsigned)i & 0xffff);
}

static tape *make_tape(const char *id, size_t bytes)
{
    tape *t = NULL;
    check(tape_new(&t, id), "tape_new");
    char msg[512];
    tape_stats st = TAPE_STATS_INIT;
    for (int i = 0; st.file_size_bytes < bytes; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        message(msg, sizeof msg, i);
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i;
        d.message = msg;
        check(tape_append_frame(NULL, t, &d), "append");
        if (i % 256 == 0) check(tape_get_stats(&st, t), "stats");
    }
    return t;
}

static void emit(const char *figure, const char *unit, double value, const char *baseline,
                 double base_value, double ratio, const char *goal, int met)
{
    printf("{\"figure\":\"%s\",\"%s\":%.3f,\"baseline\":\"%s\",\"baseline_%s\":%.3f,"
           "\"ratio\":%.3f,\"goal\":\"%s\",\"goal_met\":%s}\n",
           figure, unit, value, baseline, unit, base_value, ratio, goal, met ? "true" : "false");
    fflush(stdout);
}

/* Raw baseline: write the same bytes to a new file, fsync, close. */
static double raw_write_fsync(const char *dir, const char *data, size_t len)
{
    char p[700];
    snprintf(p, sizeof p, "%s/raw.bin", dir);
    double t0 = now_s();
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open %s", p);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) die("write");
        off += (size_t)w;
    }
    if (fsync(fd) != 0) die("fsync");
    close(fd);
    double t = now_s() - t0;
    unlink(p);
    return t;
}

static void bench_save_load(size_t bytes, int reps)
{
    char path[600];
    tape_store *s = open_store("batch", path, sizeof path);
    tape *t = make_tape("big", bytes);
    char *jsonl = NULL;
    size_t len = 0;
    check(tape_encode_jsonl(&jsonl, &len, t), "encode");
    double best_save = 1e9, best_raw = 1e9, best_load = 1e9, best_cjson = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        check(tape_store_save(s, t), "save");
        double ts = now_s() - t0;
        if (ts < best_save) best_save = ts;
        double tr = raw_write_fsync(path, jsonl, len);
        if (tr < best_raw) best_raw = tr;
        tape *back = NULL;
        t0 = now_s();
        check(tape_store_load(&back, s, "big"), "load");
        double tl = now_s() - t0;
        if (tl < best_load) best_load = tl;
        tape_free(back);
        /* cJSON parsing the same lines alone. */
        t0 = now_s();
        const char *p = jsonl, *end = jsonl + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
            cJSON *j = cJSON_ParseWithLength(p, n);
            if (j == NULL) die("cJSON could not parse a line");
            cJSON_Delete(j);
            p += n + 1;
        }
        double tc = now_s() - t0;
        if (tc < best_cjson) best_cjson = tc;
    }
    double mb = (double)len / 1e6;
    char fig[64];
    snprintf(fig, sizeof fig, "fs_save_%zu_mib", bytes >> 20);
    emit(fig, "mb_per_s", mb / best_save, "raw_write_fsync", mb / best_raw, best_raw / best_save,
         ">=0.7", best_raw / best_save >= 0.7);
    snprintf(fig, sizeof fig, "fs_load_%zu_mib", bytes >> 20);
    emit(fig, "mb_per_s", mb / best_load, "cjson_parse_lines", mb / best_cjson,
         best_cjson / best_load, ">=0.8", best_cjson / best_load >= 0.8);
    tape_string_free(jsonl);
    tape_free(t);
    tape_store_free(s);
}

static void bench_append(int frames)
{
    char msg[512];
    message(msg, sizeof msg, 7);
    size_t mlen = strlen(msg);
    const char *modes[] = { "none", "always" };
    for (int m = 0; m < 2; m++) {
        int always = m == 1;
        int n = always ? frames / 10 : frames;
        char path[600];
        tape_store *s = open_store(modes[m], path, sizeof path);
        tape *h = NULL;
        check(tape_new(&h, "rec"), "tape_new");
        tape_writer *w = NULL;
        check(tape_store_record(&w, s, h), "record");
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.message = msg;
        d.ts_ms = 1;
        double t0 = now_s();
        for (int i = 0; i < n; i++) check(tape_writer_append(NULL, w, &d), "append");
        double per = (now_s() - t0) / n;
        check(tape_writer_finish(w), "finish");
        tape_writer_free(w);
        tape_free(h);
        /* Baseline: the same number of ~300-byte appends (+fdatasync). */
        char p[700], line[600];
        snprintf(p, sizeof p, "%s/raw.jsonl", path);
        snprintf(line, sizeof line, "%s\n", msg);
        int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600);
        if (fd < 0) die("open raw");
        t0 = now_s();
        for (int i = 0; i < n; i++) {
            if (write(fd, line, mlen + 1) != (ssize_t)(mlen + 1)) die("write");
            if (always && fdatasync(fd) != 0) die("fdatasync");
        }
        double raw = (now_s() - t0) / n;
        close(fd);
        double ratio = per / raw;
        if (always) {
            emit("fs_append_always", "us_per_frame", per * 1e6, "raw_write_fdatasync",
                 raw * 1e6, ratio, "<1.2", ratio < 1.2);
        } else {
            emit("fs_append_nosync", "us_per_frame", per * 1e6, "raw_write_300b", raw * 1e6,
                 ratio, "<3", ratio < 3.0);
        }
        tape_store_free(s);
    }
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f == NULL) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Heap in use and resident size before and after a long recording. */
static void bench_recording_memory(int frames)
{
    tape_store *s = open_store("none", NULL, 0);
    char msg[512];
    message(msg, sizeof msg, 3);
    tape *h = NULL;
    check(tape_new(&h, "mem"), "tape_new");
    malloc_trim(0);
    struct mallinfo2 before = mallinfo2();
    long rss_before = rss_kib();
    tape_writer *w = NULL;
    check(tape_store_record(&w, s, h), "record");
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.message = msg;
    for (int i = 0; i < frames; i++) check(tape_writer_append(NULL, w, &d), "append");
    malloc_trim(0);
    struct mallinfo2 during = mallinfo2();
    long rss_during = rss_kib();
    double heap_kib = ((double)during.uordblks - (double)before.uordblks) / 1024.0;
    printf("{\"figure\":\"fs_recording_memory\",\"frames\":%d,\"heap_kib\":%.1f,"
           "\"rss_growth_kib\":%ld,\"baseline\":\"store_before_recording\",\"goal\":\"<64 KiB\","
           "\"goal_met\":%s}\n",
           frames, heap_kib, rss_during - rss_before, heap_kib < 64.0 ? "true" : "false");
    fflush(stdout);
    check(tape_writer_finish(w), "finish");
    tape_writer_free(w);
    tape_free(h);
    tape_store_free(s);
}

static void bench_search(int tapes)
{
    char path[600];
    tape_store *s = open_store("none", path, sizeof path);
    tape *t = NULL;
    check(tape_new(&t, "x"), "tape_new");
    for (int i = 0; i < tapes; i++) {
        tape *c = NULL;
        char id[32];
        snprintf(id, sizeof id, "tape-%07d", i);
        check(tape_new(&c, id), "tape_new");
        check(tape_set_created_at(c, 1700000000000LL + (int64_t)i * 60000), "created_at");
        check(tape_add_tag(c, i % 7 == 0 ? "prod" : "dev"), "tag");
        if (i % 3 == 0) check(tape_add_tag(c, "nightly"), "tag");
        check(tape_store_save(s, c), "save");
        tape_free(c);
    }
    tape_free(t);
    tape_query *q = NULL;
    char qj[200];
    snprintf(qj, sizeof qj, "{\"tags_any\":[\"prod\"],\"created_after\":%lld,\"limit\":50}",
             1700000000000LL + (long long)tapes * 30000);
    check(tape_query_parse(&q, qj), "query");
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        tape_result *res = NULL;
        double t0 = now_s();
        check(tape_store_query(&res, s, q), "search");
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        tape_result_free(res);
    }
    /* Baseline: one pass over the entries the index hands out (the floor). */
    tape_query *all = NULL;
    check(tape_query_parse(&all, "{\"limit\":1}"), "query");
    double floor_t = 1e9;
    for (int r = 0; r < 5; r++) {
        tape_result *res = NULL;
        double t0 = now_s();
        check(tape_store_query(&res, s, all), "list");
        double dt = now_s() - t0;
        if (dt < floor_t) floor_t = dt;
        tape_result_free(res);
    }
    char fig[64];
    snprintf(fig, sizeof fig, "fs_search_%d_tapes", tapes);
    emit(fig, "ms", best * 1e3, "list_limit_1", floor_t * 1e3, best / floor_t, "<50 ms",
         best * 1e3 < 50.0);
    tape_query_free(q);
    tape_query_free(all);
    tape_store_free(s);
}

int main(int argc, char **argv)
{
    int quick = 0, size = 100000;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            size = 2000;
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: tape-bench-fs [--quick] [--size N] [--dir DIR]\n"
                 "Figures of the filesystem provider against same-run baselines, one JSON\n"
                 "line each: save 1/64 MiB vs write+fsync, load vs cJSON, append vs raw\n"
                 "write (+fdatasync), search over N/10 and N tapes, recording memory.\n"
                 "DIR (default: a new directory in /tmp) must be on the disk to measure.");
            return 0;
        } else {
            die("unknown argument %s (try --help)", argv[i]);
        }
    }
    if (size < 100) die("--size must be at least 100");
    if (dir != NULL) {
        snprintf(base, sizeof base, "%s/tape-bench-fs-%ld", dir, (long)getpid());
        if (mkdir(base, 0700) != 0) die("cannot create %s", base);
    } else {
        snprintf(base, sizeof base, "/tmp/tape-bench-fs-XXXXXX");
        if (mkdtemp(base) == NULL) die("cannot create a temporary directory");
    }
    bench_save_load((size_t)1 << 20, quick ? 2 : 5);
    if (!quick) bench_save_load((size_t)64 << 20, 2);
    bench_append(quick ? 2000 : 20000);
    bench_search(size / 10);
    bench_search(size);
    bench_recording_memory(quick ? 5000 : 100000);
    rm_rf(base);
    return 0;
}

/*
 * tape-crash-test: kill a recording process with SIGKILL at random points
 * and check that the filesystem store keeps its promises afterwards:
 *  - every frame acknowledged under durability "always" is there;
 *  - every acknowledged save loads whole;
 *  - no partial line is visible (loads succeed in strict mode);
 *  - every tape is listed with the stats its frames give;
 *  - no temporary file is left once the store is reopened;
 *  - the index agrees with the meta files.
 * Usage: tape-crash-test [--trials N] [--seed S] [--keep] DIR
 */
#define _GNU_SOURCE 1
#include <tapestore/tapestore.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rm_rf.h"

/* One acknowledgement from the child: kind 'f' = frame seq of recording
 * rec-<n>, 's' = saved tape save-<n> with `seq` frames. */
typedef struct ack {
    char kind;
    uint32_t n;
    uint64_t seq;
} ack;

static void usage(FILE *to)
{
    fputs("usage: tape-crash-test [--trials N] [--seed S] [--keep] DIR\n"
          "Runs N trials (default 100): a child records and saves tapes into a fresh\n"
          "filesystem store under DIR with durability \"always\" and is killed with\n"
          "SIGKILL at a random moment; the store is then reopened and checked.\n"
          "Exits 0 if every trial passed; prints each failure.\n",
          to);
}

static void send_ack(int fd, char kind, uint32_t n, uint64_t seq)
{
    ack a = { kind, n, seq };
    if (write(fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(5);
}

static void child(const char *path, int fd, unsigned seed)
{
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\",\"durability\":\"always\",\"checkpoint_every\":5}",
             path);
    tape_store *s = NULL;
    if (tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER) != TAPE_OK) _exit(2);
    srand(seed);
    for (uint32_t n = 0;; n++) {
        char id[32];
        tape *t = NULL;
        if (rand() % 3 == 0) {
            snprintf(id, sizeof id, "save-%u", n);
            int frames = rand() % 40;
            if (tape_new(&t, id) != TAPE_OK) _exit(3);
            for (int i = 0; i < frames; i++) {
                tape_frame_desc d = TAPE_FRAME_DESC_INIT;
                d.direction = TAPE_DIR_CLIENT_TO_SERVER;
                d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":"
                            "{\"name\":\"echo\",\"arguments\":{\"text\":\"hello\"}},\"id\":7}";
                if (tape_append_frame(NULL, t, &d) != TAPE_OK) _exit(3);
            }
            if (tape_store_save(s, t) != TAPE_OK) _exit(4);
            send_ack(fd, 's', n, (uint64_t)frames);
        } else {
            snprintf(id, sizeof id, "rec-%u", n);
            if (tape_new(&t, id) != TAPE_OK) _exit(3);
            tape_writer *w = NULL;
            if (tape_store_record(&w, s, t) != TAPE_OK) _exit(4);
            int frames = 1 + rand() % 60;
            for (int i = 0; i < frames; i++) {
                tape_frame_desc d = TAPE_FRAME_DESC_INIT;
                d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
                d.message = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":"
                            "\"text\",\"text\":\"hello\"}]}}";
                uint64_t seq = 0;
                if (tape_writer_append(&seq, w, &d) != TAPE_OK) _exit(4);
                send_ack(fd, 'f', n, seq);
            }
            if (tape_writer_finish(w) != TAPE_OK) _exit(4);
            tape_writer_free(w);
        }
        tape_free(t);
    }
}

static int failures;

static void failf(int trial, const char *fmt, const char *a, const char *b)
{
    failures++;
    printf("trial %d: ", trial);
    printf(fmt, a, b);
    printf("\n");
}

static int count_meta_files(const char *path, int *temps)
{
    DIR *d = opendir(path);
    int n = 0;
    *temps = 0;
    if (d == NULL) return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 10 && strcmp(de->d_name + len - 10, ".meta.json") == 0) n++;
        if (strstr(de->d_name, ".tmp.") != NULL) (*temps)++;
    }
    closedir(d);
    return n;
}

static size_t listed(tape_store *s)
{
    tape_result *r = NULL;
    if (tape_store_query(&r, s, NULL) != TAPE_OK) return (size_t)-1;
    size_t n = tape_result_count(r);
    tape_result_free(r);
    return n;
}

static void verify(int trial, const char *path, const ack *acks, size_t nacks)
{
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\"}", path);
    tape_store *s = NULL;
    if (tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER) != TAPE_OK) {
        failf(trial, "reopen failed: %s%s", tape_errmsg(), "");
        return;
    }
    /* The highest acknowledged seq per recording, and every save. */
    for (size_t i = 0; i < nacks; i++) {
        const ack *a = &acks[i];
        int last_of_tape = i + 1 == nacks || acks[i + 1].n != a->n;
        if (!last_of_tape) continue;
        char id[32];
        snprintf(id, sizeof id, "%s-%u", a->kind == 's' ? "save" : "rec", a->n);
        tape *t = NULL;
        if (tape_store_load(&t, s, id) != TAPE_OK) {
            failf(trial, "acknowledged tape %s does not load: %s", id, tape_errmsg());
            continue;
        }
        uint64_t want = a->kind == 's' ? a->seq : a->seq + 1;
        size_t have = tape_frame_count(t);
        if (a->kind == 's' ? have != want : have < want) {
            char msg[128];
            snprintf(msg, sizeof msg, "has %zu frames, %llu acknowledged", have,
                     (unsigned long long)want);
            failf(trial, "tape %s %s", id, msg);
        }
        for (size_t k = 0; k < have; k++) {
            if (tape_frame_seq(tape_frame_at(t, k)) != k) {
                failf(trial, "tape %s: frame sequence broken%s", id, "");
                break;
            }
        }
        tape_free(t);
    }
    int temps = 0;
    int metas = count_meta_files(path, &temps);
    if (temps != 0) failf(trial, "temporary files left after reopen%s%s", "", "");
    size_t n = listed(s);
    if ((int)n != metas) {
        char msg[96];
        snprintf(msg, sizeof msg, "index lists %zu tapes, %d meta files", n, metas);
        failf(trial, "%s%s", msg, "");
    }
    /* Every listed tape loads in strict mode: no partial line is visible. */
    tape_result *r = NULL;
    if (tape_store_query(&r, s, NULL) == TAPE_OK) {
        for (size_t i = 0; i < tape_result_count(r); i++) {
            tape *t = NULL;
            const char *id = tape_entry_id(tape_result_at(r, i));
            if (tape_store_load(&t, s, id) != TAPE_OK) {
                failf(trial, "listed tape %s does not load: %s", id, tape_errmsg());
            }
            /* ...and is listed with the stats its frames give (a killed
             * recording's meta lags behind its frames). */
            tape_stats ls = TAPE_STATS_INIT, ts = TAPE_STATS_INIT;
            if (t != NULL && tape_entry_get_stats(&ls, tape_result_at(r, i)) == TAPE_OK &&
                tape_get_stats(&ts, t) == TAPE_OK &&
                (ls.frame_count != ts.frame_count || ls.duration_ms != ts.duration_ms ||
                 ls.file_size_bytes != ts.file_size_bytes)) {
                char msg[160];
                snprintf(msg, sizeof msg, "listed with %llu frames / %llu bytes, loads with "
                         "%llu / %llu", (unsigned long long)ls.frame_count,
                         (unsigned long long)ls.file_size_bytes,
                         (unsigned long long)ts.frame_count,
                         (unsigned long long)ts.file_size_bytes);
                failf(trial, "tape %s %s", id, msg);
            }
            tape_free(t);
        }
        tape_result_free(r);
    }
    tape_store_free(s);
}


int main(int argc, char **argv)
{
    int trials = 100, keep = 0;
    unsigned seed = (unsigned)time(NULL);
    const char *base = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc) trials = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--keep") == 0) keep = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (argv[i][0] != '-' && base == NULL) base = argv[i];
        else { usage(stderr); return 2; }
    }
    if (base == NULL || trials < 1) {
        usage(stderr);
        return 2;
    }
    mkdir(base, 0700);
    printf("crash test: %d trials, seed %u\n", trials, seed);
    srand(seed);
    int failed_trials = 0;
    for (int trial = 0; trial < trials; trial++) {
        int failures_before = failures;
        char path[1024];
        snprintf(path, sizeof path, "%s/trial-%d", base, trial);
        rm_rf(path);
        int fds[2];
        if (pipe(fds) != 0) return 2;
        unsigned child_seed = (unsigned)rand();
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(path, fds[1], child_seed);
        }
        close(fds[1]);
        /* Let it get going, then kill it at a random moment. */
        usleep((useconds_t)(2000 + rand() % 40000));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            printf("trial %d: child exited early with %d\n", trial, WEXITSTATUS(status));
            failures++;
        }
        ack *acks = NULL;
        size_t n = 0, cap = 0;
        ack a;
        while (read(fds[0], &a, sizeof a) == (ssize_t)sizeof a) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                acks = realloc(acks, cap * sizeof *acks);
            }
            acks[n++] = a;
        }
        close(fds[0]);
        verify(trial, path, acks, n);
        free(acks);
        if (!keep) rm_rf(path);
        if (failures != failures_before) failed_trials++;
    }
    if (!keep) rmdir(base);
    printf("%d passed, %d failed\n", trials - failed_trials, failed_trials);
    return failures == 0 ? 0 : 1;
}

/*
 * proxy_bench.c - tape-bench-relay: the least a stdio proxy can do, as a
 * baseline for tests/bench/proxy_bench.py.
 *
 *   tape-bench-relay -- COMMAND [ARGS...]
 *
 * Starts COMMAND with pipes for its stdin and stdout and copies bytes
 * between them and our own stdin/stdout with one blocking read/write
 * thread per direction: no recording, no queue, no parsing. The figure
 * tape-proxy is compared with, besides the client talking to the server
 * directly, is this extra hop. Exits with COMMAND's status.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int src, dst;
} pump;

static void *copy(void *arg)
{
    pump *p = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = read(p->src, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(p->dst, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) goto out;
            off += w;
        }
    }
out:
    close(p->dst);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--") != 0) {
        fputs("usage: tape-bench-relay -- COMMAND [ARGS...]\n"
              "Relays stdin/stdout to COMMAND unchanged (the baseline of proxy_bench.py).\n",
              argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 64;
    }
    signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) {
        perror("tape-bench-relay: pipe");
        return 71;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("tape-bench-relay: fork");
        return 71;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "tape-bench-relay: cannot run \"%s\": %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    pump c2s = { 0, in[1] }, s2c = { out[0], 1 };
    pthread_t t1, t2;
    if (pthread_create(&t1, NULL, copy, &c2s) != 0 || pthread_create(&t2, NULL, copy, &s2c) != 0) {
        fputs("tape-bench-relay: cannot start the threads\n", stderr);
        return 71;
    }
    pthread_join(t2, NULL);   /* the server closed its stdout */
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

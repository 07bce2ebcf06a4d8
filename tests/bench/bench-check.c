/*
 * bench-check.c - runs tape-bench and checks what it printed, for the
 * ctest test bench_quick: the program must exit 0 and print, on stdout,
 * exactly one JSON object per line for each expected figure, each with a
 * measured value, a named baseline with its own value, a positive finite
 * ratio and a goal. Timings are not judged (they depend on the machine).
 *
 *   bench-check PROGRAM [ARGS...]
 */
#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const expected[] = { "registry_find", "codec_encode", "codec_decode",
                                        "memory_save",   "memory_load",  "matcher_run",
                                        "store_query" };
#define N_EXPECTED (sizeof expected / sizeof expected[0])

static int failures;

static void fail(size_t line, const char *fmt, const char *arg)
{
    fprintf(stderr, "bench-check: line %zu: ", line);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    failures++;
}

static int is_positive_number(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble > 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Keys that hold a timing or a rate: "mb_per_s", "baseline_ms", ... */
static int is_value_key(const char *key)
{
    return ends_with(key, "_per_s") || ends_with(key, "_per_op") ||
           ends_with(key, "_per_query") || ends_with(key, "_ms");
}

/* One figure line: returns the index of the figure in `expected`, or -1. */
static int check_line(size_t lineno, const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (j == NULL || !cJSON_IsObject(j)) {
        fail(lineno, "not a JSON object: %.200s", text);
        cJSON_Delete(j);
        return -1;
    }
    int index = -1;
    const cJSON *figure = cJSON_GetObjectItemCaseSensitive(j, "figure");
    if (!cJSON_IsString(figure)) {
        fail(lineno, "no string \"figure\" in %.200s", text);
    } else {
        for (size_t i = 0; i < N_EXPECTED; i++) {
            if (strcmp(figure->valuestring, expected[i]) == 0) {
                index = (int)i;
            }
        }
        if (index < 0) {
            fail(lineno, "unknown figure \"%s\"", figure->valuestring);
        }
    }
    const cJSON *baseline = cJSON_GetObjectItemCaseSensitive(j, "baseline");
    if (!cJSON_IsString(baseline) || baseline->valuestring[0] == '\0') {
        fail(lineno, "no baseline name in %.200s", text);
    }
    const cJSON *goal = cJSON_GetObjectItemCaseSensitive(j, "goal");
    if (!cJSON_IsString(goal) || goal->valuestring[0] == '\0') {
        fail(lineno, "no goal in %.200s", text);
    }
    if (!is_positive_number(cJSON_GetObjectItemCaseSensitive(j, "ratio"))) {
        fail(lineno, "\"ratio\" is not a positive finite number in %.200s", text);
    }
    const cJSON *met = cJSON_GetObjectItemCaseSensitive(j, "goal_met");
    if (!cJSON_IsBool(met) && !cJSON_IsNull(met)) {
        fail(lineno, "\"goal_met\" is not true, false or null in %.200s", text);
    }
    /* A measured value (mb_per_s, ns_per_op, ...) and the baseline's own. */
    int measured = 0, base = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, j)
    {
        if (!is_value_key(item->string)) {
            continue;
        }
        if (!is_positive_number(item)) {
            fail(lineno, "\"%s\" is not a positive finite number", item->string);
        } else if (strncmp(item->string, "baseline_", 9) == 0) {
            base++;
        } else {
            measured++;
        }
    }
    if (measured == 0) {
        fail(lineno, "no measured value in %.200s", text);
    }
    if (base == 0) {
        fail(lineno, "no baseline value in %.200s", text);
    }
    cJSON_Delete(j);
    return index;
}

static char *run(int *out_status, char **argv)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("bench-check: pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-check: fork");
        exit(2);
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        perror("bench-check: exec");
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf != NULL && (n = read(fds[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (buf == NULL) {
        fputs("bench-check: out of memory\n", stderr);
        exit(2);
    }
    buf[len] = '\0';
    *out_status = status;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: bench-check PROGRAM [ARGS...]\n", stderr);
        return 2;
    }
    int status = 0;
    char *out = run(&status, argv + 1);
    fputs(out, stdout); /* keep the figures in the ctest log */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench-check: %s did not exit 0 (status %d)\n", argv[1], status);
        failures++;
    }
    int seen[N_EXPECTED] = { 0 };
    size_t lineno = 0;
    for (char *line = out, *next; *line != '\0'; line = next) {
        char *nl = strchr(line, '\n');
        next = nl != NULL ? nl + 1 : line + strlen(line);
        if (nl != NULL) {
            *nl = '\0';
        }
        lineno++;
        int i = check_line(lineno, line);
        if (i >= 0 && seen[i]++ > 0) {
            fail(lineno, "figure \"%s\" printed twice", expected[i]);
        }
    }
    for (size_t i = 0; i < N_EXPECTED; i++) {
        if (!seen[i]) {
            fprintf(stderr, "bench-check: figure \"%s\" missing\n", expected[i]);
            failures++;
        }
    }
    free(out);
    if (failures != 0) {
        fprintf(stderr, "bench-check: %d problem(s)\n", failures);
        return 1;
    }
    printf("bench-check: %zu figures OK\n", N_EXPECTED);
    return 0;
}

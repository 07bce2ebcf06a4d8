/*
 * run_conformance.c - runs the conformance suite against a provider that
 * lives in a plugin library:
 *
 *   run_conformance PLUGIN PROVIDER [CONFIG_TEMPLATE] [--only NAME]
 *
 * It loads PLUGIN into the default registry, then runs every case (or
 * those whose name contains NAME) and prints TAP. Exit status: 0 when no
 * case failed, 1 when one did, 2 on a usage or setup error.
 */
#include <tapestore/tapestore.h>

#include "conformance.h"

#include <stdio.h>
#include <string.h>

static void emit_line(void *ud, const char *line)
{
    (void)ud;
    printf("%s\n", line);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *pos[3] = { NULL, NULL, NULL };
    const char *only = NULL;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (argv[i][0] != '-' && npos < 3) {
            pos[npos++] = argv[i];
        } else {
            npos = -1;
            break;
        }
    }
    if (npos < 2) {
        fprintf(stderr, "usage: %s PLUGIN PROVIDER [CONFIG_TEMPLATE] [--only NAME]\n",
                argv[0]);
        return 2;
    }
    int rc = tape_registry_load_plugin(tape_registry_default(), pos[0]);
    if (rc != TAPE_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], tape_strerror(rc), tape_errmsg());
        return 2;
    }
    tape_conformance_report report = TAPE_CONFORMANCE_REPORT_INIT;
    rc = tape_conformance_run(&report, NULL, pos[1], pos[2], only, emit_line, NULL);
    if (rc != TAPE_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], tape_strerror(rc), tape_errmsg());
        return 2;
    }
    printf("# %s: %d passed, %d failed, %d skipped\n", pos[1], report.passed, report.failed,
           report.skipped);
    return report.failed == 0 ? 0 : 1;
}

/*
 * tape-conformance - run the provider conformance suite and print TAP.
 *
 *   tape-conformance [--only NAME] [--plugin PATH] [--list] PROVIDER [CONFIG_JSON]
 *
 * PROVIDER and CONFIG_JSON default to $TAPESTORE_TEST_PROVIDER and
 * $TAPESTORE_TEST_CONFIG ("{}" if unset). Exit status: 0 when every case
 * passed or was skipped, 1 when a case failed, 2 on a usage or setup error.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to)
{
    fputs("usage: tape-conformance [--only NAME] [--plugin PATH] [--list] PROVIDER [CONFIG_JSON]\n"
          "\n"
          "Runs the tapestore provider conformance suite against PROVIDER (a name in the\n"
          "default registry) and prints TAP: a plan line \"1..N\", then \"ok N - case\" or\n"
          "\"not ok N - case\" with the reasons as \"# \" comment lines; a case skipped for a\n"
          "missing capability prints \"ok N - case # SKIP reason\".\n"
          "\n"
          "  PROVIDER       provider name (default: $TAPESTORE_TEST_PROVIDER)\n"
          "  CONFIG_JSON    config template (default: $TAPESTORE_TEST_CONFIG, else \"{}\").\n"
          "                 Each case opens its own store with the template expanded:\n"
          "                 @DIR@ becomes a fresh empty temporary directory (removed after\n"
          "                 the case), @NS@ a fresh unique token. Both are JSON-string-\n"
          "                 escaped: write them inside quotes, e.g. {\"path\":\"@DIR@\"}.\n"
          "                 A persistent provider needs one of them: every case requires\n"
          "                 an empty store.\n"
          "  --only NAME    run only the cases whose name contains NAME\n"
          "  --plugin PATH  load a provider plugin (shared library) into the registry first\n"
          "  --list         print the case names and exit\n"
          "  --help         show this text\n"
          "\n"
          "Exit status: 0 all cases passed or were skipped, 1 a case failed, 2 usage or\n"
          "setup error (unknown provider, no case matches --only, ...).\n"
          "See docs/conformance.md for what each case asserts.\n",
          to);
}

static void print_line(void *ud, const char *line)
{
    (void)ud;
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *only = NULL, *provider = NULL, *config = NULL;
    tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
    int positional = 0, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < tape_conformance_case_count(); k++) {
                printf("%s\n", tape_conformance_case_name(k));
            }
            return 0;
        } else if (strcmp(a, "--only") == 0 || strcmp(a, "--plugin") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tape-conformance: %s needs an argument\n", a);
                usage(stderr);
                return 2;
            }
            if (strcmp(a, "--only") == 0) {
                only = argv[++i];
            } else {
                rc = tape_registry_load_plugin(tape_registry_default(), argv[++i]);
                if (rc != TAPE_OK) {
                    fprintf(stderr, "tape-conformance: loading plugin %s: %s: %s\n", argv[i],
                            tape_strerror(rc), tape_errmsg());
                    printf("Bail out! cannot load plugin %s\n", argv[i]);
                    return 2;
                }
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "tape-conformance: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (positional == 0) {
            provider = a;
            positional++;
        } else if (positional == 1) {
            config = a;
            positional++;
        } else {
            fprintf(stderr, "tape-conformance: unexpected argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (provider == NULL) {
        provider = getenv("TAPESTORE_TEST_PROVIDER");
    }
    if (config == NULL) {
        config = getenv("TAPESTORE_TEST_CONFIG");
    }
    if (provider == NULL || *provider == '\0') {
        fprintf(stderr, "tape-conformance: no provider given (argument or TAPESTORE_TEST_PROVIDER)\n");
        usage(stderr);
        return 2;
    }
    if (config == NULL || *config == '\0') {
        config = "{}";
    }

    rc = tape_conformance_run(&rep, NULL, provider, config, only, print_line, NULL);
    if (rc != TAPE_OK) {
        fprintf(stderr, "tape-conformance: %s: %s\n", tape_strerror(rc), tape_errmsg());
        printf("Bail out! %s\n", tape_errmsg());
        return 2;
    }
    return rep.failed > 0 ? 1 : 0;
}

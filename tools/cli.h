/*
 * cli.h - what the files of the `tapestore` command share: the exit codes,
 * the command context, output helpers (colour, JSON) and the query flags.
 * Everything here is built on the public API (tapestore.h) and cJSON.
 */
#ifndef TAPE_TOOLS_CLI_H
#define TAPE_TOOLS_CLI_H

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <tapestore/tapestore.h>

/* Exit codes (docs/cli.md): the same meaning in every subcommand. */
#define CLI_OK 0       /* success */
#define CLI_FAIL 1     /* a failure: store, I/O, corrupt data, a copy that differs */
#define CLI_USAGE 2    /* the command line is wrong: unknown option, bad value, bad query */
#define CLI_NOTFOUND 3 /* something named does not exist: a tape, a file, a provider */

/* Colour codes; empty when colour is off for that stream. */
#define CLI_BOLD "\033[1m"
#define CLI_DIM "\033[2m"
#define CLI_RED "\033[31m"
#define CLI_GREEN "\033[32m"
#define CLI_YELLOW "\033[33m"
#define CLI_CYAN "\033[36m"
#define CLI_RESET "\033[0m"

typedef struct cli {
    const char *prog;       /* "tapestore" */
    const char *cmd;        /* the subcommand's name */
    const char *store_spec; /* --store, else NULL ($TAPESTORE_STORE or the default) */
    const char **plugins;   /* --plugin, in order */
    size_t nplugins;
    int plugins_loaded;
    int json;               /* --json */
    int color_mode;         /* 0 auto, 1 always, 2 never */
    int color_out;          /* colour on stdout (decided once options are read) */
    int color_err;          /* colour on stderr */
    tape_store *store;      /* opened by cli_open_store, closed by main */
} cli;

/* Options every subcommand takes (ids above any short option). */
enum {
    OPT_STORE = 1000,
    OPT_PLUGIN,
    OPT_JSON,
    OPT_COLOR,
    OPT_NOCOLOR,
    OPT_HELP,
    /* query flags */
    OPT_Q_SESSION,
    OPT_Q_NAME,
    OPT_Q_TAG_ANY,
    OPT_Q_TAG_ALL,
    OPT_Q_STATUS,
    OPT_Q_AFTER,
    OPT_Q_BEFORE,
    OPT_Q_MIN_DUR,
    OPT_Q_MAX_DUR,
    OPT_Q_MIN_FRAMES,
    OPT_Q_MAX_FRAMES,
    OPT_Q_TEXT,
    OPT_Q_ORDER,
    OPT_Q_DESC,
    OPT_Q_LIMIT,
    OPT_Q_CURSOR,
    OPT_Q_STRICT,
    OPT_Q_JSON,
    /* first id free for a subcommand's own options */
    OPT_CMD = 1100
};

/* Print "tapestore CMD: error: ..." on stderr (red on a terminal) and
 * return `code`, so callers write `return cli_error(c, CLI_FAIL, ...)`. */
int cli_error(const cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print "tapestore CMD: warning: ..." on stderr. */
void cli_warn(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit code for a failed library call: CLI_NOTFOUND for TAPE_ENOTFOUND,
 * CLI_USAGE for TAPE_EQUERY, CLI_FAIL for everything else. */
int cli_code(int rc);
/* cli_error(cli_code(rc), "<what>: <tape_errmsg()>"). */
int cli_lib_error(const cli *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Colour escape for stdout / stderr, or "" when colour is off. */
const char *cli_c(const cli *c, const char *code);
const char *cli_ce(const cli *c, const char *code);

/* Load the plugins (once) and open the store of --store / $TAPESTORE_STORE
 * into c->store. Returns an exit code. */
int cli_open_store(cli *c);
/* Load the plugins only (migrate opens its own stores). */
int cli_load_plugins(cli *c);
/* The spec the store is opened from, for messages. */
const char *cli_store_name(const cli *c);

/* Print a cJSON document (formatted, then a newline) on stdout and free it.
 * Returns CLI_FAIL if it cannot be printed. */
int cli_print_json(const cli *c, cJSON *doc);
/* A cJSON string or null. */
cJSON *cli_json_str(const char *s);
/* ms since the epoch as ISO-8601 ("2025-08-14T10:30:00.000Z"); null for
 * TAPE_TIME_NONE. */
cJSON *cli_json_time(int64_t ms);
/* The same as text into buf (seconds precision when `short_form`);
 * "-" for TAPE_TIME_NONE. */
const char *cli_time_text(char *buf, size_t len, int64_t ms, int short_form);
/* A parsed .meta.json document of an entry (cJSON object, caller frees). */
cJSON *cli_entry_json(const tape_entry *e);
/* Capability bits as an array of names. */
cJSON *cli_caps_json(unsigned int caps);
/* Capability bits as "exists,search,..." into buf. */
const char *cli_caps_text(char *buf, size_t len, unsigned int caps);
/* Terminal-safe copy of user text for a table cell: control bytes become
 * '?'. Returns a static buffer per slot (0..7). */
const char *cli_safe(const char *s, int slot);
/* Display width of UTF-8 text (code points). */
size_t cli_width(const char *s);
/* Print s padded to width w. */
void cli_pad(FILE *f, const char *s, size_t w);

/* Parse a decimal integer strictly (the whole string). 0 or -1. */
int cli_parse_int(int64_t *out, const char *s);

/* ---- options ---- */

/* One option of a subcommand: its getopt_long entry and the help line. */
typedef int (*cli_opt_fn)(cli *c, void *ctx, int id, const char *arg);

/* Parse argv for subcommand c->cmd: the common options (--store, --plugin,
 * --json, --color, --no-color, --help), the query flags when `query` is
 * non-NULL (collected into it), and `extra` (terminated by a zero entry)
 * handed to `fn`. Positional arguments go to *pos (count *npos; the array
 * points into argv). Returns -1 to go on, or an exit code (--help printed:
 * CLI_OK; a usage error printed: CLI_USAGE). */
typedef struct cli_query_flags {
    cJSON *obj;         /* the keys given by flags */
    const char *json;   /* --query */
    int query_flags;    /* accept every query key (search, migrate) */
    int order_flags;    /* accept ordering and paging (ls) */
} cli_query_flags;

int cli_parse(cli *c, int argc, char **argv, const char *shortopts, const struct option *extra,
              cli_opt_fn fn, void *ctx, cli_query_flags *query, char ***pos, int *npos);
/* Build the parsed query from the flags (and --query). Returns an exit code
 * (CLI_USAGE with a message naming the flag or key) or -1 with *out set. */
int cli_query_build(cli *c, cli_query_flags *qf, tape_query **out, int *has_limit);

/* Help of a subcommand on f. */
void cli_help(FILE *f, const char *cmd);

/* 1 if the two tapes encode to the same .jsonl and .meta.json, 0 if not,
 * a negative TAPE_E* code if either cannot be encoded. */
int cli_same_tape(const tape *a, const tape *b);

/* ---- subcommands ---- */
int cmd_providers(cli *c, int argc, char **argv);
int cmd_ls(cli *c, int argc, char **argv);
int cmd_search(cli *c, int argc, char **argv);
int cmd_show(cli *c, int argc, char **argv);
int cmd_export(cli *c, int argc, char **argv);
int cmd_import(cli *c, int argc, char **argv);
int cmd_rm(cli *c, int argc, char **argv);
int cmd_stats(cli *c, int argc, char **argv);
int cmd_tail(cli *c, int argc, char **argv);
int cmd_migrate(cli *c, int argc, char **argv);
#ifdef TAPE_TOOLS_HAVE_LUA
int cmd_query(cli *c, int argc, char **argv); /* query.c */
#endif

/* ---- frame summaries (show, tail) ---- */

/* What show and tail know about frames seen so far: requests by id, so a
 * response can be given its method, and round-trip times by response seq. */
typedef struct cli_frames cli_frames;
/* t: the tape whose correlations give the round-trip times (read once,
 * here); NULL: none (tail). */
int cli_frames_new(cli_frames **out, const tape *t);
void cli_frames_free(cli_frames *fs);
/* The summary of one frame as a JSON object (caller frees), NULL when out
 * of memory. */
cJSON *cli_frame_json(cli_frames *fs, const tape_frame *f);
/* Print one summary row of a frame (from its JSON summary). */
void cli_frame_row(const cli *c, FILE *out, const cJSON *summary);
/* The header row of the frame table. */
void cli_frame_header(const cli *c, FILE *out);

#endif /* TAPE_TOOLS_CLI_H */

/*
 * cli.c - the `tapestore` command: main, the options every subcommand
 * shares, help texts, output helpers. The subcommands are in commands.c
 * and migrate.c; docs/cli.md and docs/man/tapestore.1 describe them.
 */
#include "cli.h"

#include "plugins.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- help */

typedef struct command {
    const char *name;
    int (*fn)(cli *c, int argc, char **argv);
    const char *summary;
    const char *help; /* usage line(s) and the command's own options */
} command;

#define COMMON_HELP                                                                         \
    "Common options:\n"                                                                     \
    "  --store SPEC     the store (default: $TAPESTORE_STORE, else filesystem:./tapes)\n"   \
    "  --plugin PATH    load providers from PATH first (repeatable; also $TAPESTORE_PLUGINS)\n" \
    "  --json           print one JSON document instead of text (docs/cli.md)\n"            \
    "  --color WHEN     auto (default: on a terminal, unless NO_COLOR is set), always, never\n" \
    "  --no-color       the same as --color never\n"                                        \
    "  -h, --help       this help\n"

#define QUERY_HELP                                                                          \
    "Query flags (docs/query.md; each sets the query key of the same name):\n"              \
    "  --session-id S         session_id equals S\n"                                        \
    "  --name-contains S      the name contains S (ASCII case ignored)\n"                   \
    "  --tag-any T            has at least one of these tags (repeatable)\n"                \
    "  --tag-all T            has every one of these tags (repeatable)\n"                   \
    "  --status S             recording or finalized\n"                                     \
    "  --created-after T      created after T (ms since the epoch or ISO-8601), exclusive\n" \
    "  --created-before T     created before T, exclusive\n"                                \
    "  --min-duration-ms N    --max-duration-ms N    duration bounds, inclusive\n"          \
    "  --min-frames N         --max-frames N         frame count bounds, inclusive\n"       \
    "  --text S               some frame's message contains S (ASCII case ignored)\n"       \
    ORDER_HELP                                                                              \
    "  --strict               fail on a damaged tape instead of skipping it in a text search\n" \
    "  --query JSON           a whole query object; flags add keys to it (a key set twice is an error)\n"

#define ORDER_HELP                                                                          \
    "  --order-by KEY         created_at (default), updated_at, name, duration_ms, frame_count, id\n" \
    "  --descending           reverse the order\n"                                          \
    "  --limit N              at most N tapes (one page; its next cursor is printed)\n"     \
    "  --cursor C             the page after the one that printed cursor C\n"

static const command commands[] = {
    {"providers", cmd_providers, "list the providers a store can be opened with",
     "usage: tapestore providers [--plugin PATH]... [--json]\n\n"
     "Lists the registered providers (builtins and those loaded with --plugin):\n"
     "name, version, declared capabilities, description.\n"},
    {"ls", cmd_ls, "list the tapes of the store",
     "usage: tapestore ls [--order-by KEY] [--descending] [--limit N] [--cursor C] [--json]\n\n"
     "An aligned table of the store's tapes: id, name, status, creation time,\n"
     "frames, duration, tags. Oldest first unless --order-by/--descending.\n\n"
     "Ordering and paging:\n" ORDER_HELP},
    {"search", cmd_search, "list the tapes matching a query",
     "usage: tapestore search [QUERY FLAGS] [--query JSON] [--json]\n\n"
     "Like ls, for the tapes matching every term given.\n\n" QUERY_HELP},
    {"show", cmd_show, "show one tape: metadata, stats, correlations, frames",
     "usage: tapestore show ID [--json]\n\n"
     "Metadata, statistics, correlations (request/response pairs with their\n"
     "round-trip times) and one row per frame: sequence number, time, direction\n"
     "(> client to server, < server to client), kind, method, JSON-RPC id,\n"
     "error and round-trip time of a response.\n"},
    {"export", cmd_export, "write a tape as Shadowcat 2.0 JSON Lines",
     "usage: tapestore export ID [-o FILE] [--meta FILE] [--json]\n\n"
     "Writes the tape's .jsonl document (the format's encoding of the stored\n"
     "tape, byte for byte) to stdout, or to FILE.\n\n"
     "Options:\n"
     "  -o, --output FILE  write to FILE (replaced atomically) instead of stdout\n"
     "  --meta FILE        also write the .meta.json document to FILE\n"
     "  --json             with -o: print what was written as JSON\n"},
    {"import", cmd_import, "add .jsonl files (with their .meta.json) to the store",
     "usage: tapestore import [-r] [--overwrite] FILE|DIR... [--json]\n\n"
     "Imports each FILE.jsonl, with FILE.meta.json beside it when present\n"
     "(metadata: name, tags, status...). A DIR imports the *.jsonl files in it,\n"
     "in name order; with -r, those of its subdirectories too. A tape already\n"
     "in the store with the same content is skipped; one that differs is an\n"
     "error unless --overwrite. A file that fails is reported with its name and\n"
     "line, changes nothing, and the other files are still imported.\n\n"
     "Options:\n"
     "  -r, --recursive  descend into subdirectories of a DIR\n"
     "  --overwrite      replace a tape of the same id that differs\n"},
    {"rm", cmd_rm, "delete tapes",
     "usage: tapestore rm [-f] ID... [--json]\n\n"
     "Deletes each tape. A missing one is reported (exit 3) after the others are\n"
     "deleted.\n\n"
     "Options:\n"
     "  -f, --force  a missing tape is not an error\n"},
    {"stats", cmd_stats, "statistics of the whole store",
     "usage: tapestore stats [--json]\n\n"
     "The provider, tape count, frame count, total bytes, and the store's\n"
     "capabilities: native, and available (native or through the core's fallbacks).\n"},
    {"tail", cmd_tail, "print a tape's last frames; -f follows a recording",
     "usage: tapestore tail [-f] [-n N|all] [--interval MS] [--raw] [--json] ID\n\n"
     "Prints the tape's last N frames (default 10). With -f, then waits for new\n"
     "frames and prints each as it is appended, until the tape is finalized (exit 0),\n"
     "deleted (exit 1), or SIGINT (exit 0). The store is polled every MS\n"
     "milliseconds (default 200) with ranged reads after the last frame seen.\n\n"
     "Options:\n"
     "  -f, --follow       follow a recording in progress\n"
     "  -n, --lines N|all  how many of the existing frames to print first (default 10)\n"
     "  --interval MS      poll interval with -f (default 200, at least 10)\n"
     "  --raw              print each frame's stored JSONL line\n"
     "  --json             one JSON document; with -f, one JSON object per frame per line\n"},
    {"migrate", cmd_migrate, "copy tapes between two stores, verifying each copy",
     "usage: tapestore migrate --from SPEC --to SPEC [QUERY FLAGS] [--overwrite] [--json]\n\n"
     "Copies every tape of the source that matches the query flags to the target,\n"
     "then loads it back and checks that its encoded .jsonl and .meta.json equal\n"
     "the source's, byte for byte. Idempotent and resumable: a tape already in\n"
     "the target with equal content is skipped, so after an interruption a rerun\n"
     "copies only what is missing. A tape that differs in the target is an error\n"
     "unless --overwrite. Progress: a bar on a terminal (stderr), else one line\n"
     "per tape.\n\n"
     "Options:\n"
     "  --from SPEC   the source store (required)\n"
     "  --to SPEC     the target store (required)\n"
     "  --overwrite   replace tapes that differ in the target\n\n" QUERY_HELP},
#ifdef TAPE_TOOLS_HAVE_LUA
    {"query", cmd_query, "run a Lua script against the store",
     "usage: tapestore query [--store SPEC] [--plugin PATH]... SCRIPT.lua [ARGS]\n\n"
     "Runs SCRIPT.lua in an embedded Lua 5.4 with the Lua binding (docs/lua.md):\n"
     "the script does require \"tapestore\", and tapestore.open() opens this\n"
     "command's store (--store is handed over as TAPESTORE_STORE); providers\n"
     "loaded with --plugin are there too. ARGS, options included, are the\n"
     "script's: arg[1..n] and the chunk's ... (arg[0] is the script). The\n"
     "scripts of examples/lua-queries run this way.\n\n"
     "Exit status: the script's os.exit code if it calls it; else 0, or 1 when\n"
     "it raises (the error and its traceback on stderr), 3 when SCRIPT cannot\n"
     "be read.\n"},
#endif
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

static void main_help(FILE *f)
{
    fprintf(f,
            "usage: tapestore [--store SPEC] [--plugin PATH]... COMMAND [ARGS]\n\n"
            "Inspect and move tapes (recorded MCP sessions) in any tapestore store.\n\n"
            "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "  %-10s %s\n", "help", "help CMD: the help of a command");
    fprintf(f,
            "\n" COMMON_HELP
            "  --version        print the version\n\n"
            "Plugins load %s.\n"
            "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found.\n"
            "More: tapestore help COMMAND, man tapestore, docs/cli.md.\n",
            tape_tools_plugin_kinds());
}

void cli_help(FILE *f, const char *cmd)
{
    const command *k = find_command(cmd);
    if (k == NULL) {
        main_help(f);
        return;
    }
    fprintf(f, "%s\n%s", k->summary, k->help);
    fprintf(f, "\n" COMMON_HELP);
}

/* ---------------------------------------------------------------- output */

const char *cli_c(const cli *c, const char *code)
{
    return c->color_out ? code : "";
}

const char *cli_ce(const cli *c, const char *code)
{
    return c->color_err ? code : "";
}

static void vmsg(const cli *c, const char *kind, const char *color, const char *fmt, va_list ap)
{
    fflush(stdout); /* keep stdout and stderr in order on one terminal */
    fprintf(stderr, "%s: %s%s:%s ", c->prog, cli_ce(c, color), kind, cli_ce(c, CLI_RESET));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_error(const cli *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "error", CLI_RED, fmt, ap);
    va_end(ap);
    return code;
}

void cli_warn(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "warning", CLI_YELLOW, fmt, ap);
    va_end(ap);
}

int cli_code(int rc)
{
    switch (rc) {
    case TAPE_ENOTFOUND:
        return CLI_NOTFOUND;
    case TAPE_EQUERY:
        return CLI_USAGE;
    default:
        return CLI_FAIL;
    }
}

int cli_lib_error(const cli *c, int rc, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cli_error(c, cli_code(rc), "%s: %s", what, tape_errmsg());
}

int cli_print_json(const cli *c, cJSON *doc)
{
    char *text = doc != NULL ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL) {
        return cli_error(c, CLI_FAIL, "out of memory printing the JSON document");
    }
    int ok = fputs(text, stdout) >= 0 && fputc('\n', stdout) != EOF;
    free(text);
    if (!ok) {
        return cli_error(c, CLI_FAIL, "cannot write to stdout: %s", strerror(errno));
    }
    return CLI_OK;
}

cJSON *cli_json_str(const char *s)
{
    return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

const char *cli_time_text(char *buf, size_t len, int64_t ms, int short_form)
{
    if (ms == TAPE_TIME_NONE) {
        snprintf(buf, len, "-");
        return buf;
    }
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int milli = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "%lld", (long long)ms);
        return buf;
    }
    if (short_form) {
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    } else {
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    }
    return buf;
}

cJSON *cli_json_time(int64_t ms)
{
    if (ms == TAPE_TIME_NONE) {
        return cJSON_CreateNull();
    }
    char buf[64];
    return cJSON_CreateString(cli_time_text(buf, sizeof buf, ms, 0));
}

cJSON *cli_entry_json(const tape_entry *e)
{
    char *meta = NULL;
    size_t len = 0;
    if (tape_entry_meta_json(&meta, &len, e) != TAPE_OK) {
        return NULL;
    }
    cJSON *doc = cJSON_ParseWithLength(meta, len);
    tape_string_free(meta);
    return doc;
}

static const struct {
    unsigned int bit;
    const char *name;
} cap_names[] = {
    {TAPE_CAP_EXISTS, "exists"},         {TAPE_CAP_SEARCH, "search"},
    {TAPE_CAP_STATS, "stats"},           {TAPE_CAP_WRITER, "writer"},
    {TAPE_CAP_READ_FRAMES, "read_frames"}, {TAPE_CAP_CONTROL, "control"},
    {TAPE_CAP_THREAD_SAFE, "thread_safe"}, {TAPE_CAP_PERSISTENT, "persistent"},
    {TAPE_CAP_WRITER_RETRY, "writer_retry"},
};

cJSON *cli_caps_json(unsigned int caps)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a != NULL && i < sizeof cap_names / sizeof cap_names[0]; i++) {
        if (caps & cap_names[i].bit) {
            cJSON_AddItemToArray(a, cJSON_CreateString(cap_names[i].name));
        }
    }
    return a;
}

const char *cli_caps_text(char *buf, size_t len, unsigned int caps)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++) {
        if ((caps & cap_names[i].bit) && used < len) {
            int n = snprintf(buf + used, len - used, "%s%s", used > 0 ? "," : "",
                             cap_names[i].name);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    if (buf[0] == '\0') {
        snprintf(buf, len, "-");
    }
    return buf;
}

const char *cli_safe(const char *s, int slot)
{
    static char bufs[8][512];
    char *b = bufs[slot & 7];
    size_t i = 0;
    if (s == NULL) {
        s = "-";
    }
    for (; *s != '\0' && i + 4 < sizeof bufs[0]; s++) {
        unsigned char ch = (unsigned char)*s;
        b[i++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (*s != '\0') {
        memcpy(b + i, "...", 3);
        i += 3;
    }
    b[i] = '\0';
    return b;
}

size_t cli_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            w++;
        }
    }
    return w;
}

void cli_pad(FILE *f, const char *s, size_t w)
{
    fputs(s, f);
    for (size_t n = cli_width(s); n < w; n++) {
        fputc(' ', f);
    }
}

int cli_parse_int(int64_t *out, const char *s)
{
    if (s == NULL || *s == '\0') {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* ---------------------------------------------------------------- stores */

static void log_hook(void *ud, int level, const char *msg)
{
    const cli *c = ud;
    if (level >= TAPE_LOG_WARN) {
        cli_warn(c, "%s", msg);
    }
}

int cli_load_plugins(cli *c)
{
    if (c->plugins_loaded) {
        return CLI_OK;
    }
    c->plugins_loaded = 1;
    char err[4096];
    int rc = tape_tools_load_plugins(tape_registry_default(), c->plugins, c->nplugins, err,
                                     sizeof err);
    /* Importing the Python package installs its own log hook (into Python's
     * logging, silent by default): the command's warnings go to stderr. */
    tape_log_set(log_hook, c);
    if (rc != TAPE_OK) {
        return cli_error(c, rc == TAPE_ENOTFOUND ? CLI_NOTFOUND : CLI_FAIL, "%s", err);
    }
    return CLI_OK;
}

const char *cli_store_name(const cli *c)
{
    if (c->store_spec != NULL) {
        return c->store_spec;
    }
    const char *env = getenv("TAPESTORE_STORE");
    return env != NULL && env[0] != '\0' ? env : "filesystem:./tapes";
}

int cli_open_store(cli *c)
{
    int code = cli_load_plugins(c);
    if (code != CLI_OK) {
        return code;
    }
    /* Eager: an unreachable server or a bad path is reported here, once,
     * naming the store, rather than by whatever call comes first. */
    int rc = c->store_spec != NULL
                 ? tape_store_open_spec(&c->store, NULL, c->store_spec, TAPE_OPEN_EAGER)
                 : tape_store_open_env(&c->store, NULL, TAPE_OPEN_EAGER);
    if (rc != TAPE_OK) {
        c->store = NULL;
        return cli_lib_error(c, rc, "cannot open store %s", cli_store_name(c));
    }
    return CLI_OK;
}

static int decide_color(int mode, int fd)
{
    if (mode == 1) {
        return 1;
    }
    if (mode == 2) {
        return 0;
    }
    const char *nc = getenv("NO_COLOR");
    if (nc != NULL && nc[0] != '\0') {
        return 0; /* https://no-color.org: any non-empty value */
    }
    const char *term = getenv("TERM");
    if (term != NULL && strcmp(term, "dumb") == 0) {
        return 0;
    }
    return isatty(fd);
}

/* ---------------------------------------------------------------- options */

static const struct option common_opts[] = {
    {"store", required_argument, NULL, OPT_STORE},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"json", no_argument, NULL, OPT_JSON},
    {"color", required_argument, NULL, OPT_COLOR},
    {"colour", required_argument, NULL, OPT_COLOR},
    {"no-color", no_argument, NULL, OPT_NOCOLOR},
    {"help", no_argument, NULL, OPT_HELP},
};

static const struct option order_opts[] = {
    {"order-by", required_argument, NULL, OPT_Q_ORDER},
    {"descending", no_argument, NULL, OPT_Q_DESC},
    {"limit", required_argument, NULL, OPT_Q_LIMIT},
    {"cursor", required_argument, NULL, OPT_Q_CURSOR},
};

static const struct option query_opts[] = {
    {"session-id", required_argument, NULL, OPT_Q_SESSION},
    {"name-contains", required_argument, NULL, OPT_Q_NAME},
    {"tag-any", required_argument, NULL, OPT_Q_TAG_ANY},
    {"tag-all", required_argument, NULL, OPT_Q_TAG_ALL},
    {"status", required_argument, NULL, OPT_Q_STATUS},
    {"created-after", required_argument, NULL, OPT_Q_AFTER},
    {"created-before", required_argument, NULL, OPT_Q_BEFORE},
    {"min-duration-ms", required_argument, NULL, OPT_Q_MIN_DUR},
    {"max-duration-ms", required_argument, NULL, OPT_Q_MAX_DUR},
    {"min-frames", required_argument, NULL, OPT_Q_MIN_FRAMES},
    {"max-frames", required_argument, NULL, OPT_Q_MAX_FRAMES},
    {"text", required_argument, NULL, OPT_Q_TEXT},
    {"strict", no_argument, NULL, OPT_Q_STRICT},
    {"query", required_argument, NULL, OPT_Q_JSON},
};

static int add_opts(struct option *all, size_t *n, const struct option *src, size_t count)
{
    for (size_t i = 0; i < count && src[i].name != NULL; i++) {
        all[(*n)++] = src[i];
    }
    return 0;
}

/* The query key a flag sets and how its value is read. */
static int query_flag(cli *c, cli_query_flags *qf, int id, const char *arg)
{
    static const struct {
        int id;
        const char *key;
        const char *flag;
        char kind; /* s string, i integer, t time, l list, b true */
    } keys[] = {
        {OPT_Q_SESSION, "session_id", "--session-id", 's'},
        {OPT_Q_NAME, "name_contains", "--name-contains", 's'},
        {OPT_Q_TAG_ANY, "tags_any", "--tag-any", 'l'},
        {OPT_Q_TAG_ALL, "tags_all", "--tag-all", 'l'},
        {OPT_Q_STATUS, "status", "--status", 's'},
        {OPT_Q_AFTER, "created_after", "--created-after", 't'},
        {OPT_Q_BEFORE, "created_before", "--created-before", 't'},
        {OPT_Q_MIN_DUR, "min_duration_ms", "--min-duration-ms", 'i'},
        {OPT_Q_MAX_DUR, "max_duration_ms", "--max-duration-ms", 'i'},
        {OPT_Q_MIN_FRAMES, "min_frames", "--min-frames", 'i'},
        {OPT_Q_MAX_FRAMES, "max_frames", "--max-frames", 'i'},
        {OPT_Q_TEXT, "text", "--text", 's'},
        {OPT_Q_ORDER, "order_by", "--order-by", 's'},
        {OPT_Q_DESC, "descending", "--descending", 'b'},
        {OPT_Q_LIMIT, "limit", "--limit", 'i'},
        {OPT_Q_CURSOR, "cursor", "--cursor", 's'},
        {OPT_Q_STRICT, "strict", "--strict", 'b'},
    };
    if (id == OPT_Q_JSON) {
        if (qf->json != NULL) {
            return cli_error(c, CLI_USAGE, "--query given twice");
        }
        qf->json = arg;
        return -1;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (keys[i].id != id) {
            continue;
        }
        cJSON *old = cJSON_GetObjectItemCaseSensitive(qf->obj, keys[i].key);
        cJSON *v = NULL;
        int64_t n;
        switch (keys[i].kind) {
        case 's':
            v = cJSON_CreateString(arg);
            break;
        case 'b':
            v = cJSON_CreateTrue();
            break;
        case 'i':
            if (cli_parse_int(&n, arg) != 0) {
                return cli_error(c, CLI_USAGE, "%s: expected an integer, not \"%s\"",
                                 keys[i].flag, arg);
            }
            v = cJSON_CreateNumber((double)n);
            break;
        case 't':
            /* ms since the epoch, or ISO-8601 text the core parses. */
            v = cli_parse_int(&n, arg) == 0 ? cJSON_CreateNumber((double)n)
                                            : cJSON_CreateString(arg);
            break;
        case 'l':
            if (old == NULL) {
                old = cJSON_AddArrayToObject(qf->obj, keys[i].key);
            }
            if (old == NULL) {
                return cli_error(c, CLI_FAIL, "out of memory");
            }
            cJSON_AddItemToArray(old, cJSON_CreateString(arg));
            return -1;
        }
        if (v == NULL) {
            return cli_error(c, CLI_FAIL, "out of memory");
        }
        if (old != NULL) {
            cJSON_Delete(v);
            return cli_error(c, CLI_USAGE, "%s given twice", keys[i].flag);
        }
        cJSON_AddItemToObject(qf->obj, keys[i].key, v);
        return -1;
    }
    return cli_error(c, CLI_FAIL, "internal: unknown query flag %d", id);
}

int cli_parse(cli *c, int argc, char **argv, const char *shortopts, const struct option *extra,
              cli_opt_fn fn, void *ctx, cli_query_flags *query, char ***pos, int *npos)
{
    struct option all[80];
    size_t n = 0;
    add_opts(all, &n, common_opts, sizeof common_opts / sizeof common_opts[0]);
    if (query != NULL && (query->order_flags || query->query_flags)) {
        add_opts(all, &n, order_opts, sizeof order_opts / sizeof order_opts[0]);
    }
    if (query != NULL && query->query_flags) {
        add_opts(all, &n, query_opts, sizeof query_opts / sizeof query_opts[0]);
    }
    if (extra != NULL) {
        add_opts(all, &n, extra, 40);
    }
    all[n] = (struct option){NULL, 0, NULL, 0};
    /* No '+': getopt permutes, so options may follow an ID
     * ("tapestore show ID --json"); ':' first reports a missing value. */
    char shorts[64];
    snprintf(shorts, sizeof shorts, ":h%s", shortopts != NULL ? shortopts : "");
    optind = 0; /* glibc: a full re-initialisation */
    opterr = 0;
    int code = -1;
    for (;;) {
        int idx = -1;
        int o = getopt_long(argc, argv, shorts, all, &idx);
        if (o == -1) {
            break;
        }
        const char *arg = optarg;
        switch (o) {
        case '?':
            if (optopt != 0 && optopt < 256) {
                return cli_error(c, CLI_USAGE, "unknown option -%c (see tapestore help %s)",
                                 optopt, c->cmd);
            }
            return cli_error(c, CLI_USAGE, "unknown option %s (see tapestore help %s)",
                             argv[optind - 1], c->cmd);
        case ':':
            return cli_error(c, CLI_USAGE, "option %s needs a value", argv[optind - 1]);
        case 'h':
        case OPT_HELP:
            cli_help(stdout, c->cmd);
            return CLI_OK;
        case OPT_STORE:
            c->store_spec = arg;
            break;
        case OPT_PLUGIN: {
            const char **p = realloc(c->plugins, (c->nplugins + 1) * sizeof *p);
            if (p == NULL) {
                return cli_error(c, CLI_FAIL, "out of memory");
            }
            c->plugins = p;
            c->plugins[c->nplugins++] = arg;
            break;
        }
        case OPT_JSON:
            c->json = 1;
            break;
        case OPT_COLOR:
            if (strcmp(arg, "auto") == 0) {
                c->color_mode = 0;
            } else if (strcmp(arg, "always") == 0) {
                c->color_mode = 1;
            } else if (strcmp(arg, "never") == 0) {
                c->color_mode = 2;
            } else {
                return cli_error(c, CLI_USAGE,
                                 "--color: expected auto, always or never, not \"%s\"", arg);
            }
            break;
        case OPT_NOCOLOR:
            c->color_mode = 2;
            break;
        default:
            if (o >= OPT_Q_SESSION && o <= OPT_Q_JSON && query != NULL) {
                code = query_flag(c, query, o, arg);
            } else if (fn != NULL) {
                code = fn(c, ctx, o, arg);
            } else {
                code = cli_error(c, CLI_FAIL, "internal: unhandled option %d", o);
            }
            if (code != -1) {
                return code;
            }
        }
    }
    c->color_out = decide_color(c->color_mode, 1);
    c->color_err = decide_color(c->color_mode, 2);
    *pos = argv + optind;
    *npos = argc - optind;
    return -1;
}

int cli_query_build(cli *c, cli_query_flags *qf, tape_query **out, int *has_limit)
{
    cJSON *q = NULL;
    if (qf->json != NULL) {
        q = cJSON_Parse(qf->json);
        if (q == NULL || !cJSON_IsObject(q)) {
            cJSON_Delete(q);
            return cli_error(c, CLI_USAGE, "--query: expected a JSON object, not \"%s\"",
                             qf->json);
        }
        for (cJSON *it = qf->obj->child; it != NULL; it = it->next) {
            if (cJSON_GetObjectItemCaseSensitive(q, it->string) != NULL) {
                cJSON_Delete(q);
                return cli_error(c, CLI_USAGE,
                                 "query key \"%s\" is set both by --query and by a flag",
                                 it->string);
            }
        }
        for (cJSON *it = qf->obj->child; it != NULL; it = it->next) {
            cJSON_AddItemToObject(q, it->string, cJSON_Duplicate(it, 1));
        }
    } else {
        q = cJSON_Duplicate(qf->obj, 1);
    }
    if (has_limit != NULL) {
        *has_limit = cJSON_GetObjectItemCaseSensitive(q, "limit") != NULL &&
                     !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(q, "limit"));
    }
    char *text = q != NULL ? cJSON_PrintUnformatted(q) : NULL;
    cJSON_Delete(q);
    if (text == NULL) {
        return cli_error(c, CLI_FAIL, "out of memory");
    }
    int rc = tape_query_parse(out, text);
    free(text);
    if (rc != TAPE_OK) {
        return cli_error(c, CLI_USAGE, "invalid query: %s", tape_errmsg());
    }
    return -1;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    cli c = {0};
    c.prog = "tapestore";
    /* Options before the command (--store, --plugin, --color, --help). */
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        size_t kl = strcspn(a, "=");
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            main_help(stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("tapestore %s (library %d.%d.%d)\n", TAPE_VERSION_STRING,
                   tape_version() / 10000, tape_version() / 100 % 100, tape_version() % 100);
            return CLI_OK;
        }
        if (strcmp(a, "--no-color") == 0) {
            c.color_mode = 2;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            c.json = 1;
            continue;
        }
        if (strncmp(a, "--store", kl) == 0 && kl == 7) {
            val = a[kl] == '=' ? a + kl + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL) {
                return cli_error(&c, CLI_USAGE, "option --store needs a value");
            }
            c.store_spec = val;
        } else if (strncmp(a, "--plugin", kl) == 0 && kl == 8) {
            val = a[kl] == '=' ? a + kl + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL) {
                return cli_error(&c, CLI_USAGE, "option --plugin needs a value");
            }
            const char **p = realloc(c.plugins, (c.nplugins + 1) * sizeof *p);
            if (p == NULL) {
                return cli_error(&c, CLI_FAIL, "out of memory");
            }
            c.plugins = p;
            c.plugins[c.nplugins++] = val;
        } else if (strncmp(a, "--color", kl) == 0 && kl == 7) {
            val = a[kl] == '=' ? a + kl + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL || (strcmp(val, "auto") != 0 && strcmp(val, "always") != 0 &&
                                strcmp(val, "never") != 0)) {
                return cli_error(&c, CLI_USAGE, "--color: expected auto, always or never");
            }
            c.color_mode = strcmp(val, "always") == 0 ? 1 : strcmp(val, "never") == 0 ? 2 : 0;
        } else {
            c.color_err = decide_color(c.color_mode, 2);
            return cli_error(&c, CLI_USAGE, "unknown option %s before the command (see tapestore --help)",
                             a);
        }
    }
    c.color_err = decide_color(c.color_mode, 2);
    if (i >= argc) {
        main_help(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        if (i + 1 >= argc) {
            main_help(stdout);
            return CLI_OK;
        }
        if (find_command(argv[i + 1]) == NULL) {
            return cli_error(&c, CLI_USAGE, "no command named \"%s\" (see tapestore --help)",
                             argv[i + 1]);
        }
        cli_help(stdout, argv[i + 1]);
        return CLI_OK;
    }
    const command *k = find_command(name);
    if (k == NULL) {
        return cli_error(&c, CLI_USAGE, "no command named \"%s\" (see tapestore --help)", name);
    }
    static char prog[64];
    snprintf(prog, sizeof prog, "tapestore %s", k->name);
    c.prog = prog;
    c.cmd = k->name;
    tape_log_set(log_hook, &c);
    /* The subcommand parses its own argv (argv[i] is its argv[0]); the
     * colours are decided there, once --color is read. */
    int code = k->fn(&c, argc - i, argv + i);
    if (c.store != NULL) {
        int rc = tape_store_close(c.store);
        c.store = NULL;
        if (rc != TAPE_OK && code == CLI_OK) {
            code = cli_lib_error(&c, rc, "closing store %s", cli_store_name(&c));
        }
    }
    tape_tools_plugins_shutdown();
    tape_log_set(NULL, NULL);
    free(c.plugins);
    if (fflush(stdout) != 0 && code == CLI_OK) {
        code = cli_error(&c, CLI_FAIL, "cannot write to stdout: %s", strerror(errno));
    }
    return code;
}


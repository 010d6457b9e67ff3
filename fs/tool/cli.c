/*
 * cli.c - `jetsnap`, the administrator's tool (SPEC section 1).
 *
 * A thin front over libjetsnap: it parses the command line, runs one library
 * call (or one open/operation/close sequence) and turns the result into the
 * SPEC's exit status and error line.  The two mount-side commands (`backup`,
 * `truncate`) do not touch the engine: their arguments are parsed here and
 * the control/status conversation lives in cli_mount.c.
 *
 * Exit status: 0 success; 1 the operation failed, after one line
 * `jetsnap: NAME (NUMBER): message`; 2 usage error, after one line saying
 * why.  Every argument is validated before anything touches the disk, so a
 * misuse never changes anything.
 *
 * Keys and values on the command line and in `dump`/`get` output use one
 * escape syntax: `\\`, `\t`, `\n`, `\r`, and `\xHH` for any other byte
 * outside 0x20..0x7e (printed in lower case, read in either case).  What
 * `dump` prints can be pasted back into `put`.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jetsnap.h"

/* Defined in cli_mount.c (the Makefile links every core/cli*.c into the
 * tool and nothing else, so there is no header for this one entry point).
 * Writes `line` to MOUNTPOINT/control and follows MOUNTPOINT/status until
 * the job ends; returns the exit status. */
int js_cli_follow(const char *mountpoint, const char *line, const char *label,
                  int incremental);

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* cli_parse() results besides CLI_EXIT_USAGE. */
enum { CLI_PARSED = 0, CLI_HELP = -1 };

#define CLI_MAX_POS 4
#define CLI_CONTROL_MAX 4096   /* one control write, SPEC section 3 */

struct cli_cmd {
    const char *name;
    const char *synopsis;      /* arguments after the command name */
    const char *help;          /* what it does, options; ends with '\n' */
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
};

enum cli_opt_kind { CLI_OPT_FLAG, CLI_OPT_VALUE };

struct cli_opt {
    const char *name;          /* "--page-size" */
    enum cli_opt_kind kind;
    const char *value;         /* out: the value (CLI_OPT_VALUE) */
    int set;                   /* out: given on the command line */
};

struct cli_args {
    const char *pos[CLI_MAX_POS];
    int npos;
};

/* The first error of a command, with its detail copied at once: the
 * library's detail buffer is only valid until the next call, and cleanup
 * (js_close) makes calls. */
struct cli_err {
    JET_ERR err;
    char detail[512];
};

/* ------------------------------------------------------------------ */
/* Messages                                                             */
/* ------------------------------------------------------------------ */

/* A usage error: one line naming the command and the reason; exit 2. */
static int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("jetsnap: ", stderr);
    if (cmd)
        fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'jetsnap %s%s--help')\n", cmd ? cmd->name : "", cmd ? " " : "");
    return CLI_EXIT_USAGE;
}

/* The error is one line, whatever a detail holds. */
static void cli_one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
}

static void cli_err_note(struct cli_err *e, JET_ERR err)
{
    if (e->err != JET_errSuccess || err >= 0)
        return;
    e->err = err;
    snprintf(e->detail, sizeof e->detail, "%s", js_errdetail());
    cli_one_line(e->detail);
}

/* `jetsnap: NAME (NUMBER): message`; the detail when the library gave one,
 * else the generic description of the code.  Returns the exit status. */
static int cli_err_report(const struct cli_err *e)
{
    const char *msg;

    if (e->err >= 0)
        return CLI_EXIT_OK;
    msg = e->detail[0] ? e->detail : js_errmsg(e->err);
    fprintf(stderr, "jetsnap: %s (%d): %s\n", js_errname(e->err), e->err, msg);
    return CLI_EXIT_FAIL;
}

/* ------------------------------------------------------------------ */
/* Argument parsing                                                     */
/* ------------------------------------------------------------------ */

static int cli_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/*
 * Split argv (argv[0] is the command name) into options from opts and
 * between nmin and nmax positionals, the first npaths of which are paths
 * and so must not be empty.  Options may come anywhere; `--name
 * VALUE` and `--name=VALUE` both work; `--` ends the options so a key may
 * start with a dash.  `--help` anywhere before `--` wins over every other
 * problem so that it always answers.
 */
static int cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
                     struct cli_opt *opts, int nmin, int nmax, int npaths,
                     struct cli_args *a)
{
    int i, only_pos = 0;

    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (cli_is_help(argv[i]))
            return CLI_HELP;

    a->npos = 0;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        struct cli_opt *o = NULL;
        const char *eq;
        size_t nlen;

        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || arg[0] != '-' || arg[1] == '\0') {
            if (a->npos >= nmax)
                return cli_usage(cmd, "unexpected argument '%s'", arg);
            a->pos[a->npos++] = arg;
            continue;
        }
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (struct cli_opt *p = opts; p && p->name; p++)
            if (strlen(p->name) == nlen && strncmp(p->name, arg, nlen) == 0)
                o = p;
        if (!o)
            return cli_usage(cmd, "unknown option '%.*s'", (int)nlen, arg);
        if (o->set)
            return cli_usage(cmd, "option %s given twice", o->name);
        o->set = 1;
        if (o->kind == CLI_OPT_FLAG) {
            if (eq)
                return cli_usage(cmd, "option %s takes no value", o->name);
            continue;
        }
        if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return cli_usage(cmd, "option %s needs a value", o->name);
        }
        if (o->value[0] == '\0')
            return cli_usage(cmd, "option %s needs a value", o->name);
    }
    if (a->npos < nmin)
        return cli_usage(cmd, "missing argument (usage: jetsnap %s %s)", cmd->name,
                         cmd->synopsis);
    for (i = 0; i < npaths && i < a->npos; i++)
        if (a->pos[i][0] == '\0')
            return cli_usage(cmd, "empty path argument");
    return CLI_PARSED;
}

/* "N", "NK", "NM", "NG" (binary multiples, either case).  Rejects signs,
 * spaces, empty strings, other suffixes and overflow. */
static int cli_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': mul = 1ull << 10; p++; break;
    case 'm': case 'M': mul = 1ull << 20; p++; break;
    case 'g': case 'G': mul = 1ull << 30; p++; break;
    default: return -1;
    }
    if (*p != '\0' || (v != 0 && v > UINT64_MAX / mul))
        return -1;
    *out = v * mul;
    return 0;
}

static int cli_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A log generation: decimal, `0x` hex, or a generation file name
 * `edbXXXXXXXX.log` (what an administrator sees in the directory). */
static int cli_parse_gen(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    size_t len = strlen(s);

    if (len == 15 && strncmp(s, "edb", 3) == 0 && strcmp(s + 11, ".log") == 0) {
        for (size_t i = 3; i < 11; i++) {
            int h = cli_hexval((unsigned char)s[i]);
            if (h < 0)
                return -1;
            v = v * 16 + (uint64_t)h;
        }
    } else if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        if (s[2] == '\0' || len > 10)
            return -1;
        for (const char *p = s + 2; *p; p++) {
            int h = cli_hexval((unsigned char)*p);
            if (h < 0)
                return -1;
            v = v * 16 + (uint64_t)h;
        }
    } else {
        if (*s == '\0' || len > 10)
            return -1;
        for (const char *p = s; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (uint64_t)(*p - '0');
        }
    }
    if (v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/*
 * Decode the escapes of the file comment into a malloc'd buffer.  Any other
 * backslash sequence is refused rather than passed through, so a typo can
 * never store a different key than the one meant.  Returns 0, or -1 with
 * *why set (and nothing allocated).
 */
static int cli_unescape(const char *s, unsigned char **out, size_t *len, const char **why)
{
    size_t n = strlen(s), o = 0;
    unsigned char *buf = malloc(n + 1);

    if (!buf) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] != '\\') {
            buf[o++] = (unsigned char)s[i];
            continue;
        }
        switch (s[++i]) {
        case '\\': buf[o++] = '\\'; break;
        case 't': buf[o++] = '\t'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 'x':
            hi = i + 1 < n ? cli_hexval((unsigned char)s[i + 1]) : -1;
            lo = i + 2 < n ? cli_hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "\\x needs two hex digits";
                goto out_free;
            }
            buf[o++] = (unsigned char)(hi * 16 + lo);
            i += 2;
            break;
        case '\0':
            *why = "trailing backslash (write \\\\ for a backslash)";
            goto out_free;
        default:
            *why = "unknown escape (use \\\\, \\t, \\n, \\r or \\xHH)";
            goto out_free;
        }
    }
    *out = buf;
    *len = o;
    return 0;

out_free:
    free(buf);
    return -1;
}

static void cli_escape(FILE *f, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];

        switch (c) {
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (c >= 0x20 && c <= 0x7e) {
                putc(c, f);
            } else {
                putc('\\', f);
                putc('x', f);
                putc(hex[c >> 4], f);
                putc(hex[c & 15], f);
            }
        }
    }
}

/* Decode a KEY argument and check the engine's limits here, before the
 * instance is opened (opening alone rewrites the header). */
static int cli_key_arg(const struct cli_cmd *cmd, const char *arg, unsigned char **key,
                       size_t *klen)
{
    const char *why = NULL;

    if (cli_unescape(arg, key, klen, &why) != 0)
        return cli_usage(cmd, "bad KEY: %s", why);
    if (*klen == 0 || *klen > JS_KEY_MAX) {
        free(*key);
        *key = NULL;
        return cli_usage(cmd, "KEY must be 1..%u bytes (got %zu)", JS_KEY_MAX, *klen);
    }
    return CLI_PARSED;
}

/* ------------------------------------------------------------------ */
/* Offline access to an instance                                        */
/* ------------------------------------------------------------------ */

/* Open dir for one offline operation with default parameters: the
 * creation-time ones (page size, log size, circular logging) come from the
 * instance's header, and the rest only tune a long-running process. */
static JET_ERR cli_open(const char *dir, js_instance **inst, js_session **s, struct cli_err *e)
{
    js_params p;
    JET_ERR err;

    js_params_default(&p);
    err = js_open(dir, &p, inst);
    if (err < 0) {
        cli_err_note(e, err);
        *inst = NULL;
        return err;
    }
    err = js_session_open(*inst, s);
    if (err < 0) {
        cli_err_note(e, err);
        *s = NULL;
    }
    return err;
}

static void cli_close(js_instance *inst, js_session *s, struct cli_err *e)
{
    js_session_close(s);
    if (inst)
        cli_err_note(e, js_close(inst));
}

/* stdout failing (a full disk, a closed pipe: SIGPIPE is ignored so the
 * instance is always closed cleanly) is an operation failure too. */
static int cli_stdout_failed(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    fprintf(stderr, "jetsnap: writing to standard output: %s\n", strerror(errno));
    return 1;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

static int cmd_create(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "--page-size", CLI_OPT_VALUE, NULL, 0 },
        { "--log-file-size", CLI_OPT_VALUE, NULL, 0 },
        { "--circular-log", CLI_OPT_FLAG, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_err e = { 0, "" };
    struct cli_args a;
    js_params p;
    uint64_t v;
    int rc;

    rc = cli_parse(cmd, argc, argv, opts, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    js_params_default(&p);
    if (opts[0].set) {
        if (cli_parse_size(opts[0].value, &v) != 0)
            return cli_usage(cmd, "bad number '%s' for --page-size", opts[0].value);
        if (v != 4096 && v != 8192 && v != 16384 && v != 32768)
            return cli_usage(cmd, "page size must be 4096, 8192, 16384 or 32768, not %s",
                             opts[0].value);
        p.page_size = (uint32_t)v;
    }
    if (opts[1].set) {
        if (cli_parse_size(opts[1].value, &v) != 0)
            return cli_usage(cmd, "bad number '%s' for --log-file-size", opts[1].value);
        if (v < (64u << 10) || v > (1u << 30))
            return cli_usage(cmd, "log file size must be 64K..1G, not %s", opts[1].value);
        p.log_file_size = v;
    }
    p.circular_log = opts[2].set;
    cli_err_note(&e, js_create(a.pos[0], &p));
    return cli_err_report(&e);
}

static int cmd_info(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    struct cli_args a;
    js_info info;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    cli_err_note(&e, js_info_read(a.pos[0], &info));
    if (e.err < 0)
        return cli_err_report(&e);
    js_info_print(&info, stdout);
    return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* The counts as `key: value` lines; nothing when nothing could be checked
 * at all (a missing path), where the error line says everything. */
static void cli_print_report(const js_check_report *r, JET_ERR err)
{
    if (err < 0 && !r->pages_checked && !r->log_files_checked)
        return;
    printf("pages_checked: %" PRIu64 "\n", r->pages_checked);
    printf("pages_bad: %" PRIu64 "\n", r->pages_bad);
    if (r->pages_bad)
        printf("first_bad_page: %" PRIu32 "\n", r->first_bad_page);
    printf("log_files_checked: %" PRIu64 "\n", r->log_files_checked);
    printf("log_blocks_checked: %" PRIu64 "\n", r->log_blocks_checked);
    printf("log_records_checked: %" PRIu64 "\n", r->log_records_checked);
    printf("log_files_bad: %" PRIu64 "\n", r->log_files_bad);
}

/* The report's own first error is the most specific message; an error
 * without bad counts (a missing generation) falls back to the detail. */
static void cli_note_report(struct cli_err *e, JET_ERR err, const js_check_report *r)
{
    if (err >= 0 && (r->pages_bad || r->log_files_bad))
        err = r->pages_bad ? JET_errReadVerifyFailure : JET_errLogReadVerifyFailure;
    cli_err_note(e, err);
    if (e->err < 0 && r->first_error[0]) {
        snprintf(e->detail, sizeof e->detail, "%.*s", (int)sizeof r->first_error,
                 r->first_error);
        cli_one_line(e->detail);
    }
}

static int check_or_verify(const struct cli_cmd *cmd, int argc, char **argv, int verify);

static int cmd_check(const struct cli_cmd *cmd, int argc, char **argv)
{
    return check_or_verify(cmd, argc, argv, 0);
}

static int cmd_dump(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    js_cursor *c = NULL;
    struct cli_args a;
    int rc, in_txn = 0, out_failed = 0;
    JET_ERR err;

    rc = cli_parse(cmd, argc, argv, NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    if (cli_open(a.pos[0], &inst, &s, &e) < 0)
        goto out_close;
    /* One read-only transaction: the dump is one consistent view. */
    err = js_txn_begin(s, JS_TXN_READONLY);
    if (err < 0) {
        cli_err_note(&e, err);
        goto out_close;
    }
    in_txn = 1;
    err = js_cursor_open(s, &c);
    if (err < 0) {
        cli_err_note(&e, err);
        c = NULL;
        goto out_txn;
    }
    for (err = js_cursor_seek(c, "", 0); err == JET_errSuccess; err = js_cursor_next(c)) {
        const void *k, *v;
        size_t kl, vl;

        err = js_cursor_key(c, &k, &kl);
        if (err == JET_errSuccess)
            err = js_cursor_value(c, &v, &vl);
        if (err < 0)
            break;
        cli_escape(stdout, k, kl);
        putchar('\t');
        cli_escape(stdout, v, vl);
        putchar('\n');
        if (ferror(stdout)) {
            out_failed = 1;
            break;
        }
    }
    if (err != JET_errRecordNotFound && err < 0)
        cli_err_note(&e, err);
    js_cursor_close(c);
out_txn:
    if (in_txn)
        cli_err_note(&e, js_txn_rollback(s));
out_close:
    cli_close(inst, s, &e);
    if (cli_stdout_failed())
        out_failed = 1;
    rc = cli_err_report(&e);
    return rc != CLI_EXIT_OK || out_failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cmd_get(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL;
    void *val = NULL;
    size_t klen, vlen = 0;
    struct cli_args a;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 2, 2, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    rc = cli_key_arg(cmd, a.pos[1], &key, &klen);
    if (rc != CLI_PARSED)
        return rc;
    if (cli_open(a.pos[0], &inst, &s, &e) == JET_errSuccess)
        cli_err_note(&e, js_get(s, key, klen, &val, &vlen));
    cli_close(inst, s, &e);
    if (e.err == JET_errSuccess) {
        cli_escape(stdout, val, vlen);
        putchar('\n');
    }
    free(val);
    free(key);
    rc = cli_err_report(&e);
    if (rc == CLI_EXIT_OK && cli_stdout_failed())
        rc = CLI_EXIT_FAIL;
    return rc;
}

static int cmd_put(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL, *val = NULL;
    size_t klen, vlen;
    const char *why = NULL;
    struct cli_args a;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 3, 3, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    rc = cli_key_arg(cmd, a.pos[1], &key, &klen);
    if (rc != CLI_PARSED)
        return rc;
    if (cli_unescape(a.pos[2], &val, &vlen, &why) != 0) {
        rc = cli_usage(cmd, "bad VALUE: %s", why);
        goto out_free;
    }
    if (vlen > JS_VALUE_MAX) {
        rc = cli_usage(cmd, "VALUE must be at most %u bytes (got %zu)", JS_VALUE_MAX, vlen);
        goto out_free;
    }
    if (cli_open(a.pos[0], &inst, &s, &e) == JET_errSuccess)
        cli_err_note(&e, js_put(s, key, klen, val, vlen));
    cli_close(inst, s, &e);
    rc = cli_err_report(&e);
out_free:
    free(val);
    free(key);
    return rc;
}

static int cmd_del(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL;
    size_t klen;
    struct cli_args a;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 2, 2, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    rc = cli_key_arg(cmd, a.pos[1], &key, &klen);
    if (rc != CLI_PARSED)
        return rc;
    if (cli_open(a.pos[0], &inst, &s, &e) == JET_errSuccess)
        cli_err_note(&e, js_del(s, key, klen));
    cli_close(inst, s, &e);
    free(key);
    return cli_err_report(&e);
}

/* Progress of restore/verify: plain lines on stderr at the start, at every
 * phase change or whole percent, and at the end. */
struct cli_progress {
    const char *label;
    int last_percent;
    char last_phase[32];
};

static int cli_progress_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    struct cli_progress *cp = ctx;
    const char *phase = p && p->phase ? p->phase : "";
    int pct;

    (void)snp;
    switch (snt) {
    case JS_SNT_BEGIN:
        fprintf(stderr, "%s: started\n", cp->label);
        break;
    case JS_SNT_PROGRESS:
        pct = p && p->units_total ? (int)(p->units_done * 100 / p->units_total) : 0;
        if (pct == cp->last_percent && strcmp(phase, cp->last_phase) == 0)
            break;
        cp->last_percent = pct;
        snprintf(cp->last_phase, sizeof cp->last_phase, "%s", phase);
        fprintf(stderr, "%s: %3d%% %s", cp->label, pct, phase);
        if (p && p->bytes_total)
            fprintf(stderr, " %.1f/%.1f MiB", (double)p->bytes_done / (1 << 20),
                    (double)p->bytes_total / (1 << 20));
        if (p && (p->gen_low || p->gen_high))
            fprintf(stderr, " generations %08" PRIX32 "-%08" PRIX32, p->gen_low, p->gen_high);
        fputc('\n', stderr);
        break;
    case JS_SNT_COMPLETE:
        fprintf(stderr, "%s: complete\n", cp->label);
        break;
    default:
        /* JS_SNT_FAIL: the error line comes from the returned code. */
        break;
    }
    return 0;
}

static int cmd_restore(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "--logs", CLI_OPT_VALUE, NULL, 0 },
        { "--until-gen", CLI_OPT_VALUE, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_progress cp = { "restore", -1, "" };
    struct cli_err e = { 0, "" };
    struct cli_args a;
    uint32_t until = 0;
    int rc;

    rc = cli_parse(cmd, argc, argv, opts, 2, 2, 2, &a);
    if (rc != CLI_PARSED)
        return rc;
    if (opts[1].set && cli_parse_gen(opts[1].value, &until) != 0)
        return cli_usage(cmd, "bad generation '%s' for --until-gen (decimal, 0xHEX or "
                         "edbXXXXXXXX.log, at least 1)", opts[1].value);
    cli_err_note(&e, js_restore(a.pos[0], a.pos[1], opts[0].value, until,
                                cli_progress_cb, &cp));
    return cli_err_report(&e);
}

/* check and verify share everything but the engine call: verify adds the
 * SHA256SUMS pass and a trial restore, with progress. */
static int check_or_verify(const struct cli_cmd *cmd, int argc, char **argv, int verify)
{
    struct cli_progress cp = { "verify", -1, "" };
    struct cli_err e = { 0, "" };
    js_check_report r;
    struct cli_args a;
    JET_ERR err;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    memset(&r, 0, sizeof r);
    err = verify ? js_verify(a.pos[0], &r, cli_progress_cb, &cp) : js_check(a.pos[0], &r);
    cli_note_report(&e, err, &r);
    cli_print_report(&r, e.err);
    rc = cli_stdout_failed();
    return cli_err_report(&e) != CLI_EXIT_OK || rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cmd_verify(const struct cli_cmd *cmd, int argc, char **argv)
{
    return check_or_verify(cmd, argc, argv, 1);
}

/* DEST as an absolute path: the daemon runs elsewhere and refuses relative
 * paths.  Lexical only (DEST may not exist yet, and symlink rules are the
 * daemon's to enforce). */
static char *cli_absolute(const char *dest)
{
    char cwd[PATH_MAX];
    char *out = NULL;

    if (dest[0] == '/')
        return strdup(dest);
    while (dest[0] == '.' && dest[1] == '/') {
        dest += 2;
        while (*dest == '/')
            dest++;
    }
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    if (strcmp(dest, ".") == 0 || dest[0] == '\0')
        return strdup(cwd);
    if (asprintf(&out, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", dest) < 0)
        return NULL;
    return out;
}

static int cmd_backup(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "--incremental", CLI_OPT_FLAG, NULL, 0 },
        { "--atomic", CLI_OPT_FLAG, NULL, 0 },
        { "--create", CLI_OPT_FLAG, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_args a;
    char *dest = NULL, *line = NULL;
    int rc, n;

    rc = cli_parse(cmd, argc, argv, opts, 2, 2, 2, &a);
    if (rc != CLI_PARSED)
        return rc;
    /* The control grammar separates words by single spaces and ends the
     * command at a newline, so neither can be part of a path. */
    if (strchr(a.pos[1], '\n') || strchr(a.pos[1], ' '))
        return cli_usage(cmd, "DEST must not contain a space or a newline");
    dest = cli_absolute(a.pos[1]);
    if (!dest) {
        fprintf(stderr, "jetsnap: cannot make DEST absolute: %s\n", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    n = asprintf(&line, "%s%s%s%s\n", dest, opts[0].set ? " incremental" : "",
                 opts[1].set ? " atomic" : "", opts[2].set ? " create" : "");
    if (n < 0) {
        line = NULL;
        fprintf(stderr, "jetsnap: %s\n", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out_free;
    }
    if (n > CLI_CONTROL_MAX) {
        rc = cli_usage(cmd, "DEST is too long for one control command (%d bytes)",
                       CLI_CONTROL_MAX);
        goto out_free;
    }
    rc = js_cli_follow(a.pos[0], line, "backup", opts[0].set);
out_free:
    free(line);
    free(dest);
    return rc;
}

static int cmd_truncate(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    return js_cli_follow(a.pos[0], "truncate\n", "truncate", 0);
}

static const struct cli_cmd cli_cmds[] = {
    { "create", "DBDIR [--page-size N] [--log-file-size N] [--circular-log]",
      "Create an empty instance in DBDIR (missing or empty).\n"
      "  --page-size N      4096, 8192, 16384 or 32768 (default 8192; K suffix allowed)\n"
      "  --log-file-size N  bytes per log generation, 64K..1G, K/M/G suffixes (default 5M)\n"
      "  --circular-log     delete log generations older than the checkpoint\n"
      "                     (incremental backups are then refused)\n",
      cmd_create },
    { "info", "PATH",
      "Print the database header of an instance directory, a database file or a\n"
      "backup set (PATH, PATH/new or PATH/old) as `key: value` lines.\n",
      cmd_info },
    { "check", "PATH",
      "Verify every page checksum and every log record checksum of an instance, a\n"
      "backup set or a lone .edb file, offline (for a mounted instance check\n"
      "MOUNTPOINT/live).  Prints the counts; exit 0 only if everything passes.\n",
      cmd_check },
    { "dump", "PATH",
      "Print every key/value of the instance in PATH (not mounted), in key order, one\n"
      "pair a line: KEY<TAB>VALUE, each escaped: \\\\, \\t, \\n, \\r, and \\xHH for other\n"
      "bytes outside 0x20..0x7e.\n",
      cmd_dump },
    { "get", "DBDIR KEY",
      "Print the value of KEY (escaped as by dump) from an instance that is not\n"
      "mounted.  KEY accepts the escapes dump prints.\n",
      cmd_get },
    { "put", "DBDIR KEY VALUE",
      "Store KEY=VALUE in an instance that is not mounted (one durable\n"
      "transaction).  KEY (1..255 bytes) and VALUE accept the escapes dump prints.\n",
      cmd_put },
    { "del", "DBDIR KEY",
      "Delete KEY from an instance that is not mounted.  KEY accepts the escapes\n"
      "dump prints.  A missing key is an error (JET_errRecordNotFound).\n",
      cmd_del },
    { "backup", "MOUNTPOINT DEST [--incremental] [--atomic] [--create]",
      "Start an online backup of the instance mounted at MOUNTPOINT into DEST\n"
      "through MOUNTPOINT/control and show its progress (a bar on a terminal, plain\n"
      "lines otherwise) until it ends; exit 0 on success.  Ctrl-C asks whether to\n"
      "cancel the backup (without a terminal it cancels at once).\n"
      "  --incremental  add the log generations since the previous backup\n"
      "  --atomic       build the set in DEST/temp, publish it as DEST/new\n"
      "  --create       create DEST if it is missing\n",
      cmd_backup },
    { "truncate", "MOUNTPOINT",
      "Delete the log generations the instance mounted at MOUNTPOINT no longer\n"
      "needs, through MOUNTPOINT/control, and wait until that is done.\n",
      cmd_truncate },
    { "restore", "BACKUP TARGET [--logs DIR] [--until-gen N]",
      "Hard recovery of the backup set in BACKUP (or BACKUP/new, BACKUP/old) into\n"
      "TARGET (empty or missing); leaves a clean-shutdown instance.\n"
      "  --logs DIR       also replay the generations in DIR that continue the chain\n"
      "  --until-gen N    replay no generation after N (decimal, 0xHEX or\n"
      "                   edbXXXXXXXX.log)\n",
      cmd_restore },
    { "verify", "BACKUP",
      "Check a backup set without touching anything else: SHA256SUMS, page and log\n"
      "checksums, the log chain, and a trial restore into a temporary directory.\n"
      "Exit 0 only if it would restore.\n",
      cmd_verify },
};

#define CLI_NCMDS (sizeof cli_cmds / sizeof cli_cmds[0])

static void cli_cmd_help(const struct cli_cmd *cmd)
{
    printf("usage: jetsnap %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
}

static void cli_main_help(void)
{
    printf("usage: jetsnap COMMAND [ARGS...]\n\n"
           "The administrator's tool of jetsnap.  Commands:\n");
    for (size_t i = 0; i < CLI_NCMDS; i++)
        printf("  %-9s %s\n", cli_cmds[i].name, cli_cmds[i].synopsis);
    printf("\n'jetsnap COMMAND --help' describes one command.\n"
           "Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

static const struct cli_cmd *cli_find(const char *name)
{
    for (size_t i = 0; i < CLI_NCMDS; i++)
        if (strcmp(cli_cmds[i].name, name) == 0)
            return &cli_cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const struct cli_cmd *cmd;
    int rc;

    /* A closed output pipe must surface as a write error, not kill the
     * process with the instance open (it would be left dirty). */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2)
        return cli_usage(NULL, "missing command");
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc > 3)
            return cli_usage(NULL, "help takes at most one command name");
        if (argc == 3) {
            cmd = cli_find(argv[2]);
            if (!cmd)
                return cli_usage(NULL, "unknown command '%s'", argv[2]);
            cli_cmd_help(cmd);
        } else {
            cli_main_help();
        }
        return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    cmd = cli_find(argv[1]);
    if (!cmd)
        return cli_usage(NULL, "unknown command '%s'", argv[1]);
    rc = cmd->run(cmd, argc - 1, argv + 1);
    if (rc == CLI_HELP) {
        cli_cmd_help(cmd);
        return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    return rc;
}

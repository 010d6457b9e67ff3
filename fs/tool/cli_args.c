/*
 * cli_args.c - the jetsnap tool's command-line conventions: options and
 * positionals (cli_parse), log generation numbers, the escape syntax of keys
 * and values (see cli.c), and the one-line messages of usage errors and
 * failures.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------ */
/* Messages                                                             */
/* ------------------------------------------------------------------ */

/* A usage error: one line naming the command and the reason; exit 2. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
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
void cli_one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
}

void cli_err_note(struct cli_err *e, JET_ERR err)
{
    if (e->err != JET_errSuccess || err >= 0)
        return;
    e->err = err;
    snprintf(e->detail, sizeof e->detail, "%s", js_errdetail());
    cli_one_line(e->detail);
}

/* `jetsnap: NAME (NUMBER): message`; the detail when the library gave one,
 * else the generic description of the code.  Returns the exit status. */
int cli_err_report(const struct cli_err *e)
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

int cli_is_help(const char *a)
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
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
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
int cli_parse_gen(const char *s, uint32_t *out)
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
int cli_unescape(const char *s, unsigned char **out, size_t *len, const char **why)
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

void cli_escape(FILE *f, const unsigned char *p, size_t n)
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
int cli_key_arg(const struct cli_cmd *cmd, const char *arg, unsigned char **key,
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

/* stdout failing (a full disk, a closed pipe: SIGPIPE is ignored so the
 * instance is always closed cleanly) is an operation failure too. */
int cli_stdout_failed(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    fprintf(stderr, "jetsnap: writing to standard output: %s\n", strerror(errno));
    return 1;
}

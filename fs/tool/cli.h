/*
 * cli.h - what the files of the jetsnap tool share (fs/tool): the command
 * table's types, the command-line conventions (cli_args.c: options,
 * positionals, escapes, the one-line error report) and the commands, by
 * where they act: cli_offline.c on an instance that is not mounted (through
 * libjetsnap), cli_mount.c on a mounted one (through its control and status
 * files, fs/proto's protocol).  cli.c holds the table and main().
 */
#ifndef JS_FS_TOOL_CLI_H
#define JS_FS_TOOL_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "jetsnap.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* cli_parse() results besides CLI_EXIT_USAGE. */
enum { CLI_PARSED = 0, CLI_HELP = -1 };

#define CLI_MAX_POS 4

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

/* ---- cli_args.c: messages and argument parsing ---- */

/** A usage error: one line naming the command (NULL: none) and the reason;
 *  returns CLI_EXIT_USAGE. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Control characters of s become spaces: an error is one line. */
void cli_one_line(char *s);
/** Remember err (the first failure only) with the library's detail. */
void cli_err_note(struct cli_err *e, JET_ERR err);
/** `jetsnap: NAME (NUMBER): message` for a noted failure; the exit status. */
int cli_err_report(const struct cli_err *e);
/** 1 for "--help" and "-h". */
int cli_is_help(const char *a);
/** Split argv (argv[0] is the command name) into opts and nmin..nmax
 *  positionals, the first npaths of which must not be empty.  Returns
 *  CLI_PARSED, CLI_HELP or CLI_EXIT_USAGE (after the message). */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_opt *opts,
              int nmin, int nmax, int npaths, struct cli_args *a);
/** A log generation: decimal, 0xHEX or edbXXXXXXXX.log; 0 or -1. */
int cli_parse_gen(const char *s, uint32_t *out);
/** Decode the escapes dump prints into a malloc'd *out; 0, or -1 with *why. */
int cli_unescape(const char *s, unsigned char **out, size_t *len, const char **why);
/** Print bytes with the escapes dump uses. */
void cli_escape(FILE *f, const unsigned char *p, size_t n);
/** Decode a KEY argument and check its length; CLI_PARSED or a usage error. */
int cli_key_arg(const struct cli_cmd *cmd, const char *arg, unsigned char **key, size_t *klen);
/** 1 (after the message) when writing stdout failed. */
int cli_stdout_failed(void);

/* ---- the commands: int cli_run_NAME(cmd, argc, argv) -> exit status ---- */

/* cli_offline.c */
int cli_run_create(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_info(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_check(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_dump(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_get(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_put(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_del(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_restore(const struct cli_cmd *cmd, int argc, char **argv);

/* cli_archive.c */
/** --restore-command: fetch the generations after BACKUP's last one into a
 *  new temporary directory (its name into dir) until cmd fails; *n counts
 *  them.  A JET_ERR. */
int cli_fetch_generations(const char *backup, const char *cmd, char *dir, size_t cap, uint32_t *n);
/** Remove the directory of cli_fetch_generations ("" : nothing). */
void cli_fetch_cleanup(const char *dir);
/** RFC 3339 (`2026-12-01T14:32:00Z`, fractions and +HH:MM allowed) to
 *  microseconds since the epoch; -1 when malformed. */
int cli_parse_rfc3339(const char *s, int64_t *us);
int cli_run_verify(const struct cli_cmd *cmd, int argc, char **argv);
/* cli_mount.c */
int cli_run_backup(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_truncate(const struct cli_cmd *cmd, int argc, char **argv);
int cli_run_snapshot(const struct cli_cmd *cmd, int argc, char **argv);

#endif

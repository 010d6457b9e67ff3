/*
 * cli_offline.c - the jetsnap commands that act on an instance, a backup set
 * or a file that no daemon holds: each opens it through libjetsnap, runs one
 * operation and closes it, and turns the result into the exit status.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto/proto.h"

/* ------------------------------------------------------------------ */
/* Offline access to an instance                                        */
/* ------------------------------------------------------------------ */

/* How long an offline command waits for an instance that another process
 * holds and no mount serves: a daemon on its way out (fusermount3 -u
 * returns before the daemon's last checkpoint ends), as a starting
 * jetsnapfs waits for its predecessor (daemon/main.c). */
#define CLI_INSTANCE_WAIT_MS 10000

/* The mount point of a jetsnapfs serving dir, into out: its source is
 * "jetsnap:" and dir's real path (the daemon's fsname, daemon/mount.c).
 * 1 when there is one. */
static int served_at(const char *dir, char *out, size_t cap)
{
    char real[PATH_MAX];
    FILE *f = realpath(dir, real) != NULL ? fopen("/proc/self/mountinfo", "re") : NULL;
    char *line = NULL;
    size_t lcap = 0;
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && getline(&line, &lcap, f) > 0) {
        struct proto_mount mi;
        if (proto_mountinfo_line(line, &mi) == 0 && strcmp(mi.fstype, "fuse.jetsnapfs") == 0 &&
            strncmp(mi.source, "jetsnap:", 8) == 0 && strcmp(mi.source + 8, real) == 0) {
            snprintf(out, cap, "%s", mi.mountpoint);
            found = 1;
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* js_open, waiting up to CLI_INSTANCE_WAIT_MS (with a notice) while dir is
 * held by a process no mount shows; a mounted instance is refused at once,
 * naming its mount point. */
static JET_ERR open_waiting(const char *dir, const js_params *p, js_instance **inst, struct cli_err *e)
{
    int64_t deadline = 0;
    char mnt[PATH_MAX];
    JET_ERR err;

    for (;;) {
        err = js_open(dir, p, inst);
        if (err != JET_errDatabaseInUse)
            break;
        if (served_at(dir, mnt, sizeof mnt)) {
            cli_err_note(e, err);
            snprintf(e->detail, sizeof e->detail,
                     "%s is mounted at %s: use %s/live or its Redis socket, or unmount it first", dir, mnt, mnt);
            cli_one_line(e->detail);
            break;
        }
        if (deadline == 0) {
            deadline = js_mono_ms() + CLI_INSTANCE_WAIT_MS;
            fprintf(stderr, "jetsnap: %s is open in another process: waiting up to %d s for it\n", dir,
                    CLI_INSTANCE_WAIT_MS / 1000);
        } else if (js_mono_ms() >= deadline) {
            break;
        }
        usleep(50 * 1000);
    }
    return err;
}

/* Open dir for one offline operation with default parameters: the
 * creation-time ones (page size, log size, circular logging) come from the
 * instance's header, and the rest only tune a long-running process. */
static JET_ERR cli_open(const char *dir, js_instance **inst, js_session **s, struct cli_err *e)
{
    js_params p;
    JET_ERR err;

    js_params_default(&p);
    err = open_waiting(dir, &p, inst, e);
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

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

int cli_run_create(const struct cli_cmd *cmd, int argc, char **argv)
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
        if (proto_parse_size(opts[0].value, &v) != 0)
            return cli_usage(cmd, "bad number '%s' for --page-size", opts[0].value);
        if (v != 4096 && v != 8192 && v != 16384 && v != 32768)
            return cli_usage(cmd, "page size must be 4096, 8192, 16384 or 32768, not %s",
                             opts[0].value);
        p.page_size = (uint32_t)v;
    }
    if (opts[1].set) {
        if (proto_parse_size(opts[1].value, &v) != 0)
            return cli_usage(cmd, "bad number '%s' for --log-file-size", opts[1].value);
        if (v < (64u << 10) || v > (1u << 30))
            return cli_usage(cmd, "log file size must be 64K..1G, not %s", opts[1].value);
        p.log_file_size = v;
    }
    p.circular_log = opts[2].set;
    cli_err_note(&e, js_create(a.pos[0], &p));
    return cli_err_report(&e);
}

int cli_run_info(const struct cli_cmd *cmd, int argc, char **argv)
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
    if (r->pages_repairable)   /* a crashed instance's torn writes: the next open mends them */
        printf("pages_repairable: %" PRIu64 "\n", r->pages_repairable);
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

int cli_run_check(const struct cli_cmd *cmd, int argc, char **argv)
{
    return check_or_verify(cmd, argc, argv, 0);
}

int cli_run_dump(const struct cli_cmd *cmd, int argc, char **argv)
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

/* get, put and del: exactly NARGS operands, DBDIR then KEY (then VALUE). */
static int cli_parse_dbdir_key(const struct cli_cmd *cmd, int argc, char **argv, int nargs, struct cli_args *a,
                               unsigned char **key, size_t *klen)
{
    int rc = cli_parse(cmd, argc, argv, NULL, nargs, nargs, 1, a);
    return rc == CLI_PARSED ? cli_key_arg(cmd, a->pos[1], key, klen) : rc;
}

int cli_run_get(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL;
    void *val = NULL;
    size_t klen, vlen = 0;
    struct cli_args a;
    int rc;

    rc = cli_parse_dbdir_key(cmd, argc, argv, 2, &a, &key, &klen);
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

int cli_run_put(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL, *val = NULL;
    size_t klen, vlen;
    const char *why = NULL;
    struct cli_args a;
    int rc;

    rc = cli_parse_dbdir_key(cmd, argc, argv, 3, &a, &key, &klen);
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

int cli_run_del(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_err e = { 0, "" };
    js_instance *inst = NULL;
    js_session *s = NULL;
    unsigned char *key = NULL;
    size_t klen;
    struct cli_args a;
    int rc;

    rc = cli_parse_dbdir_key(cmd, argc, argv, 2, &a, &key, &klen);
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

int cli_run_restore(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "--logs", CLI_OPT_VALUE, NULL, 0 },
        { "--until-gen", CLI_OPT_VALUE, NULL, 0 },
        { "--restore-command", CLI_OPT_VALUE, NULL, 0 },
        { "--until-time", CLI_OPT_VALUE, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_progress cp = { "restore", -1, "" };
    struct cli_err e = { 0, "" };
    struct cli_args a;
    js_restore_opts ro = { 0 };
    char fetched[PATH_MAX] = "";
    uint32_t nfetched = 0;
    int rc;

    rc = cli_parse(cmd, argc, argv, opts, 2, 2, 2, &a);
    if (rc != CLI_PARSED)
        return rc;
    if (opts[1].set && cli_parse_gen(opts[1].value, &ro.until_gen) != 0)
        return cli_usage(cmd, "bad generation '%s' for --until-gen (decimal, 0xHEX or "
                         "edbXXXXXXXX.log, at least 1)", opts[1].value);
    if (opts[3].set && cli_parse_rfc3339(opts[3].value, &ro.until_us) != 0)
        return cli_usage(cmd, "bad time '%s' for --until-time (RFC 3339, e.g. 2026-12-01T14:32:00Z)",
                         opts[3].value);
    if (opts[1].set && opts[3].set)
        return cli_usage(cmd, "--until-gen and --until-time exclude each other");
    if (opts[0].set && opts[2].set)
        return cli_usage(cmd, "--logs and --restore-command exclude each other");
    ro.logs_dir = opts[0].value;
    if (opts[2].set) {
        JET_ERR err = cli_fetch_generations(a.pos[0], opts[2].value, fetched, sizeof fetched, &nfetched);
        cli_err_note(&e, err);
        if (err) {
            cli_fetch_cleanup(fetched);
            return cli_err_report(&e);
        }
        ro.logs_dir = fetched;
        ro.logs_strict = 1;
    }
    cli_err_note(&e, js_restore_to(a.pos[0], a.pos[1], &ro, cli_progress_cb, &cp));
    cli_fetch_cleanup(fetched);
    return cli_err_report(&e);
}

/* verify --restore-command: fetch the archive's generations and restore
 * through them into a temporary directory, removed after. */
static JET_ERR verify_archive(const char *backup, const char *command, struct cli_progress *cp)
{
    char fetched[PATH_MAX] = "", target[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    uint32_t n = 0;
    JET_ERR err = cli_fetch_generations(backup, command, fetched, sizeof fetched, &n);
    if (!err) {
        snprintf(target, sizeof target, "%s/jetsnap-trial-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(target) == NULL) {
            err = js_fail(js_err_from_errno(errno), "cannot make a trial directory: %s", strerror(errno));
        } else {
            js_restore_opts ro = { .logs_dir = fetched, .logs_strict = 1 };
            err = js_restore_to(backup, target, &ro, cli_progress_cb, cp);
            cli_fetch_cleanup(target);
        }
    }
    cli_fetch_cleanup(fetched);
    if (!err)
        fprintf(stderr, "verify: the archive continues the set through %u generation%s\n", n, n == 1 ? "" : "s");
    return err;
}

/* check and verify share everything but the engine call: verify adds the
 * SHA256SUMS pass and a trial restore, with progress, and with
 * --restore-command a trial restore through the archive's generations
 * (they must continue the set's chain: signature, chain, every block). */
static int check_or_verify(const struct cli_cmd *cmd, int argc, char **argv, int verify)
{
    struct cli_opt opts[] = {
        { "--restore-command", CLI_OPT_VALUE, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_progress cp = { "verify", -1, "" };
    struct cli_err e = { 0, "" };
    js_check_report r;
    struct cli_args a;
    JET_ERR err;
    int rc;

    rc = cli_parse(cmd, argc, argv, verify ? opts : NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    memset(&r, 0, sizeof r);
    /* The files of a mounted instance change while they are read: a page
     * the checkpoint is writing can read as torn here, never through
     * MOUNTPOINT/live (SPEC 1).  Said, not refused: the check still runs. */
    char mnt[PATH_MAX];
    if (!verify && served_at(a.pos[0], mnt, sizeof mnt))
        fprintf(stderr, "jetsnap: %s is mounted at %s: a page being written can read as torn here; "
                        "check %s/live for a consistent read\n", a.pos[0], mnt, mnt);
    err = verify ? js_verify(a.pos[0], &r, cli_progress_cb, &cp) : js_check(a.pos[0], &r);
    if (!err && verify && opts[0].set)
        err = verify_archive(a.pos[0], opts[0].value, &cp);
    cli_note_report(&e, err, &r);
    cli_print_report(&r, e.err);
    rc = cli_stdout_failed();
    return cli_err_report(&e) != CLI_EXIT_OK || rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_run_verify(const struct cli_cmd *cmd, int argc, char **argv)
{
    return check_or_verify(cmd, argc, argv, 1);
}

/*
 * cli_mount.c - `jetsnap backup` and `jetsnap truncate`: the conversation
 * with a mounted instance's control and status files (SPEC section 3).
 *
 * These commands never touch the engine.  The sequence is:
 *  1. read MOUNTPOINT/status once and remember its `job`, so the job this
 *     command starts can be told from the previous one still shown there;
 *  2. write the command line to MOUNTPOINT/control in one write() (SIGINT
 *     blocked meanwhile, so the write is never interrupted and retried: a
 *     retry could start a second job);
 *  3. re-open and read MOUNTPOINT/status every 200 ms, showing progress, until
 *     the new job's `state` is succeeded, failed or cancelled.
 *
 * The `wait` flag is deliberately not used: with libfuse 3.14 a pending
 * direct-io write holds the inode lock, so the `cancel` written on Ctrl-C
 * would queue behind our own waiting write and never reach the daemon.
 *
 * Ctrl-C: on a terminal (stdin and stderr both terminals) it asks "cancel the
 * running backup? [y/N]"; without one it writes `cancel` at once.  A further
 * Ctrl-C after a cancel was sent (or while the question is open) stops
 * watching; the daemon's job is not affected by that.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "proto/proto.h"

#define CM_POLL_MS      200     /* status re-read period */
#define CM_APPEAR_MS    10000   /* how long the new job may take to show up */
#define CM_READ_FAILS   25      /* consecutive failed status reads (~5 s) */
#define CM_STATUS_MAX   65536   /* a status file is a few hundred bytes */

struct cm_status {
    char state[32];
    char job[64];
    char operation[32];
    char path[PATH_MAX];
    char phase[32];
    char result[128];
    char message[1024];
    char truncated[128];
    char gen_low[32], gen_high[32];
    double percent;
    int have_percent;
    uint64_t bytes_done, bytes_total, rate;
    long long eta;
    int have_eta;
};

/* What has been drawn so far, to redraw the bar in place or to print a
 * plain line only when something visible changed. */
struct cm_view {
    const char *label;
    int tty;                /* stderr is a terminal: draw a bar */
    int bar_shown;          /* the cursor is at the end of a drawn bar */
    size_t bar_len;
    int last_pct;
    char last_phase[32];
};

static volatile sig_atomic_t cm_sigints;

static void cm_on_sigint(int sig)
{
    (void)sig;
    cm_sigints++;
}

/* ------------------------------------------------------------------ */
/* status                                                               */
/* ------------------------------------------------------------------ */

/* The fields the tool shows, from the values of fs/proto's key table. */
static void cm_status_set(struct cm_status *st, const char *const val[PST_NKEYS])
{
    char *end;

    memset(st, 0, sizeof *st);
#define CM_COPY(field, key) snprintf(st->field, sizeof st->field, "%s", val[key])
    CM_COPY(state, PST_STATE);
    CM_COPY(job, PST_JOB);
    CM_COPY(operation, PST_OPERATION);
    CM_COPY(path, PST_PATH);
    CM_COPY(phase, PST_PHASE);
    CM_COPY(result, PST_RESULT);
    CM_COPY(message, PST_MESSAGE);
    CM_COPY(truncated, PST_TRUNCATED);
    CM_COPY(gen_low, PST_GEN_LOW);
    CM_COPY(gen_high, PST_GEN_HIGH);
#undef CM_COPY
    st->percent = strtod(val[PST_PROGRESS_PERCENT], &end);
    st->have_percent = end != val[PST_PROGRESS_PERCENT] && st->percent >= 0 &&
                       st->percent <= 100;
    st->bytes_done = strtoull(val[PST_BYTES_DONE], NULL, 10);
    st->bytes_total = strtoull(val[PST_BYTES_TOTAL], NULL, 10);
    st->rate = strtoull(val[PST_RATE_BYTES_PER_S], NULL, 10);
    st->eta = strtoll(val[PST_ETA_S], &end, 10);
    st->have_eta = end != val[PST_ETA_S] && st->eta >= 0;
}

/* Read the whole status file (fresh at every open).  -1 with errno set. */
static int cm_status_read(const char *path, struct cm_status *st)
{
    static char buf[CM_STATUS_MAX + 1];
    const char *val[PST_NKEYS];
    size_t n = 0;
    int fd, rc = -1, saved;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (n < CM_STATUS_MAX) {
        ssize_t r = read(fd, buf + n, CM_STATUS_MAX - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out_close;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    proto_status_parse(buf, val);
    cm_status_set(st, val);
    rc = 0;
out_close:
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* ------------------------------------------------------------------ */
/* control                                                              */
/* ------------------------------------------------------------------ */

static void cm_report_errno(const char *what, int e, int incremental)
{
    const char *hint;
    JET_ERR err = proto_ctl_errno_to_err(e, incremental, &hint);

    if (err < 0)
        fprintf(stderr, "jetsnap: %s%s (%d): %s%s\n", what, js_errname(err), err,
                strerror(e), hint);
    else
        fprintf(stderr, "jetsnap: %s%s\n", what, strerror(e));
}

/*
 * One command, one write().  SIGINT is blocked across it so the write is
 * never interrupted (see the file comment); a Ctrl-C meanwhile is delivered
 * right after.  Returns 0, or -1 after printing the error.
 */
static int cm_control_write(const char *path, const char *line, int incremental,
                            const char *what)
{
    sigset_t block, old;
    size_t len = strlen(line);
    ssize_t w;
    int fd, e, rc = -1;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    /* O_TRUNC like `echo > control`: the daemon treats it as a no-op. */
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        fprintf(stderr, "jetsnap: %scannot open %s: %s%s\n", what, path, strerror(e),
                e == EACCES ? " (only the daemon's owner may write it)" : "");
        goto out_unblock;
    }
    w = write(fd, line, len);
    e = errno;
    /* The daemon acts on the write alone; a close error cannot undo an
     * accepted command, so it is not reported. */
    close(fd);
    if (w == (ssize_t)len) {
        rc = 0;
    } else {
        cm_report_errno(what, w < 0 ? e : EIO, incremental);
    }
out_unblock:
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ------------------------------------------------------------------ */
/* progress display                                                     */
/* ------------------------------------------------------------------ */

static void cm_human(char *buf, size_t cap, uint64_t b)
{
    static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)b;
    int u = -1;

    if (b < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", b);
        return;
    }
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

static void cm_eta(char *buf, size_t cap, const struct cm_status *st)
{
    long long s = st->eta;

    if (!st->have_eta)
        snprintf(buf, cap, "--:--");
    else if (s >= 3600)
        snprintf(buf, cap, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%lld:%02lld", s / 60, s % 60);
}

/* "42%  1.3 GiB/3.0 GiB  85.2 MiB/s  ETA 0:21  copy-database" */
static void cm_describe(char *buf, size_t cap, const struct cm_status *st, const char *sep)
{
    char done[32], total[32], rate[32], eta[32];

    cm_human(done, sizeof done, st->bytes_done);
    cm_human(total, sizeof total, st->bytes_total);
    cm_human(rate, sizeof rate, st->rate);
    cm_eta(eta, sizeof eta, st);
    snprintf(buf, cap, "%3d%%%s%s/%s%s%s/s%sETA %s%s%s", (int)st->percent, sep, done, total,
             sep, rate, sep, eta, sep, st->phase[0] ? st->phase : st->state);
}

static int cm_term_cols(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* Redraw the one-line bar in place.  The line is kept shorter than the
 * terminal so it never wraps (a wrapped line cannot be redrawn with \r). */
static void cm_draw_bar(struct cm_view *v, const struct cm_status *st)
{
    char desc[256], line[512];
    int cols = cm_term_cols(), width, fill;
    size_t len;

    cm_describe(desc, sizeof desc, st, "  ");
    /* The bar's width depends on the terminal only, so it does not jump
     * about as the numbers change length; a narrow terminal gets none. */
    width = cols >= 100 ? 30 : cols >= 80 ? 12 : 0;
    if (width > 0) {
        fill = (int)(st->percent * width / 100);
        line[0] = '[';
        for (int i = 0; i < width; i++)
            line[1 + i] = i < fill ? '#' : '-';
        snprintf(line + 1 + width, sizeof line - 1 - (size_t)width, "] %s", desc);
    } else {
        snprintf(line, sizeof line, "%s", desc);
    }
    len = strlen(line);
    if (len > (size_t)cols - 1) {
        len = (size_t)cols - 1;
        line[len] = '\0';
    }
    fprintf(stderr, "\r%s%*s", line, v->bar_len > len ? (int)(v->bar_len - len) : 0, "");
    fflush(stderr);
    v->bar_len = len;
    v->bar_shown = 1;
}

/* End the bar's line before anything else is printed on stderr. */
static void cm_break_bar(struct cm_view *v)
{
    if (!v->bar_shown)
        return;
    fputc('\n', stderr);
    v->bar_shown = 0;
    v->bar_len = 0;
}

static void cm_show(struct cm_view *v, const struct cm_status *st)
{
    char desc[256];
    int pct = (int)st->percent;

    if (v->tty) {
        cm_draw_bar(v, st);
        return;
    }
    if (pct == v->last_pct && strcmp(st->phase, v->last_phase) == 0)
        return;
    v->last_pct = pct;
    snprintf(v->last_phase, sizeof v->last_phase, "%s", st->phase);
    cm_describe(desc, sizeof desc, st, " ");
    fprintf(stderr, "%s: %s\n", v->label, desc);
}

/* The job's outcome: a summary on stdout for success, the SPEC error line
 * built from `result` ("NUMBER NAME") and `message` otherwise. */
static int cm_finish(const struct cm_status *st)
{
    int num = 0;
    char name[96] = "";
    const char *msg;

    if (strcmp(st->state, "succeeded") == 0) {
        printf("state: %s\n", st->state);
        if (st->job[0])
            printf("job: %s\n", st->job);
        if (st->operation[0])
            printf("operation: %s\n", st->operation);
        if (st->path[0])
            printf("path: %s\n", st->path);
        if (st->gen_low[0])
            printf("gen_low: %s\n", st->gen_low);
        if (st->gen_high[0])
            printf("gen_high: %s\n", st->gen_high);
        if (st->truncated[0])
            printf("truncated: %s\n", st->truncated);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "jetsnap: writing to standard output: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    if (sscanf(st->result, "%d %95s", &num, name) != 2 || num >= 0) {
        /* No usable result: a cancelled job is ESE's abort; otherwise say
         * what is known rather than invent a code. */
        if (strcmp(st->state, "cancelled") != 0) {
            fprintf(stderr, "jetsnap: job %s: %s%s%s\n", st->state,
                    st->result[0] ? st->result : "no result", st->message[0] ? ": " : "",
                    st->message);
            return 1;
        }
        num = JET_errBackupAbortByServer;
        snprintf(name, sizeof name, "%s", js_errname(num));
    }
    msg = st->message[0] ? st->message : js_errmsg(num);
    fprintf(stderr, "jetsnap: %s (%d): %s\n", name, num, msg);
    return 1;
}

static int cm_is_final(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

/* ------------------------------------------------------------------ */
/* the follow loop                                                      */
/* ------------------------------------------------------------------ */

/* Write `line` to MOUNTPOINT/control and follow MOUNTPOINT/status until the
 * job ends; returns the exit status. */
static int cm_follow(const char *mountpoint, const char *line, const char *label,
                     int incremental)
{
    struct cm_view v = { label, isatty(STDERR_FILENO), 0, 0, -1, "" };
    int ask = v.tty && isatty(STDIN_FILENO);
    char control[PATH_MAX + 16], status[PATH_MAX + 16];
    struct cm_status st;
    struct sigaction sa, old_sa;
    char old_job[64];
    int rc = 1, seen = 0, prompting = 0, cancel_sent = 0, fails = 0;
    sig_atomic_t handled = 0;
    int64_t appear_by;

    if (strlen(mountpoint) + sizeof "/control" > sizeof control) {
        fprintf(stderr, "jetsnap: %s: %s\n", mountpoint, strerror(ENAMETOOLONG));
        return 1;
    }
    snprintf(control, sizeof control, "%s/control", mountpoint);
    snprintf(status, sizeof status, "%s/status", mountpoint);
    if (cm_status_read(status, &st) != 0) {
        fprintf(stderr, "jetsnap: cannot read %s: %s (is %s a jetsnap mount?)\n", status,
                strerror(errno), mountpoint);
        return 1;
    }
    snprintf(old_job, sizeof old_job, "%s", st.job);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cm_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;        /* no SA_RESTART: poll() must wake up at once */
    cm_sigints = 0;
    sigaction(SIGINT, &sa, &old_sa);

    if (cm_control_write(control, line, incremental, "") != 0)
        goto out_restore;

    appear_by = js_mono_ms() + CM_APPEAR_MS;
    for (;;) {
        struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };

        if (cm_sigints != handled) {
            handled = cm_sigints;
            if (prompting || cancel_sent) {
                cm_break_bar(&v);
                if (prompting)
                    fputc('\n', stderr);
                fprintf(stderr, "jetsnap: stopped watching; the %s job may still be "
                        "running (see %s)\n", label, status);
                goto out_restore;
            }
            if (ask) {
                cm_break_bar(&v);
                fprintf(stderr, "cancel the running %s? [y/N] ", label);
                fflush(stderr);
                prompting = 1;
            } else {
                fprintf(stderr, "jetsnap: interrupted: cancelling the %s\n", label);
                cm_control_write(control, "cancel\n", 0, "cancel: ");
                cancel_sent = 1;
            }
        }

        if (cm_status_read(status, &st) != 0) {
            if (++fails >= CM_READ_FAILS) {
                cm_break_bar(&v);
                fprintf(stderr, "jetsnap: cannot read %s: %s\n", status, strerror(errno));
                goto out_restore;
            }
        } else {
            fails = 0;
            /* A new job id, or (if the old status named none) a job in
             * progress, is ours; until then status shows the previous job. */
            if (!seen && (old_job[0] ? strcmp(st.job, old_job) != 0
                                     : strcmp(st.state, "running") == 0 ||
                                       cm_is_final(st.state)))
                seen = 1;
            if (seen && cm_is_final(st.state)) {
                if (!prompting)
                    cm_show(&v, &st);
                cm_break_bar(&v);
                if (prompting)
                    fputc('\n', stderr);
                rc = cm_finish(&st);
                goto out_restore;
            }
            if (seen && !prompting && strcmp(st.state, "running") == 0)
                cm_show(&v, &st);
        }
        if (!seen && js_mono_ms() > appear_by) {
            cm_break_bar(&v);
            fprintf(stderr, "jetsnap: the daemon took the command but %s shows no new "
                    "job (still %s%s)\n", status, old_job[0] ? "job " : "no job", old_job);
            goto out_restore;
        }

        if (poll(&pfd, prompting ? 1 : 0, CM_POLL_MS) > 0 && prompting) {
            char ans[64];
            ssize_t n = read(STDIN_FILENO, ans, sizeof ans);

            prompting = 0;
            if (n > 0 && (ans[0] == 'y' || ans[0] == 'Y')) {
                if (cm_control_write(control, "cancel\n", 0, "cancel: ") == 0)
                    fprintf(stderr, "cancelling the %s...\n", label);
                cancel_sent = 1;
            }
        }
    }

out_restore:
    sigaction(SIGINT, &old_sa, NULL);
    return rc;
}

/* ------------------------------------------------------------------ */
/* the commands                                                         */
/* ------------------------------------------------------------------ */

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

int cli_run_backup(const struct cli_cmd *cmd, int argc, char **argv)
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
    if (n > CTL_CMD_MAX) {
        rc = cli_usage(cmd, "DEST is too long for one control command (%d bytes)",
                       CTL_CMD_MAX);
        goto out_free;
    }
    rc = cm_follow(a.pos[0], line, "backup", opts[0].set);
out_free:
    free(line);
    free(dest);
    return rc;
}

int cli_run_truncate(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    int rc;

    rc = cli_parse(cmd, argc, argv, NULL, 1, 1, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    return cm_follow(a.pos[0], "truncate\n", "truncate", 0);
}

/* The ESE code behind a refused snapshot command (SPEC 7's errnos). */
static JET_ERR cm_snapshot_err(int e)
{
    switch (e) {
    case EEXIST: return JET_errDatabaseDuplicate;
    case EINVAL: return JET_errInvalidParameter;
    case ENOSPC: return JET_errOSSnapshotNotAllowed;
    case EAGAIN: return JET_errNotInitialized;
    case ESHUTDOWN: return JET_errTermInProgress;
    case EBUSY: return JET_errDatabaseInUse;
    case ENOENT: return JET_errOSSnapshotInvalidSnapId;
    default: return JET_errSuccess;
    }
}

/* --list: the snapshot lines of MOUNTPOINT/status. */
static int cm_snapshot_list(const char *mountpoint)
{
    char path[PATH_MAX], line[1024];
    FILE *f;

    snprintf(path, sizeof path, "%s/status", mountpoint);
    if ((f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "jetsnap: cannot read %s: %s\n", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "snapshot", 8) == 0)
            fputs(line, stdout);
    fclose(f);
    return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_run_snapshot(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "--delete", CLI_OPT_FLAG, NULL, 0 },
        { "--list", CLI_OPT_FLAG, NULL, 0 },
        { NULL, CLI_OPT_FLAG, NULL, 0 },
    };
    struct cli_args a;
    char path[PATH_MAX], line[128];
    int rc, fd, e;

    rc = cli_parse(cmd, argc, argv, opts, 1, 2, 1, &a);
    if (rc != CLI_PARSED)
        return rc;
    if (opts[1].set)
        return a.npos == 1 && !opts[0].set ? cm_snapshot_list(a.pos[0])
                                           : cli_usage(cmd, "--list takes MOUNTPOINT alone");
    if (a.npos != 2)
        return cli_usage(cmd, "missing NAME");
    if (!js_snapshot_name_ok(a.pos[1]))
        return cli_usage(cmd, "bad NAME '%s': 1..64 of [A-Za-z0-9._-], not starting with '.'", a.pos[1]);
    snprintf(path, sizeof path, "%s/control", a.pos[0]);
    snprintf(line, sizeof line, "%s %s\n", opts[0].set ? "snapshot-delete" : "snapshot", a.pos[1]);
    if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0) {
        fprintf(stderr, "jetsnap: cannot open %s: %s\n", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    rc = write(fd, line, strlen(line)) == (ssize_t)strlen(line) ? 0 : (e = errno, -1);
    close(fd);
    if (rc == 0)
        return CLI_EXIT_OK;
    JET_ERR err = cm_snapshot_err(e);
    if (err < 0)
        fprintf(stderr, "jetsnap: %s (%d): %s: %s\n", js_errname(err), err, a.pos[1], strerror(e));
    else
        fprintf(stderr, "jetsnap: %s: %s\n", a.pos[1], strerror(e));
    return CLI_EXIT_FAIL;
}

/*
 * test_cli_mount.c - `jetsnap backup` and `jetsnap truncate` against a fake
 * mount (SPEC section 1): a plain directory with a regular `control` file
 * the tool writes and a `status` file this test rewrites (atomically, by
 * rename) to play the daemon, so the status-following logic, the Ctrl-C
 * handling (with and without a terminal) and the exit codes are covered
 * without FUSE.  The tool is $BUILD/jetsnap (tests/lib/jstool.h); each test
 * works in its own mkdtemp directory.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "jstool.h"
#include "proc.h"
#include "testlib.h"

TestSuite(cli, .init = tl_cli_setup, .fini = tl_tmp_teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* backup and truncate against a fake mount                             */
/* ------------------------------------------------------------------ */

static char *mount_dir(void)
{
    char *m = tl_tp("mnt");

    cr_assert_eq(mkdir(m, 0700), 0);
    tl_spit(tl_tp("mnt/control"), "");
    tl_spit(tl_tp("mnt/status"), "state: succeeded\njob: 7\noperation: full\n"
                                "path: /old\nphase: done\nprogress_percent: 100\n"
                                "result: 0 JET_errSuccess\nmessage: \n");
    return m;
}

/* Play the daemon: replace status atomically (the tool must never read a
 * half-written file, as the real one is generated whole at every open). */
static void set_status(const char *fmt, ...)
{
    char text[4096], tmpname[PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cr_assert_lt(snprintf(tmpname, sizeof tmpname, "%s/mnt/status.new", tl_tmp), PATH_MAX);
    tl_spit(tmpname, text);
    cr_assert_eq(rename(tmpname, tl_tp("mnt/status")), 0);
}

#define STATUS_FMT                                                                 \
    "state: %s\njob: 8\noperation: %s\npath: %s\nflags: %s\nphase: %s\n"            \
    "progress_percent: %d\nbytes_done: %llu\nbytes_total: %llu\n"                   \
    "pages_verified: 10\nlog_records_verified: 20\nrate_bytes_per_s: %llu\n"        \
    "eta_s: %d\nstarted: 2026-11-21T21:00:00Z\nfinished: \ngen_low: 3\n"            \
    "gen_high: 5\ntruncated: %s\nresult: %s\nmessage: %s\n"

/* Wait until the control file holds exactly want (the tool wrote it). */
static void wait_control(const char *want)
{
    char *got = NULL;

    for (int i = 0; i < 1000; i++) {
        free(got);
        got = tl_slurp(tl_tp("mnt/control"), NULL);
        if (got && strcmp(got, want) == 0)
            break;
        usleep(10000);
    }
    cr_assert_str_eq(got, want);
    free(got);
}

Test(cli, backup_follows_status_to_success)
{
    char dest[PATH_MAX + 32], *err, *out;
    int ofd, efd;
    pid_t pid;

    mount_dir();
    pid = tl_cli_spawn_bg(tl_tmp, &ofd, &efd,
                   (const char *const[]){ "backup", "mnt", "sets/nightly", "--atomic",
                                          "--create", NULL });
    /* DEST was made absolute against the tool's working directory. */
    snprintf(dest, sizeof dest, "%s/sets/nightly atomic create\n", tl_tmp);
    wait_control(dest);
    dest[strlen(dest) - strlen(" atomic create\n")] = '\0';

    /* Still the old job for a while: the tool must not take its
     * `succeeded` for ours. */
    usleep(500000);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "took the previous job's result for its own");
    set_status(STATUS_FMT, "running", "full", dest, "atomic create", "copy-database", 50,
               512ull << 20, 1024ull << 20, 100ull << 20, 5, "-", "-", "-");
    tl_cli_wait_output(efd, "backup:  50% 512.0 MiB/1.0 GiB 100.0 MiB/s ETA 0:05 copy-database\n");
    set_status(STATUS_FMT, "running", "full", dest, "atomic create", "copy-logs", 97,
               1000ull << 20, 1024ull << 20, 100ull << 20, 1, "-", "-", "-");
    tl_cli_wait_output(efd, "backup:  97% ");
    set_status(STATUS_FMT, "succeeded", "full", dest, "atomic create", "done", 100,
               1024ull << 20, 1024ull << 20, 100ull << 20, 0,
               "edb00000001.log-edb00000002.log", "0 JET_errSuccess", "-");
    cr_assert_eq(tl_reap(pid, 10000), 0);
    err = tl_slurp_fd(efd, NULL);
    out = tl_slurp_fd(ofd, NULL);
    /* One line per change, not per poll. */
    cr_assert_eq(tl_count_lines(err), 3, "%s", err);
    cr_assert_null(strstr(err, "\r"), "no bar without a terminal: %s", err);
    cr_assert_null(strstr(err, "jetsnap:"), "%s", err);
    cr_assert_not_null(strstr(out, "state: succeeded\n"), "%s", out);
    cr_assert_not_null(strstr(out, "job: 8\n"), "%s", out);
    cr_assert_not_null(strstr(out, "gen_high: 5\n"), "%s", out);
    cr_assert_not_null(strstr(out, "truncated: edb00000001.log-edb00000002.log\n"), "%s", out);
    free(err);
    free(out);
    close(ofd);
    close(efd);
}

Test(cli, backup_failure_prints_the_result)
{
    char *err;
    int ofd, efd;
    pid_t pid;

    /* A daemon that has run no job yet shows "-" for every value. */
    mount_dir();
    set_status("state: idle\njob: -\noperation: -\npath: -\nflags: -\nphase: -\n"
               "progress_percent: -\nresult: -\nmessage: -\n");
    pid = tl_cli_spawn_bg(NULL, &ofd, &efd,
                   (const char *const[]){ "backup", tl_tp("mnt"), "/srv/b", "--incremental",
                                          NULL });
    wait_control("/srv/b incremental\n");
    set_status(STATUS_FMT, "running", "incremental", "/srv/b", "incremental", "copy-logs", 10,
               1ull, 10ull, 1ull, 9, "-", "-", "-");
    tl_cli_wait_output(efd, "backup:  10% ");
    set_status(STATUS_FMT, "failed", "incremental", "/srv/b", "incremental", "copy-logs", 10,
               1ull, 10ull, 1ull, 9, "none", "-569 JET_errMissingFileToBackup",
               "generation 0x4 (edb00000004.log) is missing");
    cr_assert_eq(tl_reap(pid, 10000), 1);
    err = tl_slurp_fd(efd, NULL);
    cr_assert_not_null(strstr(err, "jetsnap: JET_errMissingFileToBackup (-569): generation 0x4 "
                                   "(edb00000004.log) is missing\n"), "%s", err);
    free(err);
    close(ofd);
    close(efd);
}

Test(cli, truncate_reports_what_went)
{
    char *out;
    int ofd, efd;
    pid_t pid;

    mount_dir();
    pid = tl_cli_spawn_bg(NULL, &ofd, &efd, (const char *const[]){ "truncate", tl_tp("mnt"), NULL });
    wait_control("truncate\n");
    set_status(STATUS_FMT, "succeeded", "truncate", "", "", "done", 100, 0ull, 0ull, 0ull, 0,
               "edb00000001.log-edb00000003.log", "0 JET_errSuccess", "");
    cr_assert_eq(tl_reap(pid, 10000), 0);
    out = tl_slurp_fd(ofd, NULL);
    cr_assert_not_null(strstr(out, "operation: truncate\n"), "%s", out);
    cr_assert_not_null(strstr(out, "truncated: edb00000001.log-edb00000003.log\n"), "%s", out);
    free(out);
    close(ofd);
    close(efd);
}

Test(cli, sigint_without_terminal_cancels)
{
    char *err;
    int ofd, efd;
    pid_t pid;

    mount_dir();
    pid = tl_cli_spawn_bg(NULL, &ofd, &efd,
                   (const char *const[]){ "backup", tl_tp("mnt"), "/srv/b", NULL });
    wait_control("/srv/b\n");
    set_status(STATUS_FMT, "running", "full", "/srv/b", "", "copy-database", 20, 2ull, 10ull,
               1ull, 8, "-", "-", "-");
    tl_cli_wait_output(efd, "backup:  20% ");
    kill(pid, SIGINT);
    wait_control("cancel\n");
    set_status(STATUS_FMT, "cancelled", "full", "/srv/b", "", "copy-database", 20, 2ull, 10ull,
               1ull, 8, "none", "-801 JET_errBackupAbortByServer", "cancelled by request");
    cr_assert_eq(tl_reap(pid, 10000), 1);
    err = tl_slurp_fd(efd, NULL);
    cr_assert_not_null(strstr(err, "jetsnap: JET_errBackupAbortByServer (-801): cancelled by "
                                   "request\n"), "%s", err);
    free(err);
    close(ofd);
    close(efd);
}

/* Read the pty master until want shows up (or 10 s pass); returns all read. */
static char *pty_until(int master, char *acc, size_t *n, size_t cap, const char *want)
{
    for (int i = 0; i < 1000 && !strstr(acc, want); i++) {
        struct pollfd p = { master, POLLIN, 0 };

        if (poll(&p, 1, 10) > 0) {
            ssize_t r = read(master, acc + *n, cap - 1 - *n);

            if (r > 0)
                *n += (size_t)r;
            acc[*n] = '\0';
        }
    }
    return strstr(acc, want);
}

Test(cli, terminal_bar_and_ctrl_c_question)
{
    static char acc[65536];
    struct winsize ws = { .ws_row = 24, .ws_col = 100 };
    size_t n = 0;
    int master, st;
    pid_t pid;

    acc[0] = '\0';
    mount_dir();
    pid = forkpty(&master, NULL, NULL, &ws);
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        execl(tl_jetsnap_bin, tl_jetsnap_bin, "backup", tl_tp("mnt"), "/srv/tty", (char *)NULL);
        _exit(127);
    }
    wait_control("/srv/tty\n");
    set_status(STATUS_FMT, "running", "full", "/srv/tty", "", "copy-database", 42,
               420ull << 20, 1000ull << 20, 10ull << 20, 58, "none", "0 JET_errSuccess", "");
    cr_assert_not_null(pty_until(master, acc, &n, sizeof acc, "ETA 0:58  copy-database"),
                       "no bar: %s", acc);
    cr_assert_not_null(strstr(acc, "\r["), "bar not drawn with \\r: %s", acc);
    cr_assert_not_null(strstr(acc, "]  42%  420.0 MiB/1000.0 MiB  10.0 MiB/s"), "%s", acc);

    /* Ctrl-C asks; "n" keeps going; Ctrl-C again and "y" cancels. */
    cr_assert_eq(write(master, "\x03", 1), 1);
    cr_assert_not_null(pty_until(master, acc, &n, sizeof acc, "cancel the running backup? [y/N]"),
                       "%s", acc);
    cr_assert_eq(write(master, "n\n", 2), 2);
    usleep(500000);
    {
        char *c = tl_slurp(tl_tp("mnt/control"), NULL);

        cr_assert_str_eq(c, "/srv/tty\n", "answering n must not cancel");
        free(c);
    }
    n = 0;
    acc[0] = '\0';
    cr_assert_eq(write(master, "\x03", 1), 1);
    cr_assert_not_null(pty_until(master, acc, &n, sizeof acc, "cancel the running backup? [y/N]"),
                       "%s", acc);
    cr_assert_eq(write(master, "y\n", 2), 2);
    wait_control("cancel\n");
    set_status(STATUS_FMT, "cancelled", "full", "/srv/tty", "", "copy-database", 42, 1ull, 2ull,
               1ull, 1, "none", "-801 JET_errBackupAbortByServer", "cancelled by request");
    cr_assert_not_null(pty_until(master, acc, &n, sizeof acc,
                                 "jetsnap: JET_errBackupAbortByServer (-801): cancelled by request"),
                       "%s", acc);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
    close(master);
}

Test(cli, control_write_error_maps_to_spec_name)
{
    struct tl_run r;

    cr_assert_eq(mkdir(tl_tp("mnt"), 0700), 0);
    tl_spit(tl_tp("mnt/status"), "state: idle\njob: 0\n");
    cr_assert_eq(symlink("/dev/full", tl_tp("mnt/control")), 0);
    RUN(&r, "backup", tl_tp("mnt"), "/srv/b");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(r.err, "jetsnap: JET_errDiskFull (-1808): No space left on device\n");
    tl_run_free(&r);
}

Test(cli, not_a_mount_fails_and_writes_nothing)
{
    struct tl_run r;

    cr_assert_eq(mkdir(tl_tp("plain"), 0700), 0);
    RUN(&r, "truncate", tl_tp("plain"));
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strncmp(r.err, "jetsnap: cannot read ", 21) == 0, "%s", r.err);
    cr_assert_eq(access(tl_tp("plain/control"), F_OK), -1);
    tl_run_free(&r);
}

Test(cli, no_new_job_times_out, .timeout = 60)
{
    struct tl_run r;

    mount_dir();
    RUN(&r, "backup", tl_tp("mnt"), "/srv/b");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert_not_null(strstr(r.err, "shows no new job"), "%s", r.err);
    tl_run_free(&r);
}

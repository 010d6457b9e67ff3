/*
 * test_fs_backup.c - jetsnapfs mounted for real: backups through the
 * control file (refusals with their errno, confinement, EBUSY, cancel,
 * EIO on a flipped page) and shutdown (ESHUTDOWN while stopping, signals
 * with open handles, fusermount -u, SIGKILL and restart, a stale mount,
 * daemon mode, nesting).
 *
 * Control commands go through a real shell: /bin/sh for the success path,
 * bash where the test needs the errno (dash's echo reports every write
 * error as "I/O error"; bash prints strerror).  Each refusal is also
 * checked with a direct write(2) for the exact errno.
 *
 * Integration tests run the daemon binary $BUILD/jetsnapfs (BUILD defaults
 * to "build"; `make check` sets it) as a subprocess with -f and
 * -o auto_unmount, each in its own mkdtemp directory (db/, mnt/, bk/), with
 * a per-test .timeout.  Teardown kills a daemon still running and detaches
 * a mount still there, so a failed test leaves nothing behind (the fixture
 * is tests/lib/fsmount.h).  Tests skip, not fail, when /dev/fuse cannot be
 * opened.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "store/page.h"
#include "../fs/daemon/control.h"
#include "../fs/daemon/events.h"
#include "../fs/daemon/opts.h"
#include "../fs/daemon/status.h"
#include "fsmount.h"
#include "proc.h"
#include "respcl.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */

TestSuite(fs_mount, .init = tl_fs_mount_setup, .fini = tl_fs_teardown, .timeout = 60);

/* ------------------------------------------------------------------ */
/* Mount: backups through the control file                              */
/* ------------------------------------------------------------------ */

Test(fs_mount, backup_wait_through_sh, .timeout = 90)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;
    int rc;

    tl_fs_start();
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
    tl_pathf(dest, "%s/set1", tl_bk);
    snprintf(cmd, sizeof(cmd), "%s create wait", dest);
    rc = tl_ctl_shell("/bin/sh", cmd, v, sizeof(v));
    cr_assert_eq(rc, 0, "backup failed: %s", v);
    snprintf(cmd, sizeof(cmd), "cd %s && sha256sum --quiet -c SHA256SUMS", dest);
    cr_expect_eq(system(cmd), 0, "sha256sum -c failed in %s", dest);
    tl_pathf(cmd, "%s/%s", dest, JS_DB_FILE);
    cr_expect_eq(access(cmd, F_OK), 0);
    tl_pathf(cmd, "%s/backup.info", dest);
    cr_expect_eq(access(cmd, F_OK), 0);
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "succeeded");
    tl_status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "0 JET_errSuccess");
    tl_status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "full");
    tl_status_get("path", v, sizeof(v));
    cr_expect_str_eq(v, dest);
    tl_status_get("phase", v, sizeof(v));
    cr_expect_str_eq(v, "done");
    tl_status_get("job", v, sizeof(v));
    cr_expect_str_eq(v, "1");
    ev = tl_mnt_file("events");
    cr_assert_not_null(ev);
    cr_expect(tl_events_have(ev, 210), "no 210:\n%s", ev);
    cr_expect(tl_events_have(ev, 220), "no 220:\n%s", ev);
    cr_expect(tl_events_have(ev, 221), "no 221:\n%s", ev);
    cr_expect(tl_events_have(ev, 223), "no 223:\n%s", ev);
    cr_expect(tl_events_have(ev, 224) || tl_events_have(ev, 225), "no 224/225:\n%s", ev);
    cr_expect(tl_events_have(ev, 213), "no 213:\n%s", ev);
    cr_expect(!tl_events_have(ev, 214), "214 for a good backup:\n%s", ev);
    /* `truncated` agrees with the engine's 224/225. */
    tl_status_get("truncated", v, sizeof(v));
    if (tl_events_have(ev, 225) && !tl_events_have(ev, 224)) {
        cr_expect_str_eq(v, "none");
    } else {
        unsigned lo, hi;
        char tail[8];
        cr_expect(sscanf(v, "edb%8X.log-edb%8X%4s", &lo, &hi, tail) == 3 && lo <= hi &&
                  strcmp(tail, ".log") == 0, "truncated: %s", v);
    }
    free(ev);

    /* An incremental after the full, and a truncate, through sh too. */
    snprintf(cmd, sizeof(cmd), "%s incremental wait", dest);
    cr_expect_eq(tl_ctl_shell("/bin/sh", cmd, v, sizeof(v)), 0, "incremental: %s", v);
    tl_status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "incremental");
    cr_expect_eq(tl_ctl_shell("/bin/sh", "truncate wait", v, sizeof(v)), 0, "truncate: %s", v);
    tl_status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "truncate");
    tl_status_get("job", v, sizeof(v));
    cr_expect_str_eq(v, "3");
}

Test(fs_mount, atomic_backup_twice)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256];

    tl_fs_start();
    tl_pathf(dest, "%s/at", tl_bk);
    snprintf(cmd, sizeof(cmd), "%s atomic create wait", dest);
    cr_assert_eq(tl_ctl_shell("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    cr_assert_eq(tl_ctl_shell("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    snprintf(cmd, sizeof(cmd), "cd %s/new && sha256sum --quiet -c SHA256SUMS", dest);
    cr_expect_eq(system(cmd), 0);
    tl_pathf(cmd, "%s/temp", dest);
    cr_expect_neq(access(cmd, F_OK), 0);
}

/* Each refusal leaves DEST exactly as it was (here: its entry count). */
Test(fs_mount, refusals_through_shell)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], f[PATH_MAX], v[256];

    tl_fs_start();
    tl_pathf(dest, "%s/missing", tl_bk);
    snprintf(cmd, sizeof(cmd), "%s", dest);
    tl_ctl_refused(cmd, ENOENT);
    cr_expect_neq(access(dest, F_OK), 0);

    tl_ctl_refused("relative/dest create", EINVAL);
    tl_pathf(dest, "%s/d", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s bogus", dest);
    tl_ctl_refused(cmd, EINVAL);
    snprintf(cmd, sizeof(cmd), "%s full incremental", dest);
    tl_ctl_refused(cmd, EINVAL);
    cr_expect_eq(tl_count_entries(dest), 0);

    /* Non-empty DEST for a non-atomic full backup. */
    tl_pathf(f, "%s/keep", dest);
    close(open(f, O_CREAT | O_WRONLY, 0600));
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    tl_ctl_refused(cmd, ENOTEMPTY);
    cr_expect_eq(tl_count_entries(dest), 1);

    /* Incremental with no full backup before. */
    tl_pathf(dest, "%s/i", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s incremental wait", dest);
    tl_ctl_refused(cmd, ENODATA);
    cr_expect_eq(tl_count_entries(dest), 0);

    /* Inside the mount: refused without touching it. */
    snprintf(cmd, sizeof(cmd), "%s/live create", tl_mnt);
    tl_ctl_refused(cmd, EXDEV);

    /* DEST is a file. */
    snprintf(cmd, sizeof(cmd), "%s atomic", f);
    tl_ctl_refused(cmd, ENOTDIR);

    /* cancel with nothing running. */
    tl_ctl_refused("cancel", EINVAL);

    /* Nothing ran: status still idle. */
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
}

Test(fs_mount, refusals_circular_and_no_log)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64];

    tl_fs_start_opts("create,circular_log", 1);
    tl_pathf(dest, "%s/c", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    cr_assert_eq(tl_ctl_write(cmd), 0);  /* a full backup is allowed */
    tl_pathf(dest, "%s/c2", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s incremental", dest);
    tl_ctl_refused(cmd, EOPNOTSUPP);
    cr_expect_eq(tl_count_entries(dest), 0);
    cr_expect_eq(tl_fs_stop(SIGTERM, NULL), 0);

    tl_fs_start_opts("no_log", 1);
    snprintf(cmd, sizeof(cmd), "%s atomic", dest);
    tl_ctl_refused(cmd, EOPNOTSUPP);
    cr_expect_eq(tl_count_entries(dest), 0);
}

Test(fs_mount, backup_root_confines)
{
    char broot[PATH_MAX], out[PATH_MAX], cmd[PATH_MAX + 64], o[PATH_MAX + 64], lnk[PATH_MAX];

    tl_pathf(broot, "%s/root", tl_bk);
    tl_pathf(out, "%s/outside", tl_bk);
    mkdir(broot, 0700);
    mkdir(out, 0700);
    tl_pathf(lnk, "%s/link", broot);
    cr_assert_eq(symlink(out, lnk), 0);
    snprintf(o, sizeof(o), "create,backup_root=%s", broot);
    tl_fs_start_opts(o, 1);
    snprintf(cmd, sizeof(cmd), "%s", out);
    tl_ctl_refused(cmd, EXDEV);
    snprintf(cmd, sizeof(cmd), "%s/../outside", broot);
    tl_ctl_refused(cmd, EXDEV);
    snprintf(cmd, sizeof(cmd), "%s", lnk);
    tl_ctl_refused(cmd, EXDEV);
    cr_expect_eq(tl_count_entries(out), 0);
    snprintf(cmd, sizeof(cmd), "%s/ok create wait", broot);
    cr_expect_eq(tl_ctl_write(cmd), 0);
}

Test(fs_mount, eacces_for_other_uid)
{
    struct passwd *pw = getpwnam("nobody");
    char dest[PATH_MAX], ctl[PATH_MAX];
    pid_t pid;
    int status;

    if (pw == NULL || getuid() != 0)
        cr_skip_test("needs root and a 'nobody' user");
    /* allow_other, so the request reaches the filesystem at all. */
    tl_fs_start_opts("create,allow_other", 1);
    tl_pathf(dest, "%s/n", tl_bk);
    mkdir(dest, 0777);
    tl_pathf(ctl, "%s/control", tl_mnt);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char line[PATH_MAX + 8];
        int fd, n;
        if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(100);
        fd = open(ctl, O_WRONLY | O_TRUNC);
        if (fd < 0)
            _exit(errno == EACCES ? 0 : 101);
        n = snprintf(line, sizeof(line), "%s\n", dest);
        _exit(write(fd, line, (size_t)n) < 0 && errno == EACCES ? 0 : 102);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* And through a shell running as nobody. */
    pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);    /* the shell's "Permission denied" is expected */
        if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(100);
        execl("/bin/sh", "sh", "-c", "echo \"$1\" > \"$2\"", "sh", dest, ctl,
              (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    cr_expect_eq(tl_count_entries(dest), 0);
}

/* A database whose backup runs for a few seconds: backup_max_rate gives
 * the job a lower bound on its length whatever the machine's speed. */
static void start_big(int mib)
{
    tl_fill_instance(mib, 1 << 20);
    tl_fs_start_opts("backup_max_rate=64M", 1);
}

struct sample {
    int64_t t;
    char state[32], bytes[32], rate[32], eta[32];
};

Test(fs_mount, ebusy_and_status_while_running, .timeout = 180)
{
    char d1[PATH_MAX], d2[PATH_MAX], cmd[PATH_MAX + 64], v[256];
    static struct sample s[2000];
    int n = 0, pairs = 0, i, j;

    start_big(200);
    tl_pathf(d1, "%s/b1", tl_bk);
    tl_pathf(d2, "%s/b2", tl_bk);
    mkdir(d2, 0700);
    snprintf(cmd, sizeof(cmd), "%s create", d1);
    cr_assert_eq(tl_ctl_write(cmd), 0);   /* returns once the job began */
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "running");
    snprintf(cmd, sizeof(cmd), "%s", d2);
    tl_ctl_refused(cmd, EBUSY);
    cr_expect_eq(tl_count_entries(d2), 0);
    tl_ctl_refused("truncate", EBUSY);
    /* Sample the status until the job ends: any two samples a second or
     * more apart must differ in bytes_done, rate or eta. */
    for (;;) {
        char *st = tl_mnt_file("status");
        cr_assert_not_null(st);
        cr_assert_lt(n, 2000);
        s[n].t = tl_now_ms();
        tl_status_value(st, "state", s[n].state, sizeof(s[n].state));
        tl_status_value(st, "bytes_done", s[n].bytes, sizeof(s[n].bytes));
        tl_status_value(st, "rate_bytes_per_s", s[n].rate, sizeof(s[n].rate));
        tl_status_value(st, "eta_s", s[n].eta, sizeof(s[n].eta));
        free(st);
        if (strcmp(s[n].state, "running") != 0)
            break;
        n++;
        tl_sleep_ms(100);
    }
    cr_expect_str_eq(s[n].state, "succeeded");
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (s[j].t - s[i].t >= 1000) {
                pairs++;
                cr_expect(strcmp(s[i].bytes, s[j].bytes) != 0 || strcmp(s[i].rate, s[j].rate) != 0 ||
                          strcmp(s[i].eta, s[j].eta) != 0,
                          "status unchanged from +%lld to +%lld ms", (long long)(s[i].t - s[0].t),
                          (long long)(s[j].t - s[0].t));
                break;
            }
    cr_assert_gt(pairs, 0, "the job ran only %lld ms: too short to check the 1 s rule",
                 (long long)(s[n].t - s[0].t));
    cr_log_info("200 MiB backup at 64 MiB/s observed running for %lld ms", (long long)(s[n].t - s[0].t));
    tl_status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "0 JET_errSuccess");
}

Test(fs_mount, cancel_running_job, .timeout = 120)
{
    char d1[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;

    start_big(160);
    tl_pathf(d1, "%s/c1", tl_bk);
    mkdir(d1, 0700);
    snprintf(cmd, sizeof(cmd), "%s", d1);
    cr_assert_eq(tl_ctl_write(cmd), 0);
    cr_assert_eq(tl_ctl_shell("/bin/sh", "cancel", v, sizeof(v)), 0, "cancel: %s", v);
    tl_wait_state("cancelled|succeeded|failed", 60000, v);
    cr_assert_str_eq(v, "cancelled");
    tl_status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "-801 JET_errBackupAbortByServer");
    ev = tl_mnt_file("events");
    cr_expect(tl_events_have(ev, 215), "no 215:\n%s", ev);
    cr_expect(!tl_events_have(ev, 213), "213 for a cancelled backup:\n%s", ev);
    free(ev);
    cr_expect_eq(tl_count_entries(d1), 0, "a cancelled backup left files in DEST");
}

Test(fs_mount, eio_on_flipped_page, .timeout = 90)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;
    js_info info;
    int fd;
    uint8_t byte;
    off_t off;

    tl_fill_instance(20, 20000);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_assert_gt(info.pages, PG_FIRST_DATA);
    /* Flip a byte in the middle of the last used page, on disk. */
    off = (off_t)(info.pages - 1) * info.page_size + info.page_size / 2;
    tl_fs_start_opts("", 1);
    tl_pathf(cmd, "%s/%s", tl_dbdir, JS_DB_FILE);
    fd = open(cmd, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &byte, 1, off), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, off), 1);
    fsync(fd);
    close(fd);
    tl_pathf(dest, "%s/e", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    cr_expect_neq(tl_ctl_shell("/bin/sh", cmd, v, sizeof(v)), 0);
    cr_expect_eq(tl_count_entries(dest), 0, "a failed backup left files in DEST");
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "failed");
    tl_status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "-1018 JET_errReadVerifyFailure");
    tl_status_get("message", v, sizeof(v));
    cr_expect(strstr(v, "page") != NULL, "message: %s", v);
    ev = tl_mnt_file("events");
    cr_expect(tl_events_have(ev, 214), "no 214:\n%s", ev);
    cr_expect(!tl_events_have(ev, 213), "213 for a failed backup:\n%s", ev);
    free(ev);
    /* Again with bash and write(2) for the errno. */
    tl_ctl_refused(cmd, EIO);
    cr_expect_eq(tl_count_entries(dest), 0);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                             */
/* ------------------------------------------------------------------ */

/* A `wait` command running when the daemon is told to stop: js_close stops
 * the job (JET_errClientRequestToStopJetService) and the writer learns
 * ESHUTDOWN.  Once with write(2) for the errno, once through bash. */
static void eshutdown_run(int through_shell)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], ctl[PATH_MAX], errfile[PATH_MAX];
    js_info info;
    pid_t w;
    int status;
    int64_t ms;

    start_big(400);
    tl_pathf(dest, "%s/s", tl_bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    tl_pathf(ctl, "%s/control", tl_mnt);
    tl_pathf(errfile, "%s/sh.err", tl_root);
    w = fork();
    cr_assert_geq(w, 0);
    if (w == 0) {
        if (through_shell) {
            int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 2);
            execl("/bin/bash", "bash", "-c", "echo \"$1\" > \"$2\"", "sh", cmd, ctl,
                  (char *)NULL);
            _exit(127);
        }
        int rc = tl_ctl_write(cmd);
        _exit(rc == ESHUTDOWN ? 0 : rc == 0 ? 200 : rc);
    }
    tl_wait_state("running", 20000, NULL);
    cr_assert_eq(tl_fs_stop(SIGTERM, &ms), 0);
    cr_expect_lt(ms, 5000, "shutdown took %lld ms", (long long)ms);
    cr_assert_eq(waitpid(w, &status, 0), w);
    if (through_shell) {
        char *e = tl_slurp(errfile, NULL);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "the shell write succeeded");
        cr_expect(e != NULL && strstr(e, strerror(ESHUTDOWN)) != NULL, "shell said '%s'", e);
        free(e);
    } else {
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the waiting writer got %d, wanted ESHUTDOWN", WEXITSTATUS(status));
    }
    cr_expect_eq(tl_count_entries(dest), 0);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
}

Test(fs_mount, eshutdown_while_stopping, .timeout = 120)
{
    eshutdown_run(0);
}

Test(fs_mount, eshutdown_while_stopping_shell, .timeout = 120)
{
    eshutdown_run(1);
}

static void open_handle_shutdown(int sig)
{
    char p[PATH_MAX], buf[4096];
    js_info info;
    int fd1, fd2, status;
    int64_t ms;

    tl_fs_start();
    tl_pathf(p, "%s/live/%s", tl_mnt, JS_DB_FILE);
    fd1 = open(p, O_RDONLY);
    cr_assert_geq(fd1, 0);
    cr_assert_gt(read(fd1, buf, sizeof(buf)), 0);
    tl_pathf(p, "%s/status", tl_mnt);
    fd2 = open(p, O_RDONLY);
    cr_assert_geq(fd2, 0);
    status = tl_fs_stop(sig, &ms);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    cr_expect_lt(ms, 5000, "shutdown with an open handle took %lld ms", (long long)ms);
    cr_log_info("signal %d with two open handles: exited after %lld ms", sig, (long long)ms);
    close(fd1);
    close(fd2);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
    for (int i = 0; i < 100 && tl_is_mounted(tl_mnt); i++)
        tl_sleep_ms(20);
    cr_expect(!tl_is_mounted(tl_mnt));
}

Test(fs_mount, sigterm_with_open_handle)
{
    open_handle_shutdown(SIGTERM);
}

Test(fs_mount, sigint_with_open_handle)
{
    open_handle_shutdown(SIGINT);
}

Test(fs_mount, fusermount_u_stops_cleanly)
{
    char cmd[PATH_MAX + 32];
    js_info info;
    int status = 0;
    int64_t t0;

    tl_fs_start();
    snprintf(cmd, sizeof(cmd), "fusermount3 -u %s", tl_mnt);
    cr_assert_eq(system(cmd), 0);
    t0 = tl_now_ms();
    while (waitpid(tl_daemon_pid, &status, WNOHANG) != tl_daemon_pid) {
        cr_assert_lt(tl_now_ms() - t0, 5000, "daemon still running 5 s after fusermount3 -u");
        tl_sleep_ms(10);
    }
    tl_daemon_pid = -1;
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
}

Test(fs_mount, sigkill_then_restart_recovers)
{
    js_info info;
    char v[64];

    tl_fs_start();
    cr_assert_eq(tl_fs_stop(SIGKILL, NULL) & 0x7f, SIGKILL);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_DIRTY_SHUTDOWN);
    /* auto_unmount's helper removes the dead mount; wait for it so it
     * cannot remove the next one. */
    for (int i = 0; i < 250 && tl_is_mounted(tl_mnt); i++)
        tl_sleep_ms(20);
    tl_fs_start_opts("", 1);
    tl_status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
}

/* Without auto_unmount a killed daemon leaves ENOTCONN; the next start
 * clears it. */
Test(fs_mount, stale_mount_is_cleared)
{
    struct stat sb;
    int status;

    tl_fs_spawn("create", 1);
    kill(tl_daemon_pid, SIGKILL);
    waitpid(tl_daemon_pid, &status, 0);
    tl_daemon_pid = -1;
    cr_assert(tl_is_mounted(tl_mnt));
    cr_expect_eq(stat(tl_mnt, &sb), -1);
    cr_expect_eq(errno, ENOTCONN);
    tl_fs_start_opts("", 1);
    cr_expect_eq(stat(tl_mnt, &sb), 0);
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    for (int i = 0; i < 100 && tl_is_mounted(tl_mnt); i++)
        tl_sleep_ms(20);
    cr_expect(!tl_is_mounted(tl_mnt), "mount left behind");
}

/* Daemon mode: the parent returns once the mount answers. */
Test(fs_mount, daemonizes_after_mount)
{
    char cmd[PATH_MAX * 3], out[PATH_MAX];
    char *o;
    js_info info;
    int64_t t0;

    tl_pathf(out, "%s/ls.out", tl_root);
    snprintf(cmd, sizeof(cmd), "%s -o create,auto_unmount %s %s && ls %s > %s", tl_daemon_bin,
             tl_dbdir, tl_mnt, tl_mnt, out);
    cr_assert_eq(system(cmd), 0);
    o = tl_slurp(out, NULL);
    cr_expect_str_eq(o, "control\nevents\nlive\nsnapshots\nstatus\n");
    free(o);
    tl_wait_state("idle", 20000, NULL);
    snprintf(cmd, sizeof(cmd), "fusermount3 -u %s", tl_mnt);
    cr_assert_eq(system(cmd), 0);
    t0 = tl_now_ms();
    for (;;) {
        if (js_info_read(tl_dbdir, &info) == JET_errSuccess && info.state == JS_DB_CLEAN_SHUTDOWN)
            break;
        cr_assert_lt(tl_now_ms() - t0, 5000, "not clean 5 s after fusermount3 -u");
        tl_sleep_ms(20);
    }
}

Test(fs_mount, refuses_nesting_and_bad_usage)
{
    char cmd[PATH_MAX * 3], inner[PATH_MAX];
    int rc;

    mkdir(tl_dbdir, 0755);
    tl_pathf(inner, "%s/m", tl_dbdir);
    mkdir(inner, 0755);
    snprintf(cmd, sizeof(cmd), "%s -f -o create %s %s 2>/dev/null", tl_daemon_bin, tl_dbdir, inner);
    rc = system(cmd);
    cr_expect_eq(WEXITSTATUS(rc), 1);
    cr_expect(!tl_is_mounted(inner));
    tl_pathf(inner, "%s/db", tl_mnt);
    snprintf(cmd, sizeof(cmd), "%s -f -o create %s %s 2>/dev/null", tl_daemon_bin, inner, tl_mnt);
    rc = system(cmd);
    cr_expect_eq(WEXITSTATUS(rc), 1);
    cr_expect(!tl_is_mounted(tl_mnt));
    snprintf(cmd, sizeof(cmd), "%s -o bogus %s %s 2>/dev/null", tl_daemon_bin, tl_dbdir, tl_mnt);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s --help >/dev/null", tl_daemon_bin);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof(cmd), "%s --version | grep -q jetsnapfs", tl_daemon_bin);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 0);
    /* Missing instance without create: exit 1, nothing mounted. */
    tl_pathf(inner, "%s/nothing", tl_root);
    snprintf(cmd, sizeof(cmd), "%s %s %s 2>/dev/null", tl_daemon_bin, inner, tl_mnt);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
    cr_expect(!tl_is_mounted(tl_mnt));
}

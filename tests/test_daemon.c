/*
 * test_daemon.c - jetsnapfs as administrators and systemd run it: modes of
 * live/ under allow_other (SPEC 3), start and stop order (SPEC 1: daemon
 * mode returns only once every endpoint answers, a restart never loses its
 * socket), `mount -t fuse.jetsnapfs` and an fstab line through mount.fuse3,
 * and sd_notify readiness.
 *
 * Every test runs the daemon binary $BUILD/jetsnapfs (BUILD defaults to
 * "build") in its own mkdtemp directory (db/, mnt/), made 0755 so another
 * uid can reach the mount.  Daemon-mode tests cannot know the daemon's pid:
 * teardown unmounts MNT (the daemon then stops by itself) and waits until
 * the instance lock is free.  Tests skip, not fail, when /dev/fuse cannot be
 * opened; the other-uid and mount(8) tests need root.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "../fs/daemon/opts.h"
#include "fsmount.h"
#include "proc.h"
#include "respcl.h"
#include "testlib.h"

#define NOBODY 65534


/* 1 when no process holds DBDIR's instance (the lock file is free). */
static int instance_free(void)
{
    char p[PATH_MAX];
    int fd, free_ = 1;

    tl_pathf(p, "%s/%s", tl_dbdir, JS_LOCK_FILE);
    fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        free_ = 0;
    close(fd);  /* releases our lock, if we took it */
    return free_;
}

static void wait_instance_free(long timeout_ms)
{
    int64_t end = tl_now_ms() + timeout_ms;
    while (!instance_free()) {
        cr_assert(tl_now_ms() < end, "instance still held %ld ms after the unmount", timeout_ms);
        tl_sleep_ms(5);
    }
}

/* SIGKILL every process that has DBDIR's lock file open: a daemon a
 * failed test left behind (daemonized, or inside a private mount
 * namespace where teardown cannot unmount it). */
static void kill_lock_holders(void)
{
    char lock[PATH_MAX], fdpath[PATH_MAX], target[PATH_MAX];
    DIR *proc = opendir("/proc"), *fds;
    struct dirent *pe, *fe;

    tl_pathf(lock, "%s/%s", tl_dbdir, JS_LOCK_FILE);
    if (proc == NULL)
        return;
    while ((pe = readdir(proc)) != NULL) {
        pid_t pid = (pid_t)atoi(pe->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        tl_pathf(fdpath, "/proc/%d/fd", (int)pid);
        if ((fds = opendir(fdpath)) == NULL)
            continue;
        while ((fe = readdir(fds)) != NULL) {
            char link[PATH_MAX];
            ssize_t n;
            tl_pathf(link, "%s/%s", fdpath, fe->d_name);
            n = readlink(link, target, sizeof(target) - 1);
            if (n > 0) {
                target[n] = '\0';
                if (strcmp(target, lock) == 0) {
                    kill(pid, SIGKILL);
                    break;
                }
            }
        }
        closedir(fds);
    }
    closedir(proc);
}

/* ROOT is 0755: another uid must be able to reach MNT (the mount decides
 * the rest). */
static void setup(void)
{
    tl_fs_setup("jetsnap-daemon", 0755);
}

static void teardown(void)
{
    tl_fs_unmount();
    if (tl_root[0] == '\0')
        return;
    /* A daemonized jetsnapfs stops by itself once its mount is gone. */
    for (int i = 0; i < 500 && !instance_free(); i++)
        tl_sleep_ms(10);
    kill_lock_holders();
    tl_rmrf(tl_root);
}

/* Run `jetsnapfs [-f] -o OPTS DBDIR MNT` with stderr to daemon.log.  Daemon
 * mode (fg 0): wait for the program to return, give its exit status.
 * Foreground: return at once (pid in tl_daemon_pid), status 0. */
static int run_daemon(int fg, const char *opts, char *const extra_env)
{
    pid_t pid = tl_fs_exec(fg, opts, 0, extra_env);
    int status;

    if (fg) {
        tl_daemon_pid = pid;
        return 0;
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* Wait until the -f daemon answers PING on sock. */
/* ------------------------------------------------------------------ */
/* Options as mount.fuse3 passes them                                   */
/* ------------------------------------------------------------------ */

static int parse_o(const char *list, struct fs_opts *o, char *err, size_t cap)
{
    char *argv[] = { "jetsnapfs", "/d", "/m", "-o", (char *)list, NULL };
    return opts_parse(5, argv, o, err, cap);
}

Test(daemon_opts, generic_mount_options_ignored_ours_kept)
{
    struct fs_opts o;
    char err[256];

    /* What mount.fuse3 runs for an fstab line: its dev,suid appended. */
    cr_assert_eq(parse_o("rw,noatime,nofail,_netdev,noauto,x-systemd.automount,"
                         "x-systemd.requires=a.mount,comment=x,defaults,exec,nodev,nosuid,"
                         "allow_other,listen=/tmp/s,create,dev,suid", &o, err, sizeof(err)),
                 0, "%s", err);
    cr_expect(o.allow_other);
    cr_expect(o.create);
    cr_expect_eq(o.n_listen, 1);
    cr_expect_str_eq(o.listen[0], "/tmp/s");
    cr_expect(!o.foreground);
    opts_free(&o);
    cr_expect_neq(parse_o("ro", &o, err, sizeof(err)), 0);
    cr_expect(strstr(err, "ro") != NULL, "%s", err);
    opts_free(&o);
    cr_expect_neq(parse_o("rw,bogus", &o, err, sizeof(err)), 0);
    cr_expect(strstr(err, "bogus") != NULL, "%s", err);
    opts_free(&o);
}

/* ------------------------------------------------------------------ */
/* Modes of live/ (SPEC 3)                                              */
/* ------------------------------------------------------------------ */

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 90);

/* What the child running as NOBODY reports, one bit per failed check. */
enum {
    OTHER_STATUS = 1, OTHER_EVENTS = 2, OTHER_LIVE_DIR = 4, OTHER_LIVE_FILE = 8,
    OTHER_CONTROL = 16, OTHER_READABLE = 32, OTHER_SETUID = 64
};

/* As NOBODY: status and events readable; opendir(live) EACCES or not as
 * live_dir_open says; every name in closed[] EACCES; every name in open_[]
 * readable, as many bytes as DBDIR's file; control EACCES.  Returns the
 * failed checks. */
static int as_other_uid(const char *const *closed, const char *const *open_, int live_dir_open)
{
    pid_t pid = fork();
    int status;

    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char p[PATH_MAX], q[PATH_MAX];
        int bad = 0, fd;
        char *s;

        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(OTHER_SETUID);
        tl_pathf(p, "%s/status", tl_mnt);
        s = tl_slurp(p, NULL);
        if (s == NULL || strstr(s, "state: ") == NULL)
            bad |= OTHER_STATUS;
        free(s);
        tl_pathf(p, "%s/events", tl_mnt);
        if ((fd = open(p, O_RDONLY)) < 0)
            bad |= OTHER_EVENTS;
        else
            close(fd);
        tl_pathf(p, "%s/live", tl_mnt);
        fd = open(p, O_RDONLY | O_DIRECTORY);
        if (live_dir_open ? fd < 0 : (fd >= 0 || errno != EACCES))
            bad |= OTHER_LIVE_DIR;
        if (fd >= 0)
            close(fd);
        for (; closed != NULL && *closed != NULL; closed++) {
            tl_pathf(p, "%s/live/%s", tl_mnt, *closed);
            fd = open(p, O_RDONLY);
            if (fd >= 0 || errno != EACCES)
                bad |= OTHER_LIVE_FILE;
            if (fd >= 0)
                close(fd);
        }
        for (; open_ != NULL && *open_ != NULL; open_++) {
            size_t la, lb;
            char *a, *b;
            tl_pathf(p, "%s/live/%s", tl_mnt, *open_);
            tl_pathf(q, "%s/%s", tl_dbdir, *open_);
            a = tl_slurp(p, &la);
            /* DBDIR itself is readable to NOBODY here (that is the point).
             * Sizes only: the engine may rewrite the file in between. */
            b = tl_slurp(q, &lb);
            if (a == NULL || b == NULL || la != lb || la == 0)
                bad |= OTHER_READABLE;
            free(a);
            free(b);
        }
        tl_pathf(p, "%s/control", tl_mnt);
        fd = open(p, O_WRONLY);
        if (fd >= 0 || errno != EACCES)
            bad |= OTHER_CONTROL;
        _exit(bad);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child status %d", status);
    return WEXITSTATUS(status);
}

Test(daemon, live_modes_follow_dbdir_under_allow_other)
{
    static const char *const all[] = { JS_DB_FILE, JS_CHK_FILE, JS_LOG_FILE, NULL };
    static const char *const db_only[] = { JS_DB_FILE, NULL };
    static const char *const chk_only[] = { JS_CHK_FILE, NULL };
    char p[PATH_MAX];
    struct stat sb, lb;
    int bad;

    if (getuid() != 0)
        cr_skip_test("needs root (setuid to another uid)");
    cr_assert_eq(run_daemon(1, "create,allow_other,auto_unmount", NULL), 0);
    tl_fs_wait_ping(tl_sock);

    /* Default modes: DBDIR 0700, its files 0600. */
    cr_assert_eq(chmod(tl_dbdir, 0700), 0);
    for (const char *const *n = all; *n != NULL; n++) {
        tl_pathf(p, "%s/%s", tl_dbdir, *n);
        cr_assert_eq(chmod(p, 0600), 0, "%s: %s", p, strerror(errno));
    }
    tl_pathf(p, "%s/live", tl_mnt);
    cr_assert_eq(stat(p, &lb), 0);
    cr_assert_eq(stat(tl_dbdir, &sb), 0);
    cr_expect_eq(lb.st_mode, S_IFDIR | 0500, "live/ mode %o", lb.st_mode);
    cr_expect_eq(lb.st_uid, sb.st_uid);
    cr_expect_eq(lb.st_gid, sb.st_gid);
    tl_pathf(p, "%s/live/%s", tl_mnt, JS_DB_FILE);
    cr_assert_eq(stat(p, &lb), 0);
    cr_expect_eq(lb.st_mode, S_IFREG | 0400, "live/%s mode %o", JS_DB_FILE, lb.st_mode);
    bad = as_other_uid(all, NULL, 0);
    cr_expect_eq(bad, 0, "as uid %d under 0700/0600: failed checks 0x%x "
                 "(1 status, 2 events, 4 live/ not EACCES, 8 a live file not EACCES, "
                 "16 control, 64 setuid)", NOBODY, bad);

    /* DBDIR opened up, one file readable by others: that file, and only it,
     * is readable through the mount; a file of NOBODY's own stays closed
     * when its owner bits say so. */
    cr_assert_eq(chmod(tl_dbdir, 0755), 0);
    tl_pathf(p, "%s/%s", tl_dbdir, JS_CHK_FILE);
    cr_assert_eq(chmod(p, 0644), 0);
    tl_pathf(p, "%s/live", tl_mnt);
    cr_assert_eq(stat(p, &lb), 0);
    cr_expect_eq(lb.st_mode, S_IFDIR | 0555, "live/ mode %o after chmod 0755", lb.st_mode);
    bad = as_other_uid(db_only, chk_only, 1);
    cr_expect_eq(bad, 0, "as uid %d under 0755 with %s 0644: failed checks 0x%x "
                 "(4 live/ closed, 8 %s not EACCES, 32 %s not readable)", NOBODY, JS_CHK_FILE,
                 bad, JS_DB_FILE, JS_CHK_FILE);

    tl_pathf(p, "%s/%s", tl_dbdir, JS_CHK_FILE);
    cr_assert_eq(chown(p, NOBODY, NOBODY), 0);
    cr_assert_eq(chmod(p, 0044), 0);
    tl_pathf(p, "%s/live/%s", tl_mnt, JS_CHK_FILE);
    cr_assert_eq(stat(p, &lb), 0);
    cr_expect_eq(lb.st_uid, (uid_t)NOBODY);
    cr_expect_eq(lb.st_mode, S_IFREG | 0044);
    bad = as_other_uid(chk_only, NULL, 1);
    cr_expect_eq(bad, 0, "as uid %d, owner of a 0044 %s: failed checks 0x%x", NOBODY,
                 JS_CHK_FILE, bad);
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Start and stop order (SPEC 1)                                        */
/* ------------------------------------------------------------------ */

/* Daemon mode must not return before the socket listens: PING at once. */
Test(daemon, daemon_mode_returns_when_socket_answers)
{
    int status;

    for (int round = 0; round < 20; round++) {
        status = run_daemon(0, round == 0 ? "create" : "", NULL);
        if (status != 0)
            tl_fs_dump_log();
        cr_assert_eq(status, 0, "round %d: jetsnapfs exited with status %d", round, status);
        cr_assert(tl_resp_ping(tl_sock), "round %d: jetsnapfs returned but %s does not answer PING",
                  round, tl_sock);
        cr_assert(tl_is_mounted(tl_mnt), "round %d: returned before the mount", round);
        cr_assert_eq(tl_run("fusermount3", "-u", tl_mnt, NULL), 0, "round %d", round);
        wait_instance_free(10000);
    }
}

/* A start-up failure after the fork (here: a listen endpoint that is a
 * regular file) is the program's exit status, with the reason on stderr,
 * and leaves nothing mounted or running. */
Test(daemon, daemon_mode_reports_startup_failure)
{
    char opts[PATH_MAX + 64], file[PATH_MAX];
    char *e;
    int fd, status;

    tl_pathf(file, "%s/not-a-socket", tl_root);
    fd = open(file, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(opts, sizeof(opts), "create,listen=%s", file);
    status = run_daemon(0, opts, NULL);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d, wanted 1", status);
    e = tl_slurp(tl_log, NULL);
    cr_expect(e != NULL && strstr(e, "not a socket") != NULL, "stderr: %s", e);
    free(e);
    cr_expect(!tl_is_mounted(tl_mnt), "left mounted after a failed start");
    cr_expect(instance_free(), "instance still held after a failed start");
}

/* `fusermount3 -u MNT; jetsnapfs DBDIR MNT; PING`, 50 times, no sleep:
 * each start either gives a daemon that answers at once, or fails with
 * JET_errDatabaseInUse; never a daemon that runs without its socket. */
Test(daemon, restart_never_loses_its_socket)
{
    int pong = 0, in_use = 0, status;

    cr_assert_eq(run_daemon(0, "create", NULL), 0);
    tl_fs_wait_ping(tl_sock);
    for (int round = 0; round < 50; round++) {
        tl_run("fusermount3", "-u", tl_mnt, NULL);
        status = run_daemon(0, "", NULL);
        if (status == 0) {
            cr_assert(tl_resp_ping(tl_sock), "round %d: daemon started, no PONG on %s", round, tl_sock);
            pong++;
        } else {
            char *e = tl_slurp(tl_log, NULL);
            cr_assert(e != NULL && strstr(e, "JET_errDatabaseInUse") != NULL,
                      "round %d: start failed (status %d) with: %s", round, status, e);
            free(e);
            in_use++;
            /* The previous daemon is gone or going: nothing may answer on a
             * socket that no daemon serves, and none may be half up. */
            cr_assert(!tl_is_mounted(tl_mnt) || tl_resp_ping(tl_sock), "round %d: mounted, no socket", round);
        }
    }
    cr_log_info("50 restarts: %d answered PONG, %d refused with JET_errDatabaseInUse", pong,
                in_use);
    cr_expect_gt(pong, 0);
    /* The last one keeps running and answering. */
    if (tl_is_mounted(tl_mnt)) {
        tl_sleep_ms(200);
        cr_expect(tl_resp_ping(tl_sock), "the last daemon lost its socket");
    }
}

/* The daemon's pid from `INFO server` (process_id:N), or -1. */
static pid_t info_pid(const char *path)
{
    static const char req[] = "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n";
    struct sockaddr_un sa;
    char buf[8192], *p;
    size_t got = 0;
    ssize_t n;
    pid_t pid = -1;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
        goto out;
    while (got < sizeof(buf) - 1) {
        n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if ((p = strstr(buf, "process_id:")) != NULL && strchr(p, '\r') != NULL) {
            pid = (pid_t)atoi(p + strlen("process_id:"));
            break;
        }
    }
out:
    close(fd);
    return pid;
}

/* `kill -TERM OLD; jetsnapfs DBDIR MNT; PING`, no wait: the old daemon is
 * still stopping (mount up, socket open, instance held) when the new one
 * starts.  Each round answers PONG or fails with JET_errDatabaseInUse. */
Test(daemon, restart_after_sigterm_without_waiting)
{
    int pong = 0, status;

    cr_assert_eq(run_daemon(0, "create", NULL), 0);
    tl_fs_wait_ping(tl_sock);
    for (int round = 0; round < 20; round++) {
        pid_t old = info_pid(tl_sock);
        cr_assert_gt(old, 0, "round %d: no process_id from INFO server", round);
        cr_assert_eq(kill(old, SIGTERM), 0);
        status = run_daemon(0, "", NULL);
        if (status == 0) {
            cr_assert(tl_resp_ping(tl_sock), "round %d: daemon started, no PONG on %s", round, tl_sock);
            cr_assert_neq(info_pid(tl_sock), old, "round %d: the old daemon answers", round);
            pong++;
        } else {
            char *e = tl_slurp(tl_log, NULL);
            cr_assert(e != NULL && strstr(e, "JET_errDatabaseInUse") != NULL,
                      "round %d: start failed (status %d) with: %s", round, status, e);
            free(e);
            /* Nothing runs now: start one for the next round. */
            wait_instance_free(10000);
            cr_assert_eq(run_daemon(0, "", NULL), 0);
        }
    }
    cr_expect_gt(pong, 0);
}

/* ------------------------------------------------------------------ */
/* mount(8), /etc/fstab and systemd                                    */
/* ------------------------------------------------------------------ */

/*
 * mount(8) starts /sbin/mount.fuse3 without PATH, and mount.fuse3 runs
 * `/bin/sh -c 'jetsnapfs DBDIR MNT -o OPTS'`, so the program is found only
 * in the shell's default PATH (/usr/local/bin, /usr/bin, ...).  The child
 * takes a private mount namespace and binds a directory holding a
 * `jetsnapfs` symlink to the build over /usr/local/bin there: nothing
 * outside the child sees it.  Each check failing is one bit of the exit.
 * No auto_unmount: its helper, outliving the first daemon, could unmount
 * the second mount at the same path; the child unmounts, and teardown
 * kills a daemon a failure left in the namespace.
 */
static int mount_helper_child(void)
{
    char bin[PATH_MAX], link[PATH_MAX], alt[PATH_MAX], fstab[PATH_MAX], p[PATH_MAX];
    char opts[PATH_MAX + 256], line[3 * PATH_MAX + 512];
    int bad = 0, fd;
    char *s;

    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return 1;
    tl_pathf(bin, "%s/bin", tl_root);
    tl_pathf(link, "%s/jetsnapfs", bin);
    if (mkdir(bin, 0755) != 0 || symlink(tl_daemon_bin, link) != 0 ||
        mount(bin, "/usr/local/bin", NULL, MS_BIND, NULL) != 0)
        return 1;
    tl_pathf(alt, "%s/alt.sock", tl_root);
    /* Generic options mount(8) and mount.fuse3 mix in, and ours: listen=
     * proves the list reached the daemon. */
    snprintf(opts, sizeof(opts),
             "rw,nofail,_netdev,noatime,exec,x-systemd.requires=local-fs.target,create,"
             "listen=%s", alt);
    if (tl_run("mount", "-t", "fuse.jetsnapfs", tl_dbdir, tl_mnt, "-o", opts, NULL) != 0)
        return 2;
    if (!tl_is_mounted(tl_mnt))
        bad |= 4;
    if (!tl_resp_ping(alt))
        bad |= 8;
    tl_pathf(p, "%s/status", tl_mnt);
    s = tl_slurp(p, NULL);
    if (s == NULL || strstr(s, "state: idle") == NULL)
        bad |= 16;
    free(s);
    if (tl_run("umount", tl_mnt, NULL) != 0)
        bad |= 32;
    for (int i = 0; i < 1000 && !instance_free(); i++)
        tl_sleep_ms(10);

    /* The same through an fstab line (noauto and x-systemd.automount as a
     * real one would carry). */
    tl_pathf(fstab, "%s/fstab", tl_root);
    snprintf(line, sizeof(line),
             "%s %s fuse.jetsnapfs noauto,nofail,_netdev,x-systemd.automount,"
             "x-systemd.mount-timeout=30,listen=%s 0 0\n", tl_dbdir, tl_mnt, alt);
    fd = open(fstab, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        return 1;
    close(fd);
    if (tl_run("mount", "-T", fstab, tl_mnt, NULL) != 0)
        return bad | 64;
    if (!tl_is_mounted(tl_mnt) || !tl_resp_ping(alt))
        bad |= 128;
    tl_run("umount", tl_mnt, NULL);
    for (int i = 0; i < 1000 && !instance_free(); i++)
        tl_sleep_ms(10);
    return bad;
}

Test(daemon, mount_t_fuse_jetsnapfs_and_fstab)
{
    pid_t pid;
    int status;

    if (getuid() != 0)
        cr_skip_test("needs root (mount(8), a private mount namespace)");
    if (access("/sbin/mount.fuse3", X_OK) != 0 && access("/usr/sbin/mount.fuse3", X_OK) != 0)
        cr_skip_test("mount.fuse3 is not installed");
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(mount_helper_child());
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child status %d", status);
    if (WEXITSTATUS(status) != 0)
        tl_fs_dump_log();
    cr_expect_eq(WEXITSTATUS(status), 0,
                 "failed checks 0x%x (1 setup, 2 `mount -t fuse.jetsnapfs` failed, "
                 "4 not mounted, 8 listen= socket silent, 16 status, 32 umount, "
                 "64 `mount -T fstab` failed, 128 fstab mount not serving)",
                 WEXITSTATUS(status));
}

/* Receive one datagram within ms into buf; length, or -1 on timeout. */
static ssize_t recv_within(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd pf = { fd, POLLIN, 0 };
    ssize_t n;

    if (poll(&pf, 1, ms) != 1)
        return -1;
    n = recv(fd, buf, cap - 1, 0);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Wait for a notification holding line (e.g. "READY=1"); 1 if it came. */
static int wait_notify(int fd, const char *line, long timeout_ms, char *seen, size_t seencap)
{
    int64_t end = tl_now_ms() + timeout_ms;
    char buf[4096];

    while (tl_now_ms() < end) {
        ssize_t n = recv_within(fd, buf, sizeof(buf), (int)(end - tl_now_ms()));
        if (n < 0)
            break;
        strncat(seen, buf, seencap - strlen(seen) - 2);
        strcat(seen, "|");
        for (char *l = buf; l != NULL; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
            if (strncmp(l, line, strlen(line)) == 0 &&
                (l[strlen(line)] == '\n' || l[strlen(line)] == '\0'))
                return 1;
    }
    return 0;
}

/* Type=notify: READY=1 only once the socket answers and the mount is up;
 * STOPPING=1 when a stop begins. */
Test(daemon, sd_notify_ready_after_ping_and_stopping)
{
    struct sockaddr_un sa;
    char env[PATH_MAX + 32], seen[8192] = "", p[PATH_MAX];
    struct stat sb;
    int fd, status;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", tl_root);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", sa.sun_path);
    cr_assert_eq(run_daemon(1, "create,auto_unmount", env), 0);
    if (!wait_notify(fd, "READY=1", 20000, seen, sizeof(seen))) {
        tl_fs_dump_log();
        cr_assert_fail("no READY=1 within 20 s (got: %s)", seen);
    }
    /* READY=1 means ready: no retry here. */
    cr_expect(tl_resp_ping(tl_sock), "READY=1 came before %s answered PING", tl_sock);
    cr_expect(tl_is_mounted(tl_mnt), "READY=1 came before the mount");
    tl_pathf(p, "%s/status", tl_mnt);
    cr_expect_eq(stat(p, &sb), 0);
    kill(tl_daemon_pid, SIGTERM);
    cr_expect(wait_notify(fd, "STOPPING=1", 20000, seen, sizeof(seen)),
              "no STOPPING=1 after SIGTERM (got: %s)", seen);
    status = tl_fs_stop(SIGTERM, NULL);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    close(fd);
}

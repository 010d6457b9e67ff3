/*
 * test_archive_cmd.c - how the archiver runs archive_command and what it
 * reports, with the daemon mounted for real: a daemon started with SIGCHLD
 * ignored still tells a failing command from a working one; a command that
 * leaves a background process holding its output open is done when its
 * shell is; archive_lag_s is the age of the oldest unarchived commit, in
 * seconds with millisecond precision, and does not restart at every
 * generation shipped from a backlog; a commit left in the open generation
 * by a daemon that stopped is archived within archive_timeout of the
 * restart without any new commit; an archive_timeout roll that fails for
 * lack of space is said once, not at every look, and rolls once there is
 * room again; the command runs at nice 10 and the lowest best-effort I/O
 * priority, with no descriptor of the daemon's; `jetsnap restore` run with
 * SIGCHLD ignored still fetches the archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "archfix.h"
#include "fsmount.h"
#include "jstool.h"
#include "respcl.h"
#include "testlib.h"

TestSuite(archive_cmd, .init = tl_fs_mount_setup, .fini = tl_fs_teardown, .timeout = 90);

static int archived(uint32_t gen)
{
    char p[PATH_MAX];
    tl_pathf(p, "%s/edb%08X.log", tl_arch, gen);
    return tl_exists(p);
}

/* A supervisor that ignores SIGCHLD passes that on to the daemon; the
 * kernel then reaps the command itself, and the old archiver took the lost
 * exit status for 0: `false` counted as archived, the generation was then
 * free to be truncated. */
Test(archive_cmd, sigchld_ignored_failure_is_failure)
{
    char cmd[PATH_MAX * 2 + 64], v[1024], p[PATH_MAX];
    snprintf(cmd, sizeof cmd, "test -e %s/archive/ok && cp %%p %s/archive/%%f", tl_root, tl_root);
    signal(SIGCHLD, SIG_IGN);   /* inherited by the daemon through exec */
    tl_arch_start("", cmd);
    signal(SIGCHLD, SIG_DFL);
    tl_arch_fill(0, 40);
    tl_sleep_ms(2500);   /* a few attempts, all failing */
    cr_expect_eq(tl_arch_status_gen("archive_last_gen"), -1, "a failing command counted as archived");
    tl_status_get("archive_last_error", v, sizeof v);
    cr_expect(strstr(v, "exit status 1") != NULL, "archive_last_error: %s", v);
    /* And a working one works. */
    tl_pathf(p, "%s/ok", tl_arch);
    tl_spit(p, "");
    int64_t end = tl_now_ms() + 20000;
    while (tl_arch_status_gen("archive_last_gen") < 1 && tl_now_ms() < end)
        tl_sleep_ms(50);
    cr_expect_geq(tl_arch_status_gen("archive_last_gen"), 1);
    cr_expect(archived(1));
}

/* The shell exits 0 but a process it started in the background keeps the
 * output pipe open: the old archiver read until end of file and so waited
 * for the timeout, called the attempt failed and retried forever. */
Test(archive_cmd, background_child_does_not_hold_it)
{
    char cmd[PATH_MAX * 2 + 64], v[1024];
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f; sleep 60 &", tl_root);
    tl_arch_start("archive_command_timeout=30", cmd);
    tl_arch_fill(0, 60);
    int64_t end = tl_now_ms() + 10000;
    while (tl_arch_status_gen("archive_last_gen") < 3 && tl_now_ms() < end)
        tl_sleep_ms(50);
    cr_expect_geq(tl_arch_status_gen("archive_last_gen"), 3, "the command was not done when its shell was");
    tl_status_get("archive_last_error", v, sizeof v);
    cr_expect_str_eq(v, "-");
}

/* archive_lag_s while a slow command works through a backlog: every
 * generation shipped leaves older commits waiting, so the age keeps
 * growing; the old archiver restarted it at every success. */
Test(archive_cmd, lag_grows_through_a_backlog)
{
    char cmd[PATH_MAX * 2 + 64], v[64];
    snprintf(cmd, sizeof cmd, "sleep 1; cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("", cmd);
    tl_arch_fill(0, 140);   /* about 10 generations, 10 s of shipping */
    int64_t t0 = tl_now_ms();
    double max_lag = 0;
    int precise = 0;
    while (tl_now_ms() - t0 < 4000) {
        tl_status_get("archive_lag_s", v, sizeof v);
        double lag = strtod(v, NULL);
        max_lag = lag > max_lag ? lag : max_lag;
        precise |= strchr(v, '.') != NULL;
        tl_sleep_ms(100);
    }
    tl_status_get("archive_pending", v, sizeof v);
    cr_assert_gt(atol(v), 0, "the backlog is gone already: the test proves nothing");
    cr_expect_geq(max_lag, 3.0, "archive_lag_s restarted with each generation shipped: max %.3f", max_lag);
    cr_expect(precise, "archive_lag_s has no fraction");
}

/* A commit in the open generation when the daemon stops: after the restart,
 * with no new commit, archive_timeout still rolls and ships it. */
Test(archive_cmd, open_generation_commit_survives_restart)
{
    char cmd[PATH_MAX * 2 + 64], o[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=30", cmd);
    tl_sleep_ms(500);
    long before = tl_arch_status_gen("archive_last_gen");
    tl_arch_set_key("left", "behind");
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    snprintf(o, sizeof o, "archive_timeout=1,archive_command=%s", cmd);
    tl_fs_start_opts(o, 1);
    int64_t end = tl_now_ms() + 5000;
    while (tl_arch_status_gen("archive_last_gen") <= before && tl_now_ms() < end)
        tl_sleep_ms(50);
    cr_expect_gt(tl_arch_status_gen("archive_last_gen"), before,
                 "the commit left in the open generation was not archived after the restart");
}

/* DBDIR on a small tmpfs, unmounted after the daemon is gone. */
static void tmpfs_fini(void)
{
    tl_fs_unmount();
    if (tl_root[0] != '\0')
        umount2(tl_dbdir, MNT_DETACH);
    tl_fs_teardown();
}

static int count_of(const char *text, const char *pat)
{
    int n = 0;
    for (const char *q = text; (q = strstr(q, pat)) != NULL; q++)
        n++;
    return n;
}

/* With DBDIR full, the archive_timeout roll cannot make the next
 * generation: the old archiver said so at every look, five events a second
 * pushing every other one out of the event log. */
Test(archive_cmd, failed_roll_said_once, .fini = tmpfs_fini)
{
    char cmd[PATH_MAX * 2 + 64], p[PATH_MAX];
    mkdir(tl_dbdir, 0700);
    if (mount("tmpfs", tl_dbdir, "tmpfs", 0, "size=4m") != 0)
        cr_skip_test("cannot mount a tmpfs (%s): needs root", strerror(errno));
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    tl_arch_set_key("a", "1");
    /* Its pages reach jetsnap.edb (which grows) by the checkpoint of the
     * quiet instance, before the filler takes the room. */
    struct timespec set_at;
    clock_gettime(CLOCK_REALTIME, &set_at);
    tl_pathf(p, "%s/edb.chk", tl_dbdir);
    struct stat chk = { 0 };
    int64_t until = tl_now_ms() + 10000;
    while ((stat(p, &chk) != 0 || chk.st_mtim.tv_sec < set_at.tv_sec ||
            (chk.st_mtim.tv_sec == set_at.tv_sec && chk.st_mtim.tv_nsec <= set_at.tv_nsec)) && tl_now_ms() < until)
        tl_sleep_ms(50);
    tl_sleep_ms(500);
    /* Fill DBDIR; the next roll takes the pre-built spare, the one after
     * finds no room. */
    tl_pathf(p, "%s/filler", tl_dbdir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    char blk[4096] = { 0 };
    while (write(fd, blk, sizeof blk) == (ssize_t)sizeof blk)
        ;
    close(fd);
    tl_arch_set_key("b", "2");
    tl_sleep_ms(2500);
    tl_arch_set_key("c", "3");
    tl_sleep_ms(3500);
    char *ev = tl_mnt_file("events");
    int said = count_of(ev, "Z 263 warning");
    cr_expect_eq(said, 1, "the failed roll was said %d times:\n%s", said, ev);
    free(ev);
    long before = tl_arch_status_gen("archive_last_gen");
    cr_assert_eq(unlink(p), 0);
    int64_t end = tl_now_ms() + 6000;
    while (tl_arch_status_gen("archive_last_gen") <= before && tl_now_ms() < end)
        tl_sleep_ms(50);
    cr_expect_gt(tl_arch_status_gen("archive_last_gen"), before, "no roll once there was room again");
    ev = tl_mnt_file("events");
    cr_expect(strstr(ev, "the log rolls again") != NULL, "%s", ev);
    free(ev);
}

/* Background work yields to the committers, and gets nothing it could
 * keep the daemon's files or sockets open with. */
Test(archive_cmd, command_runs_at_low_priority)
{
    char cmd[PATH_MAX * 3], p[PATH_MAX];
    /* Files of their own per generation: the next one's command may be
     * rewriting them while the test reads. */
    snprintf(cmd, sizeof cmd, "cut -d' ' -f19 /proc/$$/stat > %s/archive/%%f.nice; ionice -p $$ > %s/archive/%%f.io; "
             "ls /proc/self/fd > %s/archive/%%f.fds; cp %%p %s/archive/%%f", tl_root, tl_root, tl_root, tl_root);
    tl_arch_start("", cmd);
    tl_arch_fill(0, 20);
    int64_t end = tl_now_ms() + 20000;
    while (!archived(1) && tl_now_ms() < end)
        tl_sleep_ms(50);
    cr_assert(archived(1));
    tl_pathf(p, "%s/edb%08X.log.nice", tl_arch, 1u);
    char *n = tl_slurp(p, NULL);
    cr_expect(n != NULL && atoi(n) == 10, "nice: %s", n ? n : "(none)");
    free(n);
    tl_pathf(p, "%s/edb%08X.log.io", tl_arch, 1u);
    char *io = tl_slurp(p, NULL);
    cr_expect(io != NULL && strstr(io, "best-effort: prio 7") != NULL, "ionice: %s", io ? io : "(none)");
    free(io);
    /* 0, 1, 2 and the one ls opens to list them. */
    tl_pathf(p, "%s/edb%08X.log.fds", tl_arch, 1u);
    char *fds = tl_slurp(p, NULL);
    cr_expect(fds != NULL && strcmp(fds, "0\n1\n2\n3\n") == 0, "descriptors: %s", fds ? fds : "(none)");
    free(fds);
}

/* The restore side: a lost exit status of --restore-command read as "no
 * such generation", so `jetsnap restore` started with SIGCHLD ignored
 * quietly restored the set alone, without the archive. */
Test(archive_cmd, restore_with_sigchld_ignored, .timeout = 120)
{
    char cmd[PATH_MAX * 2], sh[PATH_MAX + 32], target[PATH_MAX], err[256];
    struct tl_run r;
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    tl_arch_set_key("base", "1");
    snprintf(sh, sizeof sh, "%s/full create wait", tl_bk);
    cr_assert_eq(tl_ctl_shell("/bin/sh", sh, err, sizeof err), 0, "backup failed: %s", err);
    tl_arch_set_key("after", "2");
    tl_sleep_ms(3500);   /* archive_timeout rolls it, the archiver ships it */
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    tl_pathf(target, "%s/restored", tl_root);
    char set[PATH_MAX], rcmd[PATH_MAX + 32];
    tl_pathf(set, "%s/full", tl_bk);
    snprintf(rcmd, sizeof rcmd, "cp %s/%%f %%p", tl_arch);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGCHLD, SIG_IGN);   /* kept through exec */
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(tl_jetsnap_bin, "jetsnap", "restore", set, target, "--restore-command", rcmd, (char *)NULL);
        _exit(127);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "restore failed: %d", status);
    const char *args[] = { "dump", target, NULL };
    tl_cli_run(&r, NULL, args);
    cr_expect(strstr(r.out, "base\t1") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "after\t2") != NULL, "the archive was not replayed:\n%s", r.out);
    tl_run_free(&r);
}

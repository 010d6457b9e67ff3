/*
 * test_archive.c - continuous archiving (SPEC 8) with the daemon mounted
 * for real: generations arrive in order through `cp %p DIR/%f`; a failing
 * command is retried, nothing is skipped, and neither a backup's truncation
 * nor circular logging deletes an unarchived generation; the archiver
 * catches up once the command works; a hanging command is killed at its
 * timeout; the command's environment is clean; archive_timeout rolls a
 * generation holding a commit and nothing when there is none; `\,` in -o.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "../fs/daemon/opts.h"
#include "archfix.h"
#include "fsmount.h"
#include "jstool.h"
#include "respcl.h"
#include "testlib.h"

TestSuite(archive, .init = tl_fs_mount_setup, .fini = tl_fs_teardown, .timeout = 90);

/* Closed generations in dir: the highest (0: none) and whether 1..it are
 * all there. */
static uint32_t gens_in(const char *dir, int *contiguous)
{
    char p[PATH_MAX];
    uint32_t hi = 0;
    for (uint32_t g = 1; g < 4096; g++) {
        tl_pathf(p, "%s/edb%08X.log", dir, g);
        if (tl_exists(p))
            hi = g;
    }
    *contiguous = 1;
    for (uint32_t g = 1; g <= hi; g++) {
        tl_pathf(p, "%s/edb%08X.log", dir, g);
        if (!tl_exists(p))
            *contiguous = 0;
    }
    return hi;
}

/* Wait until the archiver has nothing pending and has shipped at least
 * gen; the status then. */
static void wait_archived(uint32_t gen, long ms)
{
    int64_t end = tl_now_ms() + ms;
    for (;;) {
        char pend[64];
        long last = tl_arch_status_gen("archive_last_gen");
        tl_status_get("archive_pending", pend, sizeof pend);
        if (last >= (long)gen && strcmp(pend, "0") == 0)
            return;
        if (tl_now_ms() > end) {
            tl_fs_dump_log();
            cr_assert_fail("not archived up to %08X: last %lx, pending %s", gen, last, pend);
        }
        tl_sleep_ms(50);
    }
}

static void backup(const char *name)
{
    char cmd[PATH_MAX + 64], err[256];
    snprintf(cmd, sizeof cmd, "%s/%s create wait", tl_bk, name);
    cr_assert_eq(tl_ctl_shell("/bin/sh", cmd, err, sizeof err), 0, "backup failed: %s", err);
}

Test(archive, opts_comma_escape)
{
    struct fs_opts o;
    char err[256];
    char *argv[] = { "jetsnapfs", "-o", "archive_command=a\\,b %p,archive_timeout=3,create", "D", "M", NULL };
    cr_assert_eq(opts_parse(5, argv, &o, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(o.archive_command, "a,b %p");
    cr_expect_eq(o.archive_timeout, 3);
    cr_expect_eq(o.create, 1);
    opts_free(&o);
}

Test(archive, in_order_through_cp)
{
    char cmd[PATH_MAX * 2 + 64], a[PATH_MAX], b[PATH_MAX], sh[PATH_MAX * 3];
    int contig;
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f && echo %%f >> %s/archive/order", tl_root, tl_root);
    tl_arch_start("", cmd);
    tl_arch_fill(0, 80);
    backup("full");     /* rolls: every commit above is in a closed generation */
    uint32_t closed = (uint32_t)tl_arch_status_gen("gen_high");
    cr_assert_gt(closed, 4, "only %u generations", closed);
    wait_archived(closed, 20000);
    cr_expect_eq(gens_in(tl_arch, &contig), closed);
    cr_expect(contig, "a generation is missing from the archive");
    /* The order the command ran in: 1, 2, 3, ... */
    tl_pathf(a, "%s/order", tl_arch);
    char *order = tl_slurp(a, NULL), *line = order;
    for (uint32_t g = 1; g <= closed; g++) {
        char want[32];
        snprintf(want, sizeof want, "edb%08X.log\n", g);
        cr_assert(strncmp(line, want, strlen(want)) == 0, "generation %u out of order:\n%s", g, order);
        line += strlen(want);
    }
    free(order);
    /* Archived copies are the files themselves (those still in DBDIR). */
    for (uint32_t g = 1; g <= closed; g++) {
        tl_pathf(a, "%s/edb%08X.log", tl_dbdir, g);
        tl_pathf(b, "%s/edb%08X.log", tl_arch, g);
        if (!tl_exists(a))
            continue;
        snprintf(sh, sizeof sh, "cmp -s %s %s", a, b);
        cr_expect_eq(system(sh), 0, "%s differs", b);
    }
    /* INFO has the section, the same keys as status. */
    {
        tl_client *c = tl_cl_open(tl_sock);
        size_t len;
        tl_cl_cmd(c, "INFO", "archive", NULL);
        char *info = tl_cl_reply(c, &len);
        char want[64];
        snprintf(want, sizeof want, "archive_last_gen:%08X\r\n", closed);
        cr_expect(info != NULL && strstr(info, "# Archive\r\n") != NULL && strstr(info, want) != NULL &&
                  strstr(info, "archive_pending:0\r\n") != NULL && strstr(info, "# Backup") == NULL,
                  "INFO archive:\n%s", info ? info : "");
        free(info);
        tl_cl_close(c);
    }
    /* The state survives a restart: nothing is shipped twice. */
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    char o[PATH_MAX * 3];
    snprintf(o, sizeof o, "archive_command=%s", cmd);
    tl_fs_start_opts(o, 1);
    tl_sleep_ms(1000);
    cr_expect_eq(tl_arch_status_gen("archive_last_gen"), (long)closed);
    tl_pathf(a, "%s/order", tl_arch);
    order = tl_slurp(a, NULL);
    int lines = 0;
    for (char *q = order; *q; q++)
        lines += *q == '\n';
    cr_expect_eq(lines, (int)closed, "shipped again after a restart:\n%s", order);
    free(order);
}

static void outage(const char *extra)
{
    char cmd[PATH_MAX * 2 + 64], p[PATH_MAX], v[1024];
    int contig;
    snprintf(cmd, sizeof cmd, "test -e %s/archive/ok && cp %%p %s/archive/%%f", tl_root, tl_root);
    tl_arch_start(extra, cmd);
    tl_arch_fill(0, 80);
    backup("full");
    uint32_t closed = (uint32_t)tl_arch_status_gen("gen_high");
    cr_assert_gt(closed, 4);
    tl_sleep_ms(1500);   /* at least one attempt failed */
    tl_status_get("archive_last_error", v, sizeof v);
    cr_expect(strstr(v, "edb00000001.log") != NULL, "archive_last_error: %s", v);
    tl_status_get("archive_pending", v, sizeof v);
    cr_expect_geq(atol(v), (long)closed, "archive_pending: %s", v);
    /* Neither the backup's truncation nor circular logging deleted any. */
    backup("full2");
    cr_expect_eq(gens_in(tl_dbdir, &contig), (uint32_t)tl_arch_status_gen("gen_high"));
    cr_expect(contig, "an unarchived generation was deleted");
    tl_pathf(p, "%s/edb%08X.log", tl_dbdir, 1u);
    cr_expect(tl_exists(p), "generation 1 was deleted before it was archived");
    char *ev = tl_mnt_file("events");
    cr_expect(tl_events_have(ev, 260), "no failure event:\n%s", ev);
    if (extra[0] == '\0')
        cr_expect(tl_events_have(ev, 228), "the truncation did not say it stopped:\n%s", ev);
    free(ev);
    /* The command works again: everything arrives, in order, none skipped. */
    tl_pathf(p, "%s/ok", tl_arch);
    tl_spit(p, "");
    closed = (uint32_t)tl_arch_status_gen("gen_high");
    wait_archived(closed, 90000);
    cr_expect_eq(gens_in(tl_arch, &contig), closed);
    cr_expect(contig);
    tl_status_get("archive_last_error", v, sizeof v);
    cr_expect_str_eq(v, "-");
    ev = tl_mnt_file("events");
    cr_expect(tl_events_have(ev, 261), "no recovery event:\n%s", ev);
    free(ev);
    /* Now a backup's truncation may delete them. */
    backup("full3");
    tl_pathf(p, "%s/edb%08X.log", tl_dbdir, 1u);
    if (extra[0] == '\0')
        cr_expect(!tl_exists(p), "generation 1 is archived and should have been truncated");
}

Test(archive, outage_truncate_keeps, .timeout = 150)
{
    outage("");
}

Test(archive, outage_circular_keeps, .timeout = 150)
{
    outage("circular_log");
}

Test(archive, hanging_command_killed)
{
    char cmd[PATH_MAX + 128], p[PATH_MAX], v[1024];
    snprintf(cmd, sizeof cmd, "sleep 300 & echo $! > %s/archive/pid; wait", tl_root);
    tl_arch_start("archive_command_timeout=1", cmd);
    tl_arch_fill(0, 20);
    int64_t end = tl_now_ms() + 15000;
    for (;;) {
        tl_status_get("archive_last_error", v, sizeof v);
        if (strstr(v, "timed out") != NULL)
            break;
        cr_assert_lt(tl_now_ms(), end, "no timeout: %s", v);
        tl_sleep_ms(100);
    }
    tl_pathf(p, "%s/pid", tl_arch);
    char *pid = tl_slurp(p, NULL);
    pid_t child = (pid_t)atol(pid);
    free(pid);
    cr_assert_gt(child, 1);
    /* The whole process group went (reaped by init: allow a moment). */
    end = tl_now_ms() + 5000;
    while (kill(child, 0) == 0 && tl_now_ms() < end)
        tl_sleep_ms(50);
    char stat[64], *s;
    snprintf(stat, sizeof stat, "/proc/%d/stat", (int)child);
    s = tl_slurp(stat, NULL);
    cr_expect(s == NULL || strstr(s, ") Z ") != NULL, "sleep survived its timeout: %s", s ? s : "");
    free(s);
    cr_expect_eq(tl_arch_status_gen("archive_last_gen"), -1);   /* nothing counted archived */
}

Test(archive, clean_environment)
{
    char cmd[PATH_MAX * 3], p[PATH_MAX];
    setenv("JS_ARCHIVE_SECRET", "leak", 1);
    snprintf(cmd, sizeof cmd, "env > %s/archive/env; readlink /proc/$$/fd/0 > %s/archive/stdin; cp %%p %s/archive/%%f",
             tl_root, tl_root, tl_root);
    tl_arch_start("", cmd);
    unsetenv("JS_ARCHIVE_SECRET");
    tl_arch_fill(0, 20);
    wait_archived(1, 20000);
    tl_pathf(p, "%s/env", tl_arch);
    char *env = tl_slurp(p, NULL);
    cr_assert_not_null(env);
    cr_expect(strstr(env, "JS_ARCHIVE_SECRET") == NULL, "environment not clean:\n%s", env);
    cr_expect(strstr(env, "PATH=") != NULL && strstr(env, "HOME=") != NULL, "no PATH/HOME:\n%s", env);
    free(env);
    tl_pathf(p, "%s/stdin", tl_arch);
    char *in = tl_slurp(p, NULL);
    cr_expect(in != NULL && strncmp(in, "/dev/null", 9) == 0, "stdin: %s", in ? in : "");
    free(in);
}

Test(archive, archive_timeout_rolls_only_with_commits)
{
    char cmd[PATH_MAX * 2];
    int contig;
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    /* Creation may leave a closed generation; wait for the quiet state. */
    tl_sleep_ms(1500);
    uint32_t before = gens_in(tl_arch, &contig);
    tl_client *c = tl_cl_open(tl_sock);
    tl_cl_cmd(c, "SET", "one", "1", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_close(c);
    int64_t t0 = tl_now_ms();
    while (gens_in(tl_arch, &contig) <= before) {
        cr_assert_lt(tl_now_ms() - t0, 6000, "the commit was not archived within 6 s");
        tl_sleep_ms(50);
    }
    uint32_t after = gens_in(tl_arch, &contig);
    tl_sleep_ms(3000);   /* no commits: no roll, nothing new */
    cr_expect_eq(gens_in(tl_arch, &contig), after, "an empty generation was rolled");
}

/* ------------------------------------------------------------------ */
/* Restore side: --restore-command and --until-time                     */
/* ------------------------------------------------------------------ */

static void restore_run(struct tl_run *r, const char *target, const char *until)
{
    char set[PATH_MAX], cmd[PATH_MAX + 64];
    tl_pathf(set, "%s/full", tl_bk);
    snprintf(cmd, sizeof cmd, "cp %s/%%f %%p", tl_arch);
    const char *args[] = { "restore", set, target, "--restore-command", cmd,
                           until ? "--until-time" : NULL, until, NULL };
    tl_cli_run(r, NULL, args);
}

Test(archive, point_in_time_restore, .timeout = 120)
{
    char cmd[PATH_MAX * 2], target[PATH_MAX], t_before[64], t_mid[64];
    struct tl_run r;
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    tl_arch_set_key("base", "1");
    tl_rfc3339_us(tl_wall_us() - 2000000, t_before, sizeof t_before);   /* before the set's point */
    backup("full");
    tl_arch_set_key("a1", "1");
    tl_sleep_ms(30);
    tl_rfc3339_us(tl_wall_us(), t_mid, sizeof t_mid);
    tl_sleep_ms(30);
    tl_arch_set_key("a2", "2");
    /* archive_timeout rolls and ships both commits; then lose DBDIR. */
    tl_sleep_ms(3500);
    char v[64];
    tl_status_get("archive_pending", v, sizeof v);
    cr_expect_str_eq(v, "0");
    cr_assert_eq(tl_fs_stop(SIGKILL, NULL) & 0x7f, SIGKILL);
    tl_fs_unmount();
    tl_rmrf(tl_dbdir);

    /* To a time between a1 and a2. */
    tl_pathf(target, "%s/pitr", tl_root);
    restore_run(&r, target, t_mid);
    cr_assert_eq(r.status, 0, "restore failed: %s", r.err);
    tl_run_free(&r);
    {
        const char *args[] = { "dump", target, NULL };
        tl_cli_run(&r, NULL, args);
        cr_expect(strstr(r.out, "base\t1") != NULL, "%s", r.out);
        cr_expect(strstr(r.out, "a1\t1") != NULL, "a1 missing:\n%s", r.out);
        cr_expect(strstr(r.out, "a2\t2") == NULL, "a2 committed after T:\n%s", r.out);
        tl_run_free(&r);
        const char *iargs[] = { "info", target, NULL };
        tl_cli_run(&r, NULL, iargs);
        cr_expect(strstr(r.out, "restored_to: ") != NULL, "%s", r.out);
        tl_run_free(&r);
    }
    /* Everything the archive holds. */
    tl_pathf(target, "%s/all", tl_root);
    restore_run(&r, target, NULL);
    cr_assert_eq(r.status, 0, "restore failed: %s", r.err);
    tl_run_free(&r);
    {
        const char *args[] = { "dump", target, NULL };
        tl_cli_run(&r, NULL, args);
        cr_expect(strstr(r.out, "a1\t1") != NULL && strstr(r.out, "a2\t2") != NULL, "%s", r.out);
        tl_run_free(&r);
    }
    /* Before the set's consistent point: refused. */
    tl_pathf(target, "%s/early", tl_root);
    restore_run(&r, target, t_before);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "-553") != NULL, "%s", r.err);
    tl_run_free(&r);
    /* verify: the archive continues the set's chain. */
    {
        char set[PATH_MAX], rc[PATH_MAX + 64];
        tl_pathf(set, "%s/full", tl_bk);
        snprintf(rc, sizeof rc, "cp %s/%%f %%p", tl_arch);
        const char *args[] = { "verify", set, "--restore-command", rc, NULL };
        tl_cli_run(&r, NULL, args);
        cr_expect_eq(r.status, 0, "verify: %s", r.err);
        tl_run_free(&r);
    }
}

Test(archive, foreign_generation_refused, .timeout = 120)
{
    char cmd[PATH_MAX * 2], target[PATH_MAX], p[PATH_MAX];
    struct tl_run r;
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    tl_arch_set_key("base", "1");
    backup("full");
    tl_arch_set_key("a1", "1");
    tl_sleep_ms(3000);
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    /* Flip a byte in the middle of the first archived generation after the set. */
    js_info info;
    char set[PATH_MAX];
    tl_pathf(set, "%s/full", tl_bk);
    cr_assert_eq(js_info_read(set, &info), 0);
    tl_pathf(p, "%s/edb%08X.log", tl_arch, info.log_gen_max + 1);
    cr_assert(tl_exists(p), "%s not archived", p);
    FILE *f = fopen(p, "r+b");
    fseek(f, 700, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 700, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    tl_pathf(target, "%s/bad", tl_root);
    restore_run(&r, target, NULL);
    cr_expect_eq(r.status, 1, "a corrupted generation was replayed: %s", r.err);
    cr_expect(strstr(r.err, "JET_err") != NULL, "%s", r.err);
    cr_expect(!tl_exists(target) || tl_dir_entries(target) == 0, "the failed restore left files");
    tl_run_free(&r);
}

/*
 * test_archive_restore.c - the restore side of continuous archiving (SPEC
 * 8) end to end: under the monotonic writer through the daemon with
 * archive_timeout=2, losing DBDIR entirely and restoring from the set and
 * the archive gives every acknowledged seq:N with no gap; --until-time at a
 * recorded moment gives exactly the prefix acknowledged by then; a
 * corrupted or foreign generation handed back by --restore-command is
 * refused with its ESE error and nothing is replayed; and the whole round
 * trip through rclone to an S3-compatible server (s3rver) on 127.0.0.1.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bkset.h"
#include "archfix.h"
#include "fsmount.h"
#include "jstool.h"
#include "proc.h"
#include "respcl.h"
#include "testlib.h"

TestSuite(archive_restore, .init = tl_fs_mount_setup, .fini = tl_fs_teardown, .timeout = 150);

static void backup(const char *name)
{
    char cmd[PATH_MAX + 64], err[256];
    snprintf(cmd, sizeof cmd, "%s/%s create wait", tl_bk, name);
    cr_assert_eq(tl_ctl_shell("/bin/sh", cmd, err, sizeof err), 0, "backup failed: %s", err);
}

/* ------------------------------------------------------------------ */
/* The monotonic writer over RESP, with the wall time each transaction  */
/* was sent and acknowledged                                            */
/* ------------------------------------------------------------------ */

#define MAXSEQ (1u << 20)

struct writer {
    _Atomic uint64_t acked;
    atomic_int stop;
    int64_t *sent_us, *ack_us;   /* indexed by N */
    pthread_t th;
};

/* One reply line; its first byte, 0 on EOF. */
static int reply_first(int fd)
{
    char c, first = 0;
    for (int i = 0;; i++) {
        if (read(fd, &c, 1) != 1)
            return 0;
        if (i == 0)
            first = c;
        if (c == '\n')
            return first;
    }
}

/* MSET seq:N v counter N is one transaction, so any consistent copy holds
 * seq:1..counter with no gap. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int fd = tl_resp_connect(tl_sock);
    char req[256], k[32], n[32];
    for (uint64_t i = 1; fd >= 0 && i < MAXSEQ && !atomic_load(&w->stop); i++) {
        snprintf(k, sizeof k, "seq:%llu", (unsigned long long)i);
        snprintf(n, sizeof n, "%llu", (unsigned long long)i);
        int len = snprintf(req, sizeof req, "*5\r\n$4\r\nMSET\r\n$%zu\r\n%s\r\n$1\r\nv\r\n$7\r\ncounter\r\n$%zu\r\n%s\r\n",
                           strlen(k), k, strlen(n), n);
        w->sent_us[i] = tl_wall_us();
        if (write(fd, req, (size_t)len) != len || reply_first(fd) != '+')
            break;
        w->ack_us[i] = tl_wall_us();
        atomic_store(&w->acked, i);
        tl_sleep_ms(2);   /* a steady rate, a few hundred a second */
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* The copy holds seq:1..M with no gap and counter = M: returns M. */
static uint64_t check_prefix(const char *copy)
{
    char bin[PATH_MAX];
    tl_build_bin(bin, "jetsnap");
    char *out = tl_sh_out("%s dump %s", bin, copy);
    cr_assert_not_null(out, "jetsnap dump %s", copy);
    unsigned long long max = 0, count = 0, counter = 0, x;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (sscanf(line, "seq:%llu\t", &x) == 1) {
            count++;
            if (x > max)
                max = x;
        } else if (sscanf(line, "counter\t%llu", &x) == 1) {
            counter = x;
        }
    }
    free(out);
    cr_assert_eq(count, max, "%s: %llu seq keys but the highest is %llu", copy, count, max);
    cr_assert_eq(counter, max, "%s: counter %llu, seq up to %llu", copy, counter, max);
    return max;
}

static void restore_run(struct tl_run *r, const char *target, const char *rcmd, const char *until)
{
    char set[PATH_MAX];
    tl_pathf(set, "%s/full", tl_bk);
    const char *args[] = { "restore", set, target, "--restore-command", rcmd,
                           until ? "--until-time" : NULL, until, NULL };
    tl_cli_run(r, NULL, args);
}

/* The writer runs across a full backup taken under it; archive_timeout=2
 * ships its last commits once it stops; then the daemon is SIGKILLed and
 * DBDIR deleted.  w->acked is the last acknowledged N, *after_bk the
 * last acknowledged when the backup finished. */
static void write_archive_lose(struct writer *w, uint64_t *after_bk)
{
    char cmd[PATH_MAX + 32], v[64];
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=2", cmd);
    w->sent_us = calloc(MAXSEQ, sizeof *w->sent_us);
    w->ack_us = calloc(MAXSEQ, sizeof *w->ack_us);
    cr_assert(w->sent_us && w->ack_us);
    cr_assert_eq(pthread_create(&w->th, NULL, writer_main, w), 0);
    while (atomic_load(&w->acked) < 200)
        tl_sleep_ms(5);
    backup("full");
    *after_bk = atomic_load(&w->acked);
    tl_sleep_ms(3000);
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
    cr_assert_gt(atomic_load(&w->acked), *after_bk + 100, "the writer stalled at %llu",
                 (unsigned long long)atomic_load(&w->acked));
    /* A few seconds: archive_timeout rolls the last generation, it ships. */
    int64_t end = tl_now_ms() + 15000;
    tl_sleep_ms(3000);
    for (;;) {
        tl_status_get("archive_pending", v, sizeof v);
        char lag[64];
        tl_status_get("archive_lag_s", lag, sizeof lag);
        if (strcmp(v, "0") == 0 && strtod(lag, NULL) == 0.0)
            break;
        cr_assert_lt(tl_now_ms(), end, "still pending %s, lag %s", v, lag);
        tl_sleep_ms(100);
    }
    cr_assert_eq(tl_fs_stop(SIGKILL, NULL) & 0x7f, SIGKILL);
    tl_fs_unmount();
    cr_assert_eq(tl_rmrf(tl_dbdir), 0);
}

Test(archive_restore, lost_dbdir_every_acked_seq_gap_free)
{
    struct writer w = { 0 };
    uint64_t after_bk;
    char target[PATH_MAX], rcmd[PATH_MAX + 32];
    struct tl_run r;
    write_archive_lose(&w, &after_bk);
    tl_pathf(target, "%s/restored", tl_root);
    snprintf(rcmd, sizeof rcmd, "cp %s/%%f %%p", tl_arch);
    restore_run(&r, target, rcmd, NULL);
    cr_assert_eq(r.status, 0, "restore failed: %s", r.err);
    tl_run_free(&r);
    uint64_t m = check_prefix(target);
    cr_expect_eq(m, atomic_load(&w.acked), "restored seq 1..%llu, acknowledged 1..%llu", (unsigned long long)m,
                 (unsigned long long)atomic_load(&w.acked));
    free(w.sent_us);
    free(w.ack_us);
}

Test(archive_restore, until_time_gives_the_prefix_acked_by_then)
{
    struct writer w = { 0 };
    uint64_t after_bk;
    char target[PATH_MAX], rcmd[PATH_MAX + 32], t[64];
    struct tl_run r;
    write_archive_lose(&w, &after_bk);
    snprintf(rcmd, sizeof rcmd, "cp %s/%%f %%p", tl_arch);
    uint64_t acked = atomic_load(&w.acked);
    /* Three moments after the set's consistent point (taken between two
     * acknowledgements, as a user's "just before" would be). */
    for (int k = 1; k <= 3; k++) {
        uint64_t n = after_bk + 20 + (acked - after_bk - 40) * (uint64_t)k / 4;
        int64_t at = w.ack_us[n] + (w.sent_us[n + 1] - w.ack_us[n]) / 2;
        /* The restored M: every N acknowledged before T is in; none sent
         * after T is.  Commit times are taken by the daemon, on the same
         * clock; allow 1 ms for its granularity. */
        const int64_t gran = 1000;
        uint64_t lo = 0, hi = 0;
        for (uint64_t i = 1; i <= acked; i++) {
            if (w.ack_us[i] <= at - gran)
                lo = i;
            if (w.sent_us[i] <= at + gran)
                hi = i;
        }
        tl_rfc3339_us(at, t, sizeof t);
        char name[32];
        snprintf(name, sizeof name, "pitr%d", k);
        tl_pathf(target, "%s/%s", tl_root, name);
        restore_run(&r, target, rcmd, t);
        cr_assert_eq(r.status, 0, "restore --until-time %s failed: %s", t, r.err);
        tl_run_free(&r);
        uint64_t m = check_prefix(target);
        cr_expect(m >= lo && m <= hi, "--until-time %s restored 1..%llu; acknowledged by then 1..%llu, sent by then 1..%llu",
                  t, (unsigned long long)m, (unsigned long long)lo, (unsigned long long)hi);
        const char *iargs[] = { "info", target, NULL };
        tl_cli_run(&r, NULL, iargs);
        cr_expect(strstr(r.out, "restored_to: ") != NULL, "%s", r.out);
        tl_run_free(&r);
    }
    free(w.sent_us);
    free(w.ack_us);
}

/* ------------------------------------------------------------------ */
/* Bad generations from --restore-command                               */
/* ------------------------------------------------------------------ */

/* A daemon archiving into ARCH with a set "full" and a few generations
 * after it, stopped; the first generation after the set. */
static uint32_t archive_after_set(void)
{
    char cmd[PATH_MAX + 32];
    js_info info;
    char set[PATH_MAX], p[PATH_MAX];
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "cp %%p %s/archive/%%f", tl_root);
    tl_arch_start("archive_timeout=1", cmd);
    tl_client *c = tl_cl_open(tl_sock);
    tl_cl_cmd(c, "SET", "base", "1", NULL);
    EXPECT(c, "+OK\r\n");
    backup("full");
    tl_cl_cmd(c, "SET", "after", "1", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_close(c);
    tl_pathf(set, "%s/full", tl_bk);
    cr_assert_eq(js_info_read(set, &info), 0);
    uint32_t g = info.log_gen_max + 1;
    tl_pathf(p, "%s/edb%08X.log", tl_arch, g);
    int64_t end = tl_now_ms() + 10000;
    while (!tl_exists(p)) {
        cr_assert_lt(tl_now_ms(), end, "%s not archived", p);
        tl_sleep_ms(50);
    }
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    return g;
}

/* Restore with cp from the archive: refused with want, nothing left. */
static void refused(const char *want, const char *what)
{
    char target[PATH_MAX], rcmd[PATH_MAX + 32];
    struct tl_run r;
    tl_pathf(target, "%s/bad", tl_root);
    snprintf(rcmd, sizeof rcmd, "cp %s/%%f %%p", tl_arch);
    restore_run(&r, target, rcmd, NULL);
    cr_expect_eq(r.status, 1, "a %s generation was replayed: %s", what, r.err);
    cr_expect(strstr(r.err, want) != NULL, "a %s generation: want %s, got: %s", what, want, r.err);
    cr_expect(!tl_exists(target) || tl_dir_entries(target) == 0, "the failed restore left files");
    tl_run_free(&r);
}

Test(archive_restore, corrupted_generation_refused)
{
    char p[PATH_MAX];
    uint32_t g = archive_after_set();
    tl_pathf(p, "%s/edb%08X.log", tl_arch, g);
    /* A bit flipped in the first data block (block 1 of 512 bytes, which
     * holds the SET's records): the block checksum. */
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 512 + 100, SEEK_SET), 0);
    int ch = fgetc(f);
    cr_assert_eq(fseek(f, 512 + 100, SEEK_SET), 0);
    fputc(ch ^ 0x01, f);
    fclose(f);
    refused("-612", "corrupted");
}

Test(archive_restore, foreign_generation_refused)
{
    char p[PATH_MAX], other[PATH_MAX], q[PATH_MAX];
    uint32_t g = archive_after_set();
    /* Another instance with generations up to at least g. */
    tl_pathf(other, "%s/other", tl_root);
    js_params prm = tl_test_params();
    js_instance *inst = tl_create_open(other, &prm);
    tl_genlist l;
    for (int i = 0; i < 40; i++) {
        tl_fill(inst, "x", i * 50, i * 50 + 50, 4000);
        tl_list_gens(other, &l);
        if (tl_gen_has(&l, g))
            break;
    }
    cr_assert_eq(js_close(inst), 0);
    tl_pathf(q, "%s/edb%08X.log", other, g);
    cr_assert(tl_exists(q), "the other instance has no generation %u", g);
    tl_pathf(p, "%s/edb%08X.log", tl_arch, g);
    cr_assert_eq(tl_sh("cp %s %s", q, p), 0);
    refused("-530", "foreign");
}

/* ------------------------------------------------------------------ */
/* Real storage: rclone to an S3-compatible server on 127.0.0.1         */
/* ------------------------------------------------------------------ */

static pid_t s3_pid = -1;

static void s3_teardown(void)
{
    if (s3_pid > 0) {
        kill(s3_pid, SIGTERM);
        waitpid(s3_pid, NULL, 0);
        s3_pid = -1;
    }
    tl_fs_teardown();
}

/* The absolute path of prog on PATH into out; fails the test, saying what
 * to install, when there is none. */
static void need_prog(const char *prog, const char *install, char *out)
{
    char *p = tl_sh_out("command -v %s", prog);
    cr_assert(p != NULL && p[0] == '/',
              "%s is not installed: the S3 round trip needs it (%s; scripts/deps.sh does both)", prog, install);
    p[strcspn(p, "\n")] = '\0';
    snprintf(out, PATH_MAX, "%s", p);
    free(p);
}

static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

Test(archive_restore, rclone_to_s3_lost_dbdir_restored, .fini = s3_teardown)
{
    char s3rver[PATH_MAX], rclone[PATH_MAX], data[PATH_MAX], port_s[16], env[1024], cmd[2048], rcmd[2048];
    char target[PATH_MAX], set[PATH_MAX], v[64];
    struct writer w = { 0 };
    struct tl_run r;
    need_prog("rclone", "apt-get install rclone", rclone);
    need_prog("s3rver", "apt-get install nodejs npm && npm install -g s3rver", s3rver);
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    /* A CA bundle from the environment makes rclone's S3 client refuse its
     * own HTTP transport; plain http to 127.0.0.1 needs none. */
    unsetenv("AWS_CA_BUNDLE");

    /* s3rver on a free port with its data under ROOT and a bucket. */
    int port = free_port();
    snprintf(port_s, sizeof port_s, "%d", port);
    tl_pathf(data, "%s/s3data", tl_root);
    cr_assert_eq(mkdir(data, 0700), 0);
    const char *argv[] = { s3rver, "-d", data, "-a", "127.0.0.1", "-p", port_s, "-s", "--configure-bucket", "bucket", NULL };
    s3_pid = tl_spawn(NULL, 2, 2, argv);
    cr_assert_gt(s3_pid, 0);
    int64_t end = tl_now_ms() + 20000;
    while (!port_open(port)) {
        cr_assert(waitpid(s3_pid, NULL, WNOHANG) == 0, "s3rver exited");
        cr_assert_lt(tl_now_ms(), end, "s3rver does not listen on %d", port);
        tl_sleep_ms(100);
    }

    /* The archive command runs with a clean environment (SPEC 8): the
     * remote is configured by variables set in the command itself. */
    snprintf(env, sizeof env,
             "RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENDPOINT=http://127.0.0.1:%d "
             "RCLONE_CONFIG_S3_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=S3RVER "
             "RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true",
             port);
    snprintf(cmd, sizeof cmd, "%s %s copyto %%p s3:bucket/db/%%f", env, rclone);
    tl_pathf(tl_arch, "%s/archive", tl_root);   /* unused by this test; tl_arch_start() makes it */
    tl_arch_start("archive_timeout=1", cmd);

    /* Writes across a full backup, pushed to the bucket like a nightly one. */
    w.sent_us = calloc(MAXSEQ, sizeof *w.sent_us);
    w.ack_us = calloc(MAXSEQ, sizeof *w.ack_us);
    cr_assert(w.sent_us && w.ack_us);
    cr_assert_eq(pthread_create(&w.th, NULL, writer_main, &w), 0);
    while (atomic_load(&w.acked) < 200)
        tl_sleep_ms(5);
    backup("full");
    tl_pathf(set, "%s/full", tl_bk);
    cr_assert_eq(tl_sh("%s %s copy %s s3:bucket/sets/full", env, rclone, set), 0, "rclone copy of the set");
    tl_sleep_ms(2000);
    atomic_store(&w.stop, 1);
    pthread_join(w.th, NULL);
    uint64_t acked = atomic_load(&w.acked);

    end = tl_now_ms() + 30000;
    tl_sleep_ms(2000);
    for (;;) {
        char lag[64];
        tl_status_get("archive_pending", v, sizeof v);
        tl_status_get("archive_lag_s", lag, sizeof lag);
        if (strcmp(v, "0") == 0 && strtod(lag, NULL) == 0.0)
            break;
        if (tl_now_ms() > end) {
            tl_fs_dump_log();
            cr_assert_fail("not archived to S3: pending %s, lag %s", v, lag);
        }
        tl_sleep_ms(100);
    }

    /* Lose the machine's copy of everything: DBDIR and the local set. */
    cr_assert_eq(tl_fs_stop(SIGKILL, NULL) & 0x7f, SIGKILL);
    tl_fs_unmount();
    cr_assert_eq(tl_rmrf(tl_dbdir), 0);
    cr_assert_eq(tl_rmrf(set), 0);

    /* Bring the set back, roll forward from the bucket. */
    cr_assert_eq(tl_sh("%s %s copy s3:bucket/sets/full %s", env, rclone, set), 0, "rclone copy of the set back");
    snprintf(rcmd, sizeof rcmd, "%s %s copyto s3:bucket/db/%%f %%p", env, rclone);
    tl_pathf(target, "%s/restored", tl_root);
    restore_run(&r, target, rcmd, NULL);
    cr_assert_eq(r.status, 0, "restore from S3 failed: %s", r.err);
    tl_run_free(&r);
    uint64_t m = check_prefix(target);
    cr_expect_eq(m, acked, "restored seq 1..%llu from S3, acknowledged 1..%llu", (unsigned long long)m,
                 (unsigned long long)acked);
    free(w.sent_us);
    free(w.ack_us);
}

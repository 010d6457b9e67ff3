/*
 * test_fs_unit.c - unit tests of the daemon's modules, in-process (linked
 * from the fs/ objects): options, the control grammar, DEST checks and the
 * uid rule, status and events rendering, when a snapshot's reader gets its
 * image stored ahead (snap_ahead.c's stream rule).  The mounted daemon:
 * test_fs.c and test_fs_backup.c.
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
#include "../fs/daemon/mount_int.h"
#include "../fs/daemon/opts.h"
#include "../fs/daemon/status.h"
#include "fsmount.h"
#include "proc.h"
#include "respcl.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Unit: options                                                        */
/* ------------------------------------------------------------------ */

TestSuite(fs_unit, .timeout = 20);

static int parse(struct fs_opts *o, char *err, int argc, ...)
{
    char *argv[32];
    va_list ap;
    int i;

    argv[0] = "jetsnapfs";
    va_start(ap, argc);
    for (i = 1; i <= argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[i] = NULL;
    return opts_parse(argc + 1, argv, o, err, 256);
}

Test(fs_unit, options)
{
    struct fs_opts o;
    char err[256], l1[] = "-ocreate,page_size=16384,log_file_size=64K,circular_log,"
                          "commit=lazy,cache_size=1G,listen=/tmp/a.sock,listen=127.0.0.1:6390,"
                          "backup_root=/srv/bk,allow_other,auto_unmount";
    uint64_t n;

    cr_assert_eq(parse(&o, err, 4, "-f", l1, "db", "mnt"), 0, "%s", err);
    cr_expect(o.create && o.allow_other && o.auto_unmount && o.foreground && !o.debug);
    cr_expect_eq(o.params.page_size, 16384);
    cr_expect_eq(o.params.log_file_size, 65536);
    cr_expect(o.params.circular_log);
    cr_expect_eq(o.params.commit_mode, JS_COMMIT_LAZY);
    cr_expect_eq(o.params.cache_size, 1ull << 30);
    cr_assert_eq(o.n_listen, 2);
    cr_expect_str_eq(o.listen[0], "/tmp/a.sock");
    cr_expect_str_eq(o.listen[1], "127.0.0.1:6390");
    cr_expect_str_eq(o.backup_root, "/srv/bk");
    cr_expect_str_eq(o.dbdir, "db");
    cr_expect_str_eq(o.mountpoint, "mnt");
    cr_expect(!o.snapshot_store_ahead);
    opts_free(&o);

    cr_assert_eq(parse(&o, err, 5, "-d", "-o", "no_log,commit=durable,snapshot_store_ahead", "db", "mnt"), 0);
    cr_expect(o.debug && o.foreground && o.params.no_log && o.snapshot_store_ahead);
    cr_expect_eq(o.params.commit_mode, JS_COMMIT_DURABLE);
    opts_free(&o);

    cr_expect_eq(parse(&o, err, 1, "--help"), 0);
    cr_expect(o.show_help);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 1, "--version"), 0);
    cr_expect(o.show_version);
    opts_free(&o);

    /* Usage errors. */
    cr_expect_eq(parse(&o, err, 3, "-o", "page_size=5000", "db"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "page_size=5000", "db", "mnt"), -1);
    cr_expect(strstr(err, "page_size") != NULL, "%s", err);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "log_file_size=2G", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "log_file_size=32K", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "commit=sometimes", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "bogus", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "create=1", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "snapshot_store_ahead=on", "db", "mnt"), -1);
    cr_expect(strstr(err, "snapshot_store_ahead takes no value") != NULL, "%s", err);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 4, "-o", "backup_root=rel", "db", "mnt"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 3, "db", "mnt", "extra"), -1);
    opts_free(&o);
    cr_expect_eq(parse(&o, err, 3, "-x", "db", "mnt"), -1);
    opts_free(&o);

    cr_expect_eq(opts_parse_size("5M", &n), 0);
    cr_expect_eq(n, 5u << 20);
    cr_expect_eq(opts_parse_size("64k", &n), 0);
    cr_expect_eq(n, 65536);
    cr_expect_eq(opts_parse_size("12X", &n), -1);
    cr_expect_eq(opts_parse_size("", &n), -1);
    cr_expect_eq(opts_parse_size("-1", &n), -1);
}

/* ------------------------------------------------------------------ */
/* Unit: control grammar                                                */
/* ------------------------------------------------------------------ */

static JET_ERR p(const char *s, struct ctl_cmd *c)
{
    return ctl_parse(s, strlen(s), c);
}

Test(fs_unit, control_grammar)
{
    struct ctl_cmd c;
    char big[CTL_CMD_MAX + 2];

    cr_assert_eq(p("/b/n atomic wait\n", &c), JET_errSuccess);
    cr_expect_eq(c.kind, CTL_BACKUP);
    cr_expect_str_eq(c.path, "/b/n");
    cr_expect_eq(c.js_flags, JS_BACKUP_ATOMIC);
    cr_expect(c.wait);
    cr_expect_str_eq(c.flags, "atomic wait");

    cr_assert_eq(p("/b incremental create", &c), JET_errSuccess);
    cr_expect_eq(c.js_flags, JS_BACKUP_INCREMENTAL | JS_BACKUP_CREATE_DIR);
    cr_expect(!c.wait);
    cr_assert_eq(p("/b full", &c), JET_errSuccess);
    cr_expect_eq(c.js_flags, 0);
    cr_assert_eq(p("/b", &c), JET_errSuccess);
    cr_assert_eq(p("truncate\n", &c), JET_errSuccess);
    cr_expect_eq(c.kind, CTL_TRUNCATE);
    cr_assert_eq(p("truncate wait", &c), JET_errSuccess);
    cr_expect(c.wait);
    cr_assert_eq(p("cancel", &c), JET_errSuccess);
    cr_expect_eq(c.kind, CTL_CANCEL);

    cr_expect_eq(p("", &c), JET_errInvalidParameter);
    cr_expect_eq(p("\n", &c), JET_errInvalidParameter);
    cr_expect_eq(p("/b\n\n", &c), JET_errInvalidParameter);
    cr_expect_eq(p("/b\nfull", &c), JET_errInvalidParameter);
    cr_expect_eq(ctl_parse("/b\0x", 4, &c), JET_errInvalidParameter);
    cr_expect_eq(p("rel/path", &c), JET_errInvalidParameter);
    cr_expect_eq(p("/b  full", &c), JET_errInvalidParameter);
    cr_expect_eq(p(" /b", &c), JET_errInvalidParameter);
    cr_expect_eq(p("/b full incremental", &c), JET_errInvalidGrbit);
    cr_expect_eq(p("/b bogus", &c), JET_errInvalidGrbit);
    cr_expect_eq(p("truncate full", &c), JET_errInvalidGrbit);
    cr_expect_eq(p("cancel wait", &c), JET_errInvalidGrbit);
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    cr_expect_eq(ctl_parse(big, CTL_CMD_MAX + 1, &c), JET_errInvalidParameter);
    big[PATH_MAX] = '\0';
    cr_expect_eq(p(big, &c), JET_errInvalidParameter);  /* PATH_MAX bytes */
    cr_expect_eq(js_err_to_errno(JET_errInvalidGrbit), EINVAL);
    cr_expect_eq(js_err_to_errno(JET_errInvalidParameter), EINVAL);
}

/* Random commands built from the grammar's words (and a few wrong ones)
 * against a direct model of SPEC 3; random bytes must never crash. */
Test(fs_unit, control_grammar_model)
{
    static const char *const words[] = { "full", "incremental", "atomic", "create", "wait",
                                         "bogus", "truncate", "cancel", "/b", "rel", "" };
    const int nwords = (int)(sizeof(words) / sizeof(words[0]));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    struct ctl_cmd c;
    char line[256];

    for (int iter = 0; iter < 200000; iter++) {
        int n, k, full = 0, incr = 0, bad_flag = 0, empty_word = 0, wait = 0;
        int head;
        size_t len = 0;
        JET_ERR want, got;

        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        n = 1 + (int)(x % 5);
        head = (int)((x >> 8) % (uint64_t)nwords);
        len = (size_t)snprintf(line, sizeof(line), "%s", words[head]);
        if (words[head][0] == '\0')
            empty_word = 1;
        for (k = 1; k < n; k++) {
            int w = (int)((x >> (12 + 4 * k)) % (uint64_t)nwords);
            len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", words[w]);
            if (words[w][0] == '\0')
                empty_word = 1;
            else if (strcmp(words[w], "full") == 0)
                full = 1;
            else if (strcmp(words[w], "incremental") == 0)
                incr = 1;
            else if (strcmp(words[w], "wait") == 0)
                wait = 1;
            else if (strcmp(words[w], "atomic") != 0 && strcmp(words[w], "create") != 0)
                bad_flag = 1;
            if (strcmp(words[head], "truncate") == 0 && strcmp(words[w], "wait") != 0 &&
                words[w][0] != '\0')
                bad_flag = 1;
        }
        if (x & 1)
            line[len++] = '\n';
        /* The model. */
        if (empty_word || len == 0 || (len == 1 && line[0] == '\n'))
            want = JET_errInvalidParameter;
        else if (strcmp(words[head], "cancel") == 0)
            want = n > 1 ? JET_errInvalidGrbit : JET_errSuccess;
        else if (strcmp(words[head], "truncate") == 0)
            want = bad_flag ? JET_errInvalidGrbit : JET_errSuccess;
        else if (words[head][0] != '/')
            want = JET_errInvalidParameter;
        else if (bad_flag || (full && incr))
            want = JET_errInvalidGrbit;
        else
            want = JET_errSuccess;
        got = ctl_parse(line, len, &c);
        cr_assert_eq(got, want, "'%.*s': got %d, model %d", (int)len, line, got, want);
        if (got == JET_errSuccess && c.kind != CTL_CANCEL)
            cr_assert_eq(c.wait, wait, "'%.*s': wait", (int)len, line);
    }
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = 1 + (size_t)(x % 64);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            line[i] = (char)(x >> 24);
        }
        {
            JET_ERR r = ctl_parse(line, len, &c);
            cr_assert(r == JET_errSuccess || r == JET_errInvalidParameter ||
                      r == JET_errInvalidGrbit);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Unit: DEST checks and the uid rule, without an instance              */
/* ------------------------------------------------------------------ */

static void record_err(void *ctx, int err)
{
    *(int *)ctx = err;
}

Test(fs_unit, control_dest_and_uid)
{
    char base[PATH_MAX], p1[PATH_MAX], p2[PATH_MAX];
    char res[PATH_MAX], line[PATH_MAX + 32];
    struct ctl_config cfg;
    struct ctl *c;
    struct ctl_cmd cmd;
    int e = -1, got = -1;

    tl_tmp_setup("jetsnap-fsu");
    snprintf(base, sizeof base, "%s", tl_tmp);
    tl_pathf(p1, "%s/m", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/db", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/root", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/root/in", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/out", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/root/full", base);
    mkdir(p1, 0755);
    tl_pathf(p1, "%s/root/full/x", base);
    close(open(p1, O_CREAT | O_WRONLY, 0644));
    tl_pathf(p1, "%s/out", base);
    tl_pathf(p2, "%s/root/link", base);
    cr_assert_eq(symlink(p1, p2), 0);
    tl_pathf(p1, "%s/m", base);
    tl_pathf(p2, "%s/tomount", base);
    cr_assert_eq(symlink(p1, p2), 0);

    memset(&cfg, 0, sizeof(cfg));
    cfg.owner = 4242;
    tl_pathf(p1, "%s/db", base);
    cfg.dbdir = p1;
    tl_pathf(p2, "%s/m", base);
    cfg.mountpoint = p2;
    cr_assert_eq(ctl_new(&cfg, NULL, NULL, &c), JET_errSuccess);

    /* Root is refused like anybody but the owner. */
    ctl_submit(c, "/x\n", 3, 0, record_err, &got);
    cr_expect_eq(got, EACCES);
    ctl_submit(c, "/x\n", 3, 1000, record_err, &got);
    cr_expect_eq(got, EACCES);

#define CHECK(path, flags, want_errno) do { \
        snprintf(line, sizeof(line), "%s%s", path, flags); \
        cr_assert_eq(ctl_parse(line, strlen(line), &cmd), JET_errSuccess, "%s", line); \
        e = 0; \
        ctl_check_dest(c, &cmd, res, &e); \
        cr_expect_eq(e, want_errno, "%s: errno %d, wanted %d", line, e, want_errno); \
    } while (0)

    tl_pathf(p1, "%s/out", base);
    CHECK(p1, "", 0);
    cr_expect_str_eq(res, p1);
    tl_pathf(p1, "%s/root/link", base);                /* symlink to out: followed */
    CHECK(p1, "", 0);
    tl_pathf(p1, "%s/out", base);
    cr_expect_str_eq(res, p1);
    tl_pathf(p1, "%s/missing", base);
    CHECK(p1, "", ENOENT);
    CHECK(p1, " create", 0);
    tl_pathf(p1, "%s/root/full", base);
    CHECK(p1, "", ENOTEMPTY);
    CHECK(p1, " atomic", 0);
    tl_pathf(p1, "%s/root/full/x", base);
    CHECK(p1, " atomic", ENOTDIR);
    tl_pathf(p1, "%s/m/sub", base);                    /* inside the mount */
    CHECK(p1, " create", EXDEV);
    tl_pathf(p1, "%s/out/../m/sub", base);
    CHECK(p1, " create", EXDEV);
    tl_pathf(p1, "%s/tomount/sub", base);              /* through a symlink */
    CHECK(p1, " create", EXDEV);
    tl_pathf(p1, "%s/db/x", base);                     /* inside DBDIR */
    CHECK(p1, " create", EXDEV);
    ctl_free(c);

    /* With backup_root: beneath it, no symlink on the way. */
    tl_pathf(res, "%s/root", base);
    cfg.backup_root = res;
    tl_pathf(p1, "%s/db", base);
    cfg.dbdir = p1;
    tl_pathf(p2, "%s/m", base);
    cfg.mountpoint = p2;
    cr_assert_eq(ctl_new(&cfg, NULL, NULL, &c), JET_errSuccess);
    {
        char q[PATH_MAX], r2[PATH_MAX];
        tl_pathf(q, "%s/root/in", base);
        snprintf(line, sizeof(line), "%s", q);
        cr_assert_eq(ctl_parse(line, strlen(line), &cmd), JET_errSuccess);
        e = 0;
        ctl_check_dest(c, &cmd, r2, &e);
        cr_expect_eq(e, 0);
        cr_expect_str_eq(r2, q);
#define CHECK_ROOTED(suffix, flags, want) do { \
        snprintf(line, sizeof(line), "%s%s%s", base, suffix, flags); \
        cr_assert_eq(ctl_parse(line, strlen(line), &cmd), JET_errSuccess, "%s", line); \
        e = 0; \
        ctl_check_dest(c, &cmd, r2, &e); \
        cr_expect_eq(e, want, "%s: errno %d, wanted %d", line, e, want); \
    } while (0)
        CHECK_ROOTED("/root/new", " create", 0);
        CHECK_ROOTED("/root/new/deeper", " create", 0);
        CHECK_ROOTED("/root/new", "", ENOENT);
        CHECK_ROOTED("/out", "", EXDEV);
        CHECK_ROOTED("/root/../out", "", EXDEV);
        CHECK_ROOTED("/root/link", "", EXDEV);
        CHECK_ROOTED("/root/link/sub", " create", EXDEV);
        CHECK_ROOTED("/root/full/x", " atomic", ENOTDIR);
    }
    ctl_free(c);
    tl_rmrf(base);
}

Test(fs_unit, control_gates_before_ready_and_after_shutdown)
{
    char *t = tl_tmpdir("jetsnap-fsg"), d[PATH_MAX], m[PATH_MAX], line[PATH_MAX + 16];
    struct ctl_config cfg;
    struct ctl *c;
    int got = -1;

    tl_pathf(d, "%s/db", t);
    tl_pathf(m, "%s/m", t);
    memset(&cfg, 0, sizeof(cfg));
    cfg.owner = getuid();
    cfg.dbdir = d;
    cfg.mountpoint = m;
    cr_assert_eq(ctl_new(&cfg, NULL, NULL, &c), JET_errSuccess);
    /* Recovery not finished: backups get EAGAIN (JET_errBackupNotAllowedYet),
     * before DEST is even looked at. */
    snprintf(line, sizeof(line), "%s/nowhere\n", t);
    ctl_submit(c, line, strlen(line), getuid(), record_err, &got);
    cr_expect_eq(got, EAGAIN);
    ctl_submit(c, "truncate\n", 9, getuid(), record_err, &got);
    cr_expect_eq(got, EAGAIN);
    cr_expect_eq(js_err_to_errno(JET_errBackupNotAllowedYet), EAGAIN);
    /* Grammar errors still win over the gate. */
    ctl_submit(c, "rel\n", 4, getuid(), record_err, &got);
    cr_expect_eq(got, EINVAL);
    /* Stopping: everything is ESHUTDOWN, cancel included. */
    ctl_shutdown(c);
    ctl_submit(c, line, strlen(line), getuid(), record_err, &got);
    cr_expect_eq(got, ESHUTDOWN);
    ctl_submit(c, "cancel", 6, getuid(), record_err, &got);
    cr_expect_eq(got, ESHUTDOWN);
    ctl_submit(c, "rel", 3, getuid(), record_err, &got);
    cr_expect_eq(got, ESHUTDOWN);
    ctl_join(c);
    ctl_free(c);
    rmdir(t);
    free(t);
}

/* ------------------------------------------------------------------ */
/* Unit: status and events rendering                                    */
/* ------------------------------------------------------------------ */

static const char *const status_keys[] = {
    "state", "job", "operation", "path", "flags", "phase", "progress_percent", "bytes_done",
    "bytes_total", "pages_verified", "log_records_verified", "rate_bytes_per_s", "eta_s",
    "started", "finished", "gen_low", "gen_high", "truncated", "result", "message" };

static void expect_keys_in_order(const char *s)
{
    const char *p = s;
    size_t i;
    for (i = 0; i < sizeof(status_keys) / sizeof(status_keys[0]); i++) {
        size_t n = strlen(status_keys[i]);
        cr_assert(strncmp(p, status_keys[i], n) == 0 && p[n] == ':',
                  "key %zu should be %s:\n%s", i, status_keys[i], s);
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
}

Test(fs_unit, status_render)
{
    struct st_status *st = st_new();
    char buf[ST_RENDER_MAX], v[128], r1[64], r2[64];
    js_progress pr;

    st_render(st, buf, sizeof(buf));
    expect_keys_in_order(buf);
    tl_status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "recovering");
    st_set_recovering(st, 0);
    st_render(st, buf, sizeof(buf));
    tl_status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");

    cr_expect_eq(st_job_begin(st, "full", "/b/x", "atomic wait"), 1);
    memset(&pr, 0, sizeof(pr));
    pr.units_done = 40;
    pr.units_total = 100;
    pr.bytes_done = 4 << 20;
    pr.bytes_total = 10 << 20;
    pr.phase = "copy-database";
    pr.gen_low = 0x1a;
    st_job_progress(st, &pr);
    tl_sleep_ms(50);
    st_render(st, buf, sizeof(buf));
    expect_keys_in_order(buf);
    tl_status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "running");
    tl_status_value(buf, "phase", v, sizeof(v));
    cr_expect_str_eq(v, "copy-database");
    tl_status_value(buf, "progress_percent", v, sizeof(v));
    cr_expect_str_eq(v, "40");
    tl_status_value(buf, "gen_low", v, sizeof(v));
    cr_expect_str_eq(v, "0000001A");
    tl_status_value(buf, "flags", v, sizeof(v));
    cr_expect_str_eq(v, "atomic wait");
    tl_status_value(buf, "rate_bytes_per_s", r1, sizeof(r1));
    cr_expect_neq(strtoull(r1, NULL, 10), 0);
    /* Rate and eta follow the clock between two progress reports. */
    tl_sleep_ms(1100);
    st_render(st, buf, sizeof(buf));
    tl_status_value(buf, "rate_bytes_per_s", r2, sizeof(r2));
    cr_expect_str_neq(r1, r2);

    st_job_end(st, JET_errReadVerifyFailure, "page 7 of jetsnap.edb:\nchecksum mismatch", "none");
    st_render(st, buf, sizeof(buf));
    expect_keys_in_order(buf);
    tl_status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "failed");
    tl_status_value(buf, "result", v, sizeof(v));
    cr_expect_str_eq(v, "-1018 JET_errReadVerifyFailure");
    tl_status_value(buf, "message", v, sizeof(v));
    cr_expect_str_eq(v, "page 7 of jetsnap.edb: checksum mismatch");

    st_job_begin(st, "full", "/b/y", "");
    st_job_end(st, JET_errBackupAbortByServer, "", "none");
    st_render(st, buf, sizeof(buf));
    tl_status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "cancelled");
    tl_status_value(buf, "job", v, sizeof(v));
    cr_expect_str_eq(v, "2");
    st_free(st);
}

Test(fs_unit, events_render)
{
    struct ev_log *l = ev_new(0);
    js_event ev = { 1700000000123, 210, JS_EV_INFO, "full backup started\nto /b" };
    char *s, t[40];
    size_t len;
    int y, mo, d, h, mi, se, ms, id, n = 0;
    char lvl[16];

    ev_format_time(1700000000123, t, sizeof(t));
    cr_expect_str_eq(t, "2023-11-14T22:13:20.123Z");
    ev_sink(l, &ev);
    ev_add(l, 214, JS_EV_ERROR, "backup failed: %s", "x");
    s = ev_render(l, &len);
    cr_assert_not_null(s);
    {
        const char *first = "2023-11-14T22:13:20.123Z 210 info full backup started to /b\n";
        cr_expect(strncmp(s, first, strlen(first)) == 0, "%s", s);
    }
    /* The daemon's own event carries the current time. */
    cr_expect(sscanf(strchr(s, '\n') + 1, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %d %15s", &y, &mo, &d, &h,
                     &mi, &se, &ms, &id, lvl) == 9);
    cr_expect_eq(id, 214);
    cr_expect_str_eq(lvl, "error");
    free(s);
    for (int i = 0; i < 1500; i++)
        ev_add(l, 221, JS_EV_INFO, "n%d", i);
    s = ev_render(l, &len);
    for (char *q = s; (q = strchr(q, '\n')) != NULL; q++)
        n++;
    cr_expect_eq(n, EV_KEEP);
    cr_expect(strstr(s, " n500\n") != NULL && strstr(s, " n499\n") == NULL);
    free(s);
    ev_free(l);
}

/* snap_ahead.c's stream rule, without a session: which READs claim a
 * pusher (the storing itself is fs_snapshot's, mounted). */
Test(fs_unit, storing_ahead_follows_a_reader_in_order_only)
{
    const uint64_t mib = 1u << 20, kib = 1u << 10;
    struct mnt m;
    struct mnt_fh a, b, c;
    memset(&m, 0, sizeof(m));
    m.store_ahead = 1;
    pthread_mutex_init(&m.ahead_lock, NULL);
    pthread_cond_init(&m.ahead_cond, NULL);
    mnt_ahead_open(&a, 1024 * mib);
    mnt_ahead_open(&b, 1024 * mib);
    mnt_ahead_open(&c, 1024 * mib);

    /* A reader of scattered pages never claims one. */
    for (uint64_t i = 0; i < 7; i++)
        cr_assert_eq(mnt_ahead_note(&m, &a, 700 * mib - i * 97 * mib, 4 * kib), 0, "READ %llu", (unsigned long long)i);
    cr_assert_gt(a.ahead.stream, 5);

    /* A first READ a little past the start counts only its own bytes. */
    mnt_ahead_open(&a, 1024 * mib);
    cr_assert_eq(mnt_ahead_note(&m, &a, 7 * mib + 512 * kib, 512 * kib), 0);
    cr_assert_eq(a.ahead.in_order, 512 * kib);
    cr_assert_eq(mnt_ahead_note(&m, &a, 9 * mib, 512 * kib), 0);
    cr_assert_eq(a.ahead.in_order, 1024 * kib);

    /* In order (out of order by a few READs, as workers answer them), from
     * anywhere: a claim once 2 MiB are read, then none while it pushes. */
    mnt_ahead_open(&a, 1024 * mib);
    int claims = 0;
    for (uint64_t off = 0; off < 8 * mib; off += mib) {
        claims += mnt_ahead_note(&m, &a, off + 512 * kib, 512 * kib);
        claims += mnt_ahead_note(&m, &a, off, 512 * kib);
        if (off + mib < 2 * mib)
            cr_assert_eq(claims, 0, "claimed after %llu bytes", (unsigned long long)(off + mib));
    }
    cr_assert_eq(claims, 1);
    cr_assert_eq(a.ahead.front, 8 * mib);
    cr_assert_eq(a.ahead.in_order, 8 * mib);
    cr_assert_eq(m.ahead_pushers, 1);

    /* The reader's READ of a trip wire far past the front, within what was
     * stored, goes on with the stream; one elsewhere starts a new one. */
    a.ahead.stored = 60 * mib;
    uint64_t stream = a.ahead.stream;
    cr_assert_eq(mnt_ahead_note(&m, &a, 56 * mib, 4 * kib), 0);
    cr_assert_eq(a.ahead.stream, stream);
    cr_assert_eq(a.ahead.in_order, 56 * mib + 4 * kib);
    cr_assert_eq(mnt_ahead_note(&m, &a, 300 * mib, 4 * kib), 0);
    cr_assert_eq(a.ahead.stream, stream + 1);
    cr_assert_eq(a.ahead.in_order, 4 * kib);
    cr_assert_eq(a.ahead.stored, 300 * mib + 4 * kib);

    /* Two pushers per mount: a third reader in order gets none. */
    for (uint64_t off = 0; off < 4 * mib; off += 512 * kib) {
        mnt_ahead_note(&m, &b, off, 512 * kib);
        cr_assert_eq(mnt_ahead_note(&m, &c, off, 512 * kib), 0);
    }
    cr_assert_eq(m.ahead_pushers, 2);
    cr_assert(b.ahead.pusher && !c.ahead.pusher);

    /* Nothing past the image's end: a reader of a whole 2 MiB image has
     * read it all by the time its stream is long enough. */
    mnt_ahead_open(&c, 2 * mib);
    m.ahead_pushers = 0;
    for (uint64_t off = 0; off < 2 * mib; off += 512 * kib)
        cr_assert_eq(mnt_ahead_note(&m, &c, off, 512 * kib), 0);

    /* A handle being released never claims one. */
    mnt_ahead_open(&c, 1024 * mib);
    c.ahead.closing = 1;
    for (uint64_t off = 0; off < 8 * mib; off += 512 * kib)
        cr_assert_eq(mnt_ahead_note(&m, &c, off, 512 * kib), 0);

    /* Nor any handle of a mount without -o snapshot_store_ahead. */
    m.store_ahead = 0;
    mnt_ahead_open(&c, 1024 * mib);
    for (uint64_t off = 0; off < 8 * mib; off += 512 * kib)
        cr_assert_eq(mnt_ahead_note(&m, &c, off, 512 * kib), 0);
    cr_assert_eq(m.ahead_pushers, 0);
    pthread_cond_destroy(&m.ahead_cond);
    pthread_mutex_destroy(&m.ahead_lock);
}

/*
 * test_proto.c - the protocol the daemon and the tool share (fs/proto) and
 * the core's live view (core/live.c), in-process.
 *
 *   proto_status   what the daemon writes (st_render through the key table)
 *                  the tool parses back, key by key, for an idle daemon, a
 *                  running job and an ended one; the table and the text agree
 *   proto_size     proto_parse_size accepts and refuses exactly what the two
 *                  parsers it replaces did (the tool's cli_parse_size and the
 *                  daemon's opts_parse_size)
 *   proto_ctl      a refused control write's errno leads the tool back to
 *                  the ESE code the daemon mapped to it
 *   proto_mountinfo  /proc/self/mountinfo lines split into the fields the
 *                  daemon and the tool look at, escapes undone
 *   live           js_live_*: the files shown, their attributes, reads of
 *                  any file at any offset, and a page cut in two by two
 *                  reads comes from one image even when the file changed
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jetsnap.h"
#include "../fs/daemon/opts.h"
#include "../fs/daemon/status.h"
#include "../fs/proto/proto.h"

/* ------------------------------------------------------------------ */
/* Status: the daemon's text, parsed by the tool's parser               */
/* ------------------------------------------------------------------ */

static void render_parse(struct st_status *st, char *buf, size_t cap, const char *val[PST_NKEYS])
{
    size_t n = st_render(st, buf, cap);
    char *p = buf;

    cr_assert(n > 0 && n < cap);
    /* Every key of the table, once, in the table's order. */
    for (int k = 0; k < PST_NKEYS; k++) {
        size_t kl = strlen(proto_st_keys[k]);
        cr_assert(strncmp(p, proto_st_keys[k], kl) == 0 && p[kl] == ':',
                  "line %d is not key %s: %.40s", k, proto_st_keys[k], p);
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    cr_assert_eq(*p, '\0', "nothing after the last key");
    proto_status_parse(buf, val);
}

Test(proto_status, idle_daemon_every_key_unknown)
{
    struct st_status *st = st_new();
    char buf[ST_RENDER_MAX];
    const char *val[PST_NKEYS];

    cr_assert_not_null(st);
    render_parse(st, buf, sizeof buf, val);
    cr_expect_str_eq(val[PST_STATE], "recovering");
    for (int k = 1; k < PST_NKEYS; k++)
        cr_expect_str_eq(val[k], "", "%s is '-' while no job ran", proto_st_keys[k]);
    st_set_recovering(st, 0);
    render_parse(st, buf, sizeof buf, val);
    cr_expect_str_eq(val[PST_STATE], "idle");
    st_free(st);
}

Test(proto_status, job_round_trips)
{
    struct st_status *st = st_new();
    char buf[ST_RENDER_MAX];
    const char *val[PST_NKEYS];
    js_progress p;

    cr_assert_not_null(st);
    cr_assert_eq(st_job_begin(st, "full", "/backups/a b", "atomic create"), 1);
    memset(&p, 0, sizeof p);
    p.units_done = 1;
    p.units_total = 4;
    p.bytes_done = 1000;
    p.bytes_total = 4000;
    p.pages_verified = 7;
    p.log_records_verified = 9;
    p.phase = "copy-database";
    p.gen_low = 0x1a;
    p.gen_high = 0x2b;
    st_job_progress(st, &p);
    render_parse(st, buf, sizeof buf, val);
    cr_expect_str_eq(val[PST_STATE], "running");
    cr_expect_str_eq(val[PST_JOB], "1");
    cr_expect_str_eq(val[PST_OPERATION], "full");
    cr_expect_str_eq(val[PST_PATH], "/backups/a b");
    cr_expect_str_eq(val[PST_FLAGS], "atomic create");
    cr_expect_str_eq(val[PST_PHASE], "copy-database");
    cr_expect_str_eq(val[PST_PROGRESS_PERCENT], "25");
    cr_expect_str_eq(val[PST_BYTES_DONE], "1000");
    cr_expect_str_eq(val[PST_BYTES_TOTAL], "4000");
    cr_expect_str_eq(val[PST_PAGES_VERIFIED], "7");
    cr_expect_str_eq(val[PST_LOG_RECORDS_VERIFIED], "9");
    cr_expect_str_eq(val[PST_GEN_LOW], "0000001A");
    cr_expect_str_eq(val[PST_GEN_HIGH], "0000002B");
    cr_expect_str_eq(val[PST_FINISHED], "");
    cr_expect_str_eq(val[PST_TRUNCATED], "");
    cr_expect_str_eq(val[PST_RESULT], "");
    cr_expect_neq(val[PST_STARTED][0], '\0');

    /* A message of several lines stays one value. */
    st_job_end(st, JET_errDiskFull, "write failed:\nno space", "none");
    render_parse(st, buf, sizeof buf, val);
    cr_expect_str_eq(val[PST_STATE], "failed");
    cr_expect_str_eq(val[PST_MESSAGE], "write failed: no space");
    cr_expect_str_eq(val[PST_TRUNCATED], "none");
    cr_expect_str_eq(val[PST_ETA_S], "0");
    cr_expect_neq(val[PST_FINISHED][0], '\0');
    {
        char want[64];
        snprintf(want, sizeof want, "%d JET_errDiskFull", JET_errDiskFull);
        cr_expect_str_eq(val[PST_RESULT], want);
    }
    st_free(st);
}

Test(proto_status, writer_and_parser_agree_on_any_values)
{
    const char *in[PST_NKEYS], *out[PST_NKEYS];
    char vals[PST_NKEYS][32], buf[4096];

    for (int k = 0; k < PST_NKEYS; k++) {
        snprintf(vals[k], sizeof vals[k], "v%d: x-%d", k, k * 7);
        in[k] = vals[k];
    }
    in[PST_PHASE] = NULL;       /* unknown: written "-", parsed "" */
    in[PST_MESSAGE] = "";
    proto_status_write(buf, sizeof buf, in);
    proto_status_parse(buf, out);
    for (int k = 0; k < PST_NKEYS; k++)
        cr_expect_str_eq(out[k], in[k] ? in[k] : "", "key %s", proto_st_keys[k]);
}

Test(proto_status, parser_ignores_unknown_keys_and_trims)
{
    char text[] = "future_key: 12\nstate:  running \r\nnot a line\njob: -\n";
    const char *val[PST_NKEYS];

    proto_status_parse(text, val);
    cr_expect_str_eq(val[PST_STATE], "running");
    cr_expect_str_eq(val[PST_JOB], "");
    cr_expect_str_eq(val[PST_PATH], "");
}

Test(proto_status, writer_cuts_at_capacity)
{
    const char *in[PST_NKEYS] = { "running" };
    char buf[10];

    cr_expect_eq(proto_status_write(buf, sizeof buf, in), 9);
    cr_expect_str_eq(buf, "state: ru");
    cr_expect_eq(proto_status_write(buf, 0, in), 0);
}

/* ------------------------------------------------------------------ */
/* Sizes                                                                */
/* ------------------------------------------------------------------ */

Test(proto_size, accepts_what_both_old_parsers_accepted)
{
    static const struct { const char *s; uint64_t v; } ok[] = {
        { "0", 0 }, { "8192", 8192 }, { "64K", 64ull << 10 }, { "64k", 64ull << 10 },
        { "5M", 5ull << 20 }, { "5m", 5ull << 20 }, { "1G", 1ull << 30 }, { "1g", 1ull << 30 },
        { "0K", 0 }, { "007", 7 }, { "18446744073709551615", UINT64_MAX },
        { "17179869183G", 17179869183ull << 30 }, { "18014398509481983K", 18014398509481983ull << 10 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1234;
        cr_expect_eq(proto_parse_size(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_expect_eq(v, ok[i].v, "%s", ok[i].s);
        /* The daemon's option parser is the same parser. */
        v = 1234;
        cr_expect_eq(opts_parse_size(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_expect_eq(v, ok[i].v, "%s", ok[i].s);
    }
}

Test(proto_size, refuses_what_both_old_parsers_refused)
{
    static const char *const bad[] = {
        "", "-1", "+1", " 1", "1 ", "K", "1KB", "1T", "1.5M", "0x10", "12X",
        "18446744073709551616", "17179869184G", "18014398509481984K", "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 1234;
        cr_expect_eq(proto_parse_size(bad[i], &v), -1, "%s", bad[i]);
        cr_expect_eq(v, 1234, "%s leaves the output alone", bad[i]);
    }
    cr_expect_eq(proto_parse_size(NULL, NULL), -1);
}

/* ------------------------------------------------------------------ */
/* Control: limits and errnos                                           */
/* ------------------------------------------------------------------ */

/* Mountinfo lines as the kernel writes them: optional fields before the
 * " - " separator, octal escapes in the mount point and the source (a
 * DBDIR with a space), and lines that lack fields are refused. */
Test(proto_mountinfo, fields_and_escapes)
{
    char l1[] = "36 35 0:52 / /mnt/my\\040mnt rw,nosuid,nodev,relatime shared:1 master:2 - fuse.jetsnapfs "
                "jetsnap:/srv/db\\040one rw,user_id=0,group_id=0\n";
    struct proto_mount m;
    cr_assert_eq(proto_mountinfo_line(l1, &m), 0);
    cr_assert_eq(m.minor, 52u);
    cr_assert_str_eq(m.mountpoint, "/mnt/my mnt");
    cr_assert_str_eq(m.fstype, "fuse.jetsnapfs");
    cr_assert_str_eq(m.source, "jetsnap:/srv/db one");

    char l2[] = "22 1 254:1 / / rw,relatime - ext4 /dev/vda rw";
    cr_assert_eq(proto_mountinfo_line(l2, &m), 0);
    cr_assert_eq(m.minor, 1u);
    cr_assert_str_eq(m.mountpoint, "/");
    cr_assert_str_eq(m.source, "/dev/vda");

    /* A backslash not followed by three octal digits stays as it is. */
    char l3[] = "40 22 0:60 / /a\\b\\09 rw - tmpfs x\\400y rw";
    cr_assert_eq(proto_mountinfo_line(l3, &m), 0);
    cr_assert_str_eq(m.mountpoint, "/a\\b\\09");
    cr_assert_str_eq(m.source, "x\\400y");

    char no_sep[] = "36 35 0:52 / /mnt rw shared:1 fuse.jetsnapfs jetsnap:/db rw";
    char no_source[] = "36 35 0:52 / /mnt rw - fuse.jetsnapfs";
    char short_head[] = "36 35 0:52 / - fuse x rw";
    char bad_dev[] = "36 35 zero / /mnt rw - fuse x rw";
    char empty[] = "";
    cr_assert_eq(proto_mountinfo_line(no_sep, &m), -1);
    cr_assert_eq(proto_mountinfo_line(no_source, &m), -1);
    cr_assert_eq(proto_mountinfo_line(short_head, &m), -1);
    cr_assert_eq(proto_mountinfo_line(bad_dev, &m), -1);
    cr_assert_eq(proto_mountinfo_line(empty, &m), -1);
}

Test(proto_ctl, command_limit_is_one_write)
{
    char line[CTL_CMD_MAX + 1];
    struct ctl_cmd c;

    memset(line, 'a', sizeof line);
    line[0] = '/';
    line[CTL_CMD_MAX - 1] = '\n';
    /* The longest command is one write of CTL_CMD_MAX bytes, and a path
     * that fills it still fits PATH_MAX. */
    cr_expect_eq(ctl_parse(line, CTL_CMD_MAX, &c), JET_errSuccess);
    cr_expect_eq(strlen(c.path), CTL_CMD_MAX - 1);
    line[CTL_CMD_MAX - 1] = 'a';
    line[CTL_CMD_MAX] = '\n';
    cr_expect_eq(ctl_parse(line, CTL_CMD_MAX + 1, &c), JET_errInvalidParameter);
    cr_expect_eq(ctl_parse("/b full atomic\n", 15, &c), JET_errSuccess);
    cr_expect_str_eq(c.path, "/b");
    cr_expect_str_eq(c.flags, "full atomic");
}

Test(proto_ctl, errno_leads_back_to_the_code)
{
    static const struct { JET_ERR err; int incremental; } rows[] = {
        { JET_errBackupDirectoryNotEmpty, 0 }, { JET_errBackupInProgress, 0 },
        { JET_errBackupNotAllowedYet, 0 }, { JET_errLoggingDisabled, 0 },
        { JET_errInvalidBackup, 1 }, { JET_errMissingFullBackup, 0 },
        { JET_errBackupAbortByServer, 0 }, { JET_errInvalidParameter, 0 },
        { JET_errTermInProgress, 0 }, { JET_errInvalidPath, 0 },
        { JET_errMakeBackupDirectoryFail, 0 }, { JET_errDiskFull, 0 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *hint = NULL;
        int e = js_err_to_errno(rows[i].err);
        cr_expect_eq(proto_ctl_errno_to_err(e, rows[i].incremental, &hint), rows[i].err,
                     "%s via %s", js_errname(rows[i].err), strerror(e));
        cr_expect_not_null(hint);
    }
    {
        const char *hint = NULL;
        cr_expect_eq(proto_ctl_errno_to_err(ELOOP, 0, &hint), JET_errSuccess);
        cr_expect_str_eq(hint, "");
    }
}

/* ------------------------------------------------------------------ */
/* The live view                                                        */
/* ------------------------------------------------------------------ */

static char live_dir[PATH_MAX];
static js_instance *live_inst;

static void live_setup(void)
{
    js_params p;
    js_session *s;
    char key[32], val[512];

    snprintf(live_dir, sizeof live_dir, "/tmp/jsproto.XXXXXX");
    cr_assert_not_null(mkdtemp(live_dir));
    strcat(live_dir, "/db");
    js_params_default(&p);
    p.page_size = 4096;
    cr_assert_eq(js_create(live_dir, &p), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_open(live_dir, &p, &live_inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_session_open(live_inst, &s), JET_errSuccess);
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        cr_assert_eq(js_put(s, key, strlen(key), val, sizeof val), JET_errSuccess);
    }
    js_session_close(s);
    cr_assert_eq(js_checkpoint(live_inst), JET_errSuccess, "%s", js_errdetail());
}

static void live_teardown(void)
{
    char cmd[PATH_MAX + 32];

    if (live_inst)
        js_close(live_inst);
    live_inst = NULL;
    *strrchr(live_dir, '/') = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", live_dir);
    cr_expect_eq(system(cmd), 0);
}

struct seen { int edb, lock, n; };

static int saw(void *ctx, const char *name)
{
    struct seen *s = ctx;
    s->n++;
    s->edb += strcmp(name, JS_DB_FILE) == 0;
    s->lock += strcmp(name, JS_LOCK_FILE) == 0;
    return 0;
}

Test(live, lists_and_stats_what_the_view_shows, .init = live_setup, .fini = live_teardown)
{
    js_live *lv;
    struct seen s = { 0, 0, 0 };
    struct stat st, direct;
    char path[PATH_MAX + 32];

    cr_assert_eq(js_live_new(live_dir, &lv), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_live_list(lv, saw, &s), JET_errSuccess);
    cr_expect_eq(s.edb, 1);
    cr_expect_eq(s.lock, 0, "the lock file is never shown");
    cr_expect_geq(s.n, 2, "the database and the log");

    cr_assert_eq(js_live_stat(lv, NULL, &st), JET_errSuccess);
    cr_expect(S_ISDIR(st.st_mode));
    cr_assert_eq(js_live_stat(lv, JS_DB_FILE, &st), JET_errSuccess);
    snprintf(path, sizeof path, "%s/%s", live_dir, JS_DB_FILE);
    cr_assert_eq(stat(path, &direct), 0);
    cr_expect_eq(st.st_size, direct.st_size);
    cr_expect_eq(st.st_mode, direct.st_mode);

    cr_expect_eq(js_live_stat(lv, JS_LOCK_FILE, &st), JET_errFileNotFound);
    cr_expect_eq(js_live_stat(lv, "missing", &st), JET_errFileNotFound);
    cr_expect_eq(js_live_stat(lv, "../db", &st), JET_errFileNotFound);
    cr_expect_eq(js_live_stat(lv, "..", &st), JET_errFileNotFound);
    snprintf(path, sizeof path, "%s/sub", live_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_expect_eq(js_live_stat(lv, "sub", &st), JET_errFileNotFound, "not a regular file");
    cr_expect_eq(js_err_to_errno(JET_errFileNotFound), ENOENT);
    {
        js_live_file *f;
        cr_expect_eq(js_live_open(lv, "missing", &f), JET_errFileNotFound);
        cr_expect_eq(js_live_open(lv, "sub", &f), JET_errFileNotFound);
    }
    js_live_free(lv);
}

/* Read a whole file through js_live_read in pieces of `step` bytes. */
static size_t read_pieces(js_live_file *f, js_instance *inst, uint8_t *buf, size_t cap,
                          size_t step)
{
    size_t done = 0, got;

    for (;;) {
        size_t want = cap - done < step ? cap - done : step;
        cr_assert_eq(js_live_read(f, inst, done, buf + done, want, &got), JET_errSuccess,
                     "%s", js_errdetail());
        done += got;
        if (got < want || done == cap)
            return done;
    }
}

Test(live, reads_any_file_at_any_offset, .init = live_setup, .fini = live_teardown)
{
    static const char *const names[] = { JS_DB_FILE, "edb.chk" };
    js_live *lv;

    cr_assert_eq(js_live_new(live_dir, &lv), JET_errSuccess);
    for (size_t n = 0; n < 2; n++) {
        char path[PATH_MAX + 32];
        struct stat sb;
        uint8_t *whole, *pieces;
        size_t len, got;
        int fd;
        js_live_file *f;

        snprintf(path, sizeof path, "%s/%s", live_dir, names[n]);
        cr_assert_eq(stat(path, &sb), 0, "%s", path);
        len = (size_t)sb.st_size;
        whole = malloc(len + 1);
        pieces = malloc(len + 4096);
        cr_assert(whole && pieces);
        fd = open(path, O_RDONLY);
        cr_assert_geq(fd, 0);
        cr_assert_eq(pread(fd, whole, len, 0), (ssize_t)len);
        close(fd);
        cr_assert_eq(js_live_open(lv, names[n], &f), JET_errSuccess, "%s", js_errdetail());
        for (size_t step = 1000; step <= 9000; step += 4000) {
            memset(pieces, 0, len);
            got = read_pieces(f, live_inst, pieces, len + 4096, step);
            cr_expect_eq(got, len, "%s in pieces of %zu: short at end of file", names[n], step);
            cr_expect(memcmp(pieces, whole, len) == 0, "%s in pieces of %zu", names[n], step);
        }
        cr_expect_eq(js_live_read(f, live_inst, len + 10, pieces, 100, &got), JET_errSuccess);
        cr_expect_eq(got, 0, "past the end");
        if (n == 0)
            cr_expect_eq(js_live_read(f, NULL, 0, pieces, 100, &got), JET_errNotInitialized,
                         "jetsnap.edb needs the instance");
        js_live_close(f);
        free(whole);
        free(pieces);
    }
    js_live_free(lv);
}

Test(live, a_page_cut_in_two_comes_from_one_image, .init = live_setup, .fini = live_teardown)
{
    const uint32_t ps = 4096, first = 1, npages = 8, cut = 100;
    uint8_t before[8][4096], after[8][4096], served[8][4096];
    js_live *lv;
    js_live_file *f;
    js_session *s;
    size_t got;
    char key[32], val[512];
    int changed = 0;

    for (uint32_t i = 0; i < npages; i++) {
        cr_assert_eq(js_db_read(live_inst, (uint64_t)(first + i) * ps, before[i], ps, &got),
                     JET_errSuccess);
        cr_assert_eq(got, ps);
    }
    cr_assert_eq(js_live_new(live_dir, &lv), JET_errSuccess);
    cr_assert_eq(js_live_open(lv, JS_DB_FILE, &f), JET_errSuccess);
    /* The first part of each page now ... */
    for (uint32_t i = 0; i < npages; i++) {
        cr_assert_eq(js_live_read(f, live_inst, (uint64_t)(first + i) * ps, served[i], cut, &got),
                     JET_errSuccess);
        cr_assert_eq(got, cut);
    }
    /* ... the pages rewritten meanwhile ... */
    cr_assert_eq(js_session_open(live_inst, &s), JET_errSuccess);
    memset(val, 'w', sizeof val);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        cr_assert_eq(js_put(s, key, strlen(key), val, sizeof val - 1), JET_errSuccess);
    }
    js_session_close(s);
    cr_assert_eq(js_checkpoint(live_inst), JET_errSuccess, "%s", js_errdetail());
    for (uint32_t i = 0; i < npages; i++) {
        cr_assert_eq(js_db_read(live_inst, (uint64_t)(first + i) * ps, after[i], ps, &got),
                     JET_errSuccess);
        changed += memcmp(before[i], after[i], ps) != 0;
    }
    cr_assert_gt(changed, 0, "the test needs a page that changed");
    /* ... and the rest of each page comes from the image of the first read. */
    for (uint32_t i = 0; i < npages; i++) {
        cr_assert_eq(js_live_read(f, live_inst, (uint64_t)(first + i) * ps + cut, served[i] + cut,
                                  ps - cut, &got), JET_errSuccess);
        cr_assert_eq(got, ps - cut);
        cr_expect(memcmp(served[i], before[i], ps) == 0, "page %u is one image", first + i);
    }
    /* Both parts served: the next read sees the page as it is now. */
    cr_assert_eq(js_live_read(f, live_inst, (uint64_t)first * ps, served[0], cut, &got),
                 JET_errSuccess);
    cr_expect(memcmp(served[0], after[0], cut) == 0);
    js_live_close(f);
    js_live_free(lv);
}

Test(proto_ctl, snapshot_commands)
{
    struct ctl_cmd c;
    cr_assert_eq(ctl_parse("snapshot s1\n", 12, &c), JET_errSuccess);
    cr_expect_eq(c.kind, CTL_SNAPSHOT);
    cr_expect_str_eq(c.path, "s1");
    cr_assert_eq(ctl_parse("snapshot-delete a.b-c_9", 23, &c), JET_errSuccess);
    cr_expect_eq(c.kind, CTL_SNAPSHOT_DELETE);
    cr_expect_str_eq(c.path, "a.b-c_9");
    cr_expect_eq(ctl_parse("snapshot", 8, &c), JET_errInvalidParameter);
    cr_expect_eq(ctl_parse("snapshot .x", 11, &c), JET_errInvalidParameter);
    cr_expect_eq(ctl_parse("snapshot a/b", 12, &c), JET_errInvalidParameter);
    cr_expect_eq(ctl_parse("snapshot a wait", 15, &c), JET_errInvalidGrbit);
    cr_expect_eq(ctl_parse("snapshot-delete", 15, &c), JET_errInvalidParameter);
}

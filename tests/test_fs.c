/*
 * test_fs.c - jetsnapfs: torn pages (js_db_read under a committing writer,
 * in-process and through the mount), then the mount for real: layout,
 * live/, read-only files, creation options, listen endpoints, -d.
 * Units of the daemon's modules: test_fs_unit.c; backups through the
 * control file and shutdown: test_fs_backup.c.
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
#include "jstool.h"
#include "proc.h"
#include "respcl.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Torn pages: js_db_read under a committing writer (in-process)        */
/* ------------------------------------------------------------------ */

struct writer_arg {
    js_instance *inst;
    atomic_int stop;
    atomic_long commits;
};

static void *writer_main(void *arg)
{
    struct writer_arg *w = arg;
    js_session *s;
    char key[32], val[6000];
    unsigned i = 0;

    cr_assert_eq(js_session_open(w->inst, &s), JET_errSuccess);
    while (!atomic_load(&w->stop)) {
        snprintf(key, sizeof(key), "w%07u", (i * 7919u) % 20000u);
        memset(val, 'a' + (int)(i % 26), sizeof(val));
        cr_assert_eq(js_put(s, key, strlen(key), val, 100 + (i * 37u) % (sizeof(val) - 100)),
                     JET_errSuccess, "%s", js_errdetail());
        atomic_fetch_add(&w->commits, 1);
        i++;
    }
    js_session_close(s);
    return NULL;
}

/* Verify every whole page inside buf (len bytes read at any off). */
static uint64_t verify_pages(const uint8_t *buf, size_t len, uint64_t off, uint32_t ps)
{
    uint64_t n = 0;
    for (size_t i = (size_t)((ps - off % ps) % ps); i + ps <= len; i += ps) {
        uint32_t pgno = (uint32_t)((off + i) / ps);
        int v = pg_verify(buf + i, ps, pgno);
        if (v == PG_BAD) {
            /* Enough detail to tell a torn write from a stale or foreign page. */
            uint32_t nz = 0, first = 0, last = 0;
            for (uint32_t k = 0; k < ps; k++)
                if (buf[i + k] != 0) {
                    if (nz++ == 0)
                        first = k;
                    last = k;
                }
            cr_assert_fail("page %u read torn or corrupt (read of %zu bytes at %llu; stored "
                           "number %u, type %u, lsn %llu; %u non-zero bytes in [%u, %u])",
                           pgno, len, (unsigned long long)off, pg_pgno(buf + i),
                           pg_type(buf + i), (unsigned long long)pg_lsn(buf + i), nz, first,
                           last);
        }
        n++;
    }
    return n;
}

TestSuite(fs_torn, .timeout = 90);

Test(fs_torn, db_read_never_torn_inprocess)
{
    char *t = tl_tmpdir("jetsnap-fst");
    js_instance *inst;
    struct writer_arg w = { 0 };
    pthread_t th;
    js_info info;
    uint8_t *buf = malloc(1 << 20);
    uint64_t pages = 0;
    int64_t end;

    cr_assert_eq(js_create(t, NULL), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_open(t, NULL, &inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_info_read(t, &info), JET_errSuccess);
    w.inst = inst;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
    end = tl_now_ms() + 10500;
    while (tl_now_ms() < end) {
        uint64_t off = 0;
        size_t got;
        do {
            cr_assert_eq(js_db_read(inst, off, buf, 1 << 20, &got), JET_errSuccess, "%s",
                         js_errdetail());
            pages += verify_pages(buf, got, off, info.page_size);
            off += got;
        } while (got == 1 << 20);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    cr_expect_gt(atomic_load(&w.commits), 100);
    cr_expect_gt(pages, 1000);
    cr_log_info("in-process: %ld commits, %llu pages verified", atomic_load(&w.commits),
                (unsigned long long)pages);
    cr_assert_eq(js_close(inst), JET_errSuccess);
    free(buf);
    tl_rmrf(t);
    free(t);
}

/* The same through the mount, the writer going through the daemon's RESP
 * socket (DBDIR/jetsnap.sock). */
struct resp_writer {
    char sock[PATH_MAX];
    atomic_int stop;
    atomic_long commits;
    atomic_int failed;
};

static void *resp_writer_main(void *arg)
{
    struct resp_writer *w = arg;
    int fd = tl_resp_connect(w->sock);
    static char msg[16384];
    char val[6000], reply[64];
    unsigned i = 0;

    if (fd < 0) {
        atomic_store(&w->failed, 1);
        return NULL;
    }
    while (!atomic_load(&w->stop)) {
        char key[32];
        size_t vlen = 100 + (i * 37u) % (sizeof(val) - 100);
        int n;
        snprintf(key, sizeof(key), "w%07u", (i * 7919u) % 20000u);
        memset(val, 'a' + (int)(i % 26), vlen);
        n = snprintf(msg, sizeof(msg), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(key),
                     key, vlen);
        memcpy(msg + n, val, vlen);
        memcpy(msg + n + vlen, "\r\n", 2);
        if (write(fd, msg, (size_t)n + vlen + 2) != (ssize_t)((size_t)n + vlen + 2) ||
            read(fd, reply, sizeof(reply)) < 5 || strncmp(reply, "+OK\r\n", 5) != 0) {
            atomic_store(&w->failed, 1);
            break;
        }
        atomic_fetch_add(&w->commits, 1);
        i++;
    }
    close(fd);
    return NULL;
}

TestSuite(fs_mount, .init = tl_fs_mount_setup, .fini = tl_fs_teardown, .timeout = 60);

Test(fs_mount, live_db_never_torn_through_mount, .timeout = 90)
{
    struct resp_writer w;
    pthread_t th;
    js_info info;
    char path[PATH_MAX];
    uint8_t *buf = aligned_alloc(4096, 2 << 20);
    uint64_t pages = 0;
    int64_t end;
    int fd;

    tl_fs_start();
    memset(&w, 0, sizeof(w));
    tl_pathf(w.sock, "%s/jetsnap.sock", tl_dbdir);
    tl_fs_wait_ping(w.sock);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_assert_eq(pthread_create(&th, NULL, resp_writer_main, &w), 0);
    tl_pathf(path, "%s/live/%s", tl_mnt, JS_DB_FILE);
    end = tl_now_ms() + 10500;
    for (unsigned pass = 0; tl_now_ms() < end && !atomic_load(&w.failed); pass++) {
        /* Buffers off page alignment and odd sizes make the kernel cut the
         * reads into FUSE requests in the middle of database pages. */
        static const size_t misalign[] = { 0, 16, 100, 4000 };
        static const size_t chunk[] = { 1 << 20, (1 << 20) - 5000, 200 * 1024 + 123, 8192 };
        uint8_t *b = buf + misalign[pass % 4];
        size_t want = chunk[(pass / 4) % 4];
        uint64_t off = 0;
        ssize_t got;
        fd = open(path, O_RDONLY);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        while ((got = pread(fd, b, want, (off_t)off)) > 0) {
            pages += verify_pages(b, (size_t)got, off, info.page_size);
            off += (uint64_t)got;
        }
        cr_assert_eq(got, 0, "read: %s", strerror(errno));
        close(fd);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    cr_assert(!atomic_load(&w.failed), "RESP writer failed (server at %s?)", w.sock);
    cr_expect_gt(atomic_load(&w.commits), 100);
    cr_expect_gt(pages, 1000);
    cr_log_info("mount: %ld commits, %llu pages verified", atomic_load(&w.commits),
                (unsigned long long)pages);
    free(buf);
}

/* ------------------------------------------------------------------ */
/* Mount: layout, live/, read-only                                      */
/* ------------------------------------------------------------------ */

Test(fs_mount, layout_and_live_files)
{
    char names[64][NAME_MAX + 1], lnames[64][NAME_MAX + 1], a[PATH_MAX], b[PATH_MAX];
    struct stat sa, sb;
    int n, ln, i;

    tl_fs_start();
    n = tl_list_dir(tl_mnt, names, 64, 0);
    cr_assert_eq(n, 5);
    cr_expect_str_eq(names[0], "control");
    cr_expect_str_eq(names[1], "events");
    cr_expect_str_eq(names[2], "live");
    cr_expect_str_eq(names[3], "snapshots");   /* SPEC 7 */
    cr_expect_str_eq(names[4], "status");
    tl_pathf(a, "%s/control", tl_mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_expect_eq(sa.st_mode, S_IFREG | 0200);
    cr_expect_eq(sa.st_uid, getuid());
    tl_pathf(a, "%s/status", tl_mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_expect_eq(sa.st_mode, S_IFREG | 0444);
    /* live/ and its files: DBDIR's owners and modes, write bits removed. */
    tl_pathf(a, "%s/live", tl_mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_assert_eq(stat(tl_dbdir, &sb), 0);
    cr_expect_eq(sa.st_mode, S_IFDIR | (sb.st_mode & 0555), "live/ mode %o", sa.st_mode);
    cr_expect_eq(sa.st_uid, sb.st_uid);

    /* live/ = DBDIR's regular files minus the lock file and the
     * doublewrite buffer; the socket (not a regular file) is not listed
     * either. */
    n = tl_list_dir(tl_dbdir, names, 64, 1);
    ln = tl_list_dir(a, lnames, 64, 0);
    {
        int k = 0;
        for (i = 0; i < n; i++)
            if (strcmp(names[i], JS_LOCK_FILE) != 0 && strcmp(names[i], JS_DWB_FILE) != 0 && k++ != i)
                memcpy(names[k - 1], names[i], NAME_MAX + 1);
        n = k;
    }
    cr_assert_eq(ln, n, "live/ has %d files, DBDIR %d", ln, n);
    cr_assert_gt(n, 0);
    for (i = 0; i < n; i++) {
        char *ca, *cb;
        size_t la, lb;
        cr_expect_str_eq(lnames[i], names[i]);
        tl_pathf(a, "%s/live/%s", tl_mnt, names[i]);
        tl_pathf(b, "%s/%s", tl_dbdir, names[i]);
        cr_assert_eq(stat(a, &sa), 0, "%s: %s", a, strerror(errno));
        cr_assert_eq(stat(b, &sb), 0);
        cr_expect_eq(sa.st_size, sb.st_size, "%s size", names[i]);
        cr_expect_eq(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec, "%s mtime", names[i]);
        cr_expect_eq(sa.st_mode, S_IFREG | (sb.st_mode & 0555), "live/%s mode %o", names[i],
                     sa.st_mode);
        cr_expect_eq(sa.st_uid, sb.st_uid);
        cr_expect_eq(sa.st_gid, sb.st_gid);
        ca = tl_slurp(a, &la);
        cb = tl_slurp(b, &lb);
        cr_assert_not_null(ca);
        cr_expect_eq(la, lb, "%s: read %zu bytes, file has %zu", names[i], la, lb);
        cr_expect(la == lb && memcmp(ca, cb, la) == 0, "%s differs", names[i]);
        free(ca);
        free(cb);
    }
    /* cat and cmp through a real shell too. */
    snprintf(a, sizeof(a), "cmp %s/live/%s %s/%s && cat %s/status >/dev/null", tl_mnt, JS_DB_FILE,
             tl_dbdir, JS_DB_FILE, tl_mnt);
    cr_expect_eq(system(a), 0);
    tl_pathf(a, "%s/live/%s", tl_mnt, JS_LOCK_FILE);
    cr_expect_neq(stat(a, &sa), 0);
    cr_expect_eq(errno, ENOENT);
}

/* An offline command on a mounted instance is refused at once, naming the
 * mount to read it through (it does not wait: only a holder no mount shows
 * is waited for, test_cli.c); check runs but points to MOUNTPOINT/live. */
Test(fs_mount, offline_tool_names_the_mount)
{
    struct tl_run r;
    char want[3 * PATH_MAX + 128];

    tl_fs_start();
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    RUN(&r, "dump", tl_dbdir);
    cr_assert_eq(r.status, 1, "%s", r.err);
    snprintf(want, sizeof want, "jetsnap: JET_errDatabaseInUse (-1202): %s is mounted at %s: use %s/live",
             tl_dbdir, tl_mnt, tl_mnt);
    cr_assert(strncmp(r.err, want, strlen(want)) == 0, "%s", r.err);
    cr_assert_null(strstr(r.err, "waiting"), "%s", r.err);
    tl_run_free(&r);
    /* check runs, and says where a consistent read is. */
    RUN(&r, "check", tl_dbdir);
    snprintf(want, sizeof want, "jetsnap: %s is mounted at %s: a page being written can read as torn here; "
             "check %s/live for a consistent read\n", tl_dbdir, tl_mnt, tl_mnt);
    cr_assert(strncmp(r.err, want, strlen(want)) == 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "pages_checked: "), "%s", r.out);
    tl_run_free(&r);
}

Test(fs_mount, every_change_is_erofs)
{
    char f[PATH_MAX], g[PATH_MAX], d[PATH_MAX];
    int fd;

    tl_fs_start();
    tl_pathf(f, "%s/live/%s", tl_mnt, JS_DB_FILE);
    tl_pathf(g, "%s/live/new", tl_mnt);
    tl_pathf(d, "%s/live/dir", tl_mnt);
#define EROFS_ON(expr) do { errno = 0; cr_expect_eq((expr), -1, #expr " succeeded"); \
        cr_expect_eq(errno, EROFS, #expr ": %s", strerror(errno)); } while (0)
    EROFS_ON(open(f, O_WRONLY));
    EROFS_ON(open(f, O_RDWR));
    EROFS_ON(open(f, O_RDONLY | O_TRUNC));
    EROFS_ON(open(g, O_WRONLY | O_CREAT, 0644));
    EROFS_ON(mkdir(d, 0755));
    EROFS_ON(unlink(f));
    EROFS_ON(rename(f, g));
    EROFS_ON(truncate(f, 0));
    EROFS_ON(chmod(f, 0644));
    EROFS_ON(chown(f, 1, 1));
    EROFS_ON(utimensat(AT_FDCWD, f, NULL, 0));
    EROFS_ON(setxattr(f, "user.x", "1", 1, 0));
    EROFS_ON(removexattr(f, "user.x"));
    EROFS_ON(symlink("x", g));
    EROFS_ON(link(f, g));
    tl_pathf(d, "%s/live", tl_mnt);
    EROFS_ON(rmdir(d));
    EROFS_ON(chmod(d, 0777));
    tl_pathf(d, "%s/newdir", tl_mnt);
    EROFS_ON(mkdir(d, 0755));
    tl_pathf(d, "%s/status", tl_mnt);
    EROFS_ON(unlink(d));
    EROFS_ON(truncate(d, 0));
    tl_pathf(d, "%s/newfile", tl_mnt);
    EROFS_ON(open(d, O_WRONLY | O_CREAT, 0644));
    /* Nothing changed underneath. */
    tl_pathf(g, "%s/new", tl_dbdir);
    cr_expect_neq(access(g, F_OK), 0);
    /* O_TRUNC on control is the normal `echo >` open and is accepted. */
    tl_pathf(d, "%s/control", tl_mnt);
    fd = open(d, O_WRONLY | O_TRUNC);
    cr_expect_geq(fd, 0, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    cr_expect_eq(truncate(d, 0), 0, "%s", strerror(errno));
    fd = open(d, O_RDONLY);
    cr_expect_eq(fd, -1);
}

Test(fs_mount, creation_options_and_listen, .timeout = 90)
{
    char o[PATH_MAX * 3], s1[PATH_MAX], s2[PATH_MAX], dest[PATH_MAX], cmd[PATH_MAX + 64], v[256];
    js_info info;

    tl_pathf(s1, "%s/one.sock", tl_root);
    tl_pathf(s2, "%s/two.sock", tl_root);
    snprintf(o, sizeof(o), "create,page_size=16384,log_file_size=128K,commit=lazy,"
             "cache_size=16M,listen=%s,listen=%s", s1, s2);
    tl_fs_start_opts(o, 1);
    cr_assert_eq(js_info_read(tl_dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.page_size, 16384);
    cr_expect_eq(info.log_file_size, 128 * 1024);
    tl_fs_wait_ping(s1);
    tl_fs_wait_ping(s2);
    tl_pathf(cmd, "%s/jetsnap.sock", tl_dbdir);
    cr_expect(access(cmd, F_OK) != 0, "default socket created although listen= was given");
    /* Pages of 16 KiB are read whole through the mount as well. */
    snprintf(cmd, sizeof(cmd), "cmp %s/live/%s %s/%s", tl_mnt, JS_DB_FILE, tl_dbdir, JS_DB_FILE);
    cr_expect_eq(system(cmd), 0);
    tl_pathf(dest, "%s/p16", tl_bk);
    snprintf(cmd, sizeof(cmd), "%s create wait", dest);
    cr_expect_eq(tl_ctl_shell("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    /* INFO's # Backup section is rendered by the same code as `status`. */
    {
        char info_txt[8192] = "";
        cr_assert_eq(tl_resp_info_backup(s2, info_txt, sizeof(info_txt)), 0);
        cr_expect(strstr(info_txt, "state:succeeded") != NULL, "INFO backup:\n%s", info_txt);
        cr_expect(strstr(info_txt, dest) != NULL, "INFO backup:\n%s", info_txt);
    }
    cr_expect_eq(tl_fs_stop(SIGTERM, NULL), 0);
    cr_expect(access(s1, F_OK) != 0, "socket left behind");
}

Test(fs_mount, debug_flag_runs_in_foreground)
{
    char *l;

    tl_fs_spawn("create,auto_unmount", 1);
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    /* -d: libfuse's request trace on stderr, and still the foreground. */
    tl_daemon_pid = fork();
    cr_assert_geq(tl_daemon_pid, 0);
    if (tl_daemon_pid == 0) {
        int fd = open(tl_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(tl_daemon_bin, tl_daemon_bin, "-d", "-o", "auto_unmount", tl_dbdir, tl_mnt, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !tl_is_mounted(tl_mnt); i++)
        tl_sleep_ms(10);
    cr_assert(tl_is_mounted(tl_mnt));
    tl_wait_state("idle", 20000, NULL);
    cr_expect_eq(kill(tl_daemon_pid, 0), 0, "-d daemonized");
    cr_assert_eq(tl_fs_stop(SIGTERM, NULL), 0);
    l = tl_slurp(tl_log, NULL);
    cr_expect(l != NULL && strstr(l, "opcode: LOOKUP") != NULL, "no FUSE trace with -d");
    free(l);
}

/*
 * test_fs.c - jetsnapfs: unit tests of the daemon's modules (in-process,
 * linked from the fs/ objects) and integration tests that mount for real.
 *
 * Integration tests run the daemon binary $BUILD/jetsnapfs (BUILD defaults
 * to "build"; `make check` sets it) as a subprocess with -f and
 * -o auto_unmount, each in its own mkdtemp directory (db/, mnt/, bk/), with
 * a per-test .timeout.  Teardown kills a daemon still running and detaches
 * a mount still there, so a failed test leaves nothing behind.
 *
 * Control commands go through a real shell: /bin/sh for the success path,
 * bash where the test needs the errno (dash's echo reports every write
 * error as "I/O error"; bash prints strerror).  Each refusal is also
 * checked with a direct write(2) for the exact errno.
 *
 * Tests skip, not fail, when /dev/fuse cannot be opened.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "../fs/control.h"
#include "../fs/events.h"
#include "../fs/opts.h"
#include "../fs/status.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static char root[PATH_MAX], dbdir[PATH_MAX], mnt[PATH_MAX], bk[PATH_MAX];
static char daemon_bin[PATH_MAX], logpath[PATH_MAX];
static pid_t daemon_pid = -1;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
}

static int is_mounted(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192], mp[PATH_MAX];
    int found = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "%*u %*u %*s %*s %4095s", mp) == 1 && strcmp(mp, path) == 0 &&
            strstr(line, " - fuse") != NULL)
            found = 1;
    fclose(f);
    return found;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}

static char *slurp(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 1 << 16, len = 0;
    char *buf;

    if (fd < 0)
        return NULL;
    buf = malloc(cap + 1);
    for (;;) {
        ssize_t n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

static char *mnt_file(const char *name)
{
    char p[PATH_MAX];
    pathf(p, "%s/%s", mnt, name);
    return slurp(p, NULL);
}

/* Value of `key: ` in a status rendering, copied into out. */
static int status_value(const char *status, const char *key, char *out, size_t cap)
{
    char pat[64];
    const char *p, *e;

    snprintf(pat, sizeof(pat), "%s: ", key);
    for (p = status; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, pat, strlen(pat)) == 0) {
            p += strlen(pat);
            e = strchr(p, '\n');
            snprintf(out, cap, "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
            return 0;
        }
    return -1;
}

static void dump_log(void);

static void status_get(const char *key, char *out, size_t cap)
{
    char *s = mnt_file("status");
    if (s == NULL) {
        int e = errno;
        dump_log();
        cr_assert_fail("cannot read status: %s", strerror(e));
    }
    cr_assert_eq(status_value(s, key, out, cap), 0, "no key %s in status:\n%s", key, s);
    free(s);
}

/* Wait until status `state` is one of the |-separated words. */
static void wait_state(const char *states, long timeout_ms, char *state_out)
{
    char st[64], pat[80];
    int64_t end = now_ms() + timeout_ms;

    for (;;) {
        status_get("state", st, sizeof(st));
        snprintf(pat, sizeof(pat), "|%s|", st);
        {
            char hay[256];
            snprintf(hay, sizeof(hay), "|%s|", states);
            if (strstr(hay, pat) != NULL)
                break;
        }
        cr_assert(now_ms() < end, "status state stayed '%s', wanted %s", st, states);
        sleep_ms(20);
    }
    if (state_out != NULL)
        strcpy(state_out, st);
}

static int fuse_usable(void)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void setup(void)
{
    char t[] = "/tmp/jetsnap-fs.XXXXXX";
    const char *b = getenv("BUILD");
    char p[PATH_MAX];

    if (!fuse_usable())
        cr_skip_test("/dev/fuse cannot be opened");
    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, root));
    pathf(dbdir, "%s/db", root);
    pathf(mnt, "%s/mnt", root);
    pathf(bk, "%s/bk", root);
    pathf(logpath, "%s/daemon.log", root);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    cr_assert_eq(mkdir(bk, 0755), 0);
    pathf(p, "%s/jetsnapfs", b != NULL && *b != '\0' ? b : "build");
    cr_assert_not_null(realpath(p, daemon_bin), "no daemon at %s (build it first)", p);
    daemon_pid = -1;
}

static void teardown(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
    if (root[0] != '\0') {
        for (int i = 0; i < 50 && is_mounted(mnt); i++) {
            umount2(mnt, MNT_DETACH);
            sleep_ms(20);
        }
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void dump_log(void)
{
    char *l = slurp(logpath, NULL);
    if (l != NULL && *l != '\0')
        fprintf(stderr, "---- daemon output (%s):\n%s----\n", logpath, l);
    free(l);
}

/* Start `jetsnapfs -f -o OPTS DBDIR MNT` (output appended to daemon.log);
 * wait until mounted (a stale mount there does not count: the new daemon
 * must answer) and, if wait_idle, until recovery is over (state idle). */
static void spawn_daemon(const char *o, int wait_idle)
{
    int64_t end = now_ms() + 15000;
    int status;
    struct stat sb;

    daemon_pid = fork();
    cr_assert(daemon_pid >= 0);
    if (daemon_pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(daemon_bin, daemon_bin, "-f", "-o", o, dbdir, mnt, (char *)NULL);
        _exit(127);
    }
    while (!is_mounted(mnt) || stat(mnt, &sb) != 0) {
        if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
            daemon_pid = -1;
            dump_log();
            cr_assert_fail("daemon exited before mounting (status %d)", status);
        }
        cr_assert(now_ms() < end, "not mounted after 15 s");
        sleep_ms(10);
    }
    if (wait_idle)
        wait_state("idle", 30000, NULL);
}

/* The same with auto_unmount added, as every test mount should be. */
static void start_daemon_opts(const char *opts, int wait_idle)
{
    char o[1024];

    snprintf(o, sizeof(o), "auto_unmount%s%s", opts[0] ? "," : "", opts);
    spawn_daemon(o, wait_idle);
}

static void start_daemon(void)
{
    start_daemon_opts("create", 1);
}

/* SIGTERM (or sig) and wait; returns the exit status, *ms the time taken. */
static int stop_daemon(int sig, int64_t *ms)
{
    int64_t t0 = now_ms();
    int status = -1;

    cr_assert(daemon_pid > 0);
    kill(daemon_pid, sig);
    while (waitpid(daemon_pid, &status, WNOHANG) != daemon_pid) {
        if (now_ms() - t0 > 20000) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, &status, 0);
            daemon_pid = -1;
            cr_assert_fail("daemon did not exit within 20 s of signal %d", sig);
        }
        sleep_ms(5);
    }
    daemon_pid = -1;
    if (ms != NULL)
        *ms = now_ms() - t0;
    return status;
}

/* Write cmd to control through a real shell.  shell "/bin/sh" or
 * "/bin/bash"; returns the exit status; stderr into err (may be NULL). */
static int shell_write(const char *shell, const char *cmd, char *err, size_t errcap)
{
    char ctl[PATH_MAX], errfile[PATH_MAX];
    int status;
    pid_t pid;

    pathf(ctl, "%s/control", mnt);
    pathf(errfile, "%s/sh.err", root);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(shell, shell, "-c", "echo \"$1\" > \"$2\"", "sh", cmd, ctl, (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (err != NULL) {
        char *e = slurp(errfile, NULL);
        snprintf(err, errcap, "%s", e != NULL ? e : "");
        free(e);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One write(2) of cmd (with a newline) to control: 0 or errno. */
static int direct_write(const char *cmd)
{
    char ctl[PATH_MAX], line[CTL_CMD_MAX + 2];
    int fd, rc = 0;
    size_t n = (size_t)snprintf(line, sizeof(line), "%s\n", cmd);

    pathf(ctl, "%s/control", mnt);
    fd = open(ctl, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (write(fd, line, n) != (ssize_t)n)
        rc = errno;
    close(fd);
    return rc;
}

/* Expect cmd refused with errno e through bash and through write(2). */
static void expect_refused(const char *cmd, int e)
{
    char err[1024];
    int rc;

    rc = shell_write("/bin/bash", cmd, err, sizeof(err));
    cr_expect_neq(rc, 0, "'%s' accepted through the shell", cmd);
    cr_expect(strstr(err, strerror(e)) != NULL, "'%s': shell said '%s', wanted %s", cmd, err,
              strerror(e));
    rc = direct_write(cmd);
    cr_expect_eq(rc, e, "'%s': errno %d (%s), wanted %d (%s)", cmd, rc, strerror(rc), e,
                 strerror(e));
}

/* Sorted listing of a directory (regular files only unless all). */
static int list_dir(const char *path, char names[][NAME_MAX + 1], int max, int regular_only)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL && n < max) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (regular_only && de->d_type != DT_REG)
            continue;
        snprintf(names[n++], NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, NAME_MAX + 1, (int (*)(const void *, const void *))strcmp);
    return n;
}

static int count_entries(const char *path)
{
    char names[64][NAME_MAX + 1];
    return list_dir(path, names, 64, 0);
}

/* Fill a new instance with n values of vsize bytes (incompressible). */
static void fill_instance(int n, size_t vsize)
{
    js_instance *inst;
    js_session *s;
    js_params prm;
    char key[32];
    uint8_t *v = malloc(vsize);
    uint64_t x = 88172645463325252ull;

    cr_assert_eq(js_create(dbdir, NULL), JET_errSuccess, "%s", js_errdetail());
    js_params_default(&prm);
    prm.commit_mode = JS_COMMIT_LAZY;   /* js_close makes it all durable */
    cr_assert_eq(js_open(dbdir, &prm, &inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_session_open(inst, &s), JET_errSuccess);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < vsize; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[j] = (uint8_t)x;
        }
        snprintf(key, sizeof(key), "k%06d", i);
        cr_assert_eq(js_put(s, key, strlen(key), v, vsize), JET_errSuccess, "%s", js_errdetail());
    }
    js_session_close(s);
    cr_assert_eq(js_close(inst), JET_errSuccess);
    free(v);
}

static int events_have(const char *events, int id)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "Z %d ", id);
    return strstr(events, pat) != NULL;
}

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
    opts_free(&o);

    cr_assert_eq(parse(&o, err, 5, "-d", "-o", "no_log,commit=durable", "db", "mnt"), 0);
    cr_expect(o.debug && o.foreground && o.params.no_log);
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
    char t[] = "/tmp/jetsnap-fsu.XXXXXX", base[PATH_MAX], p1[PATH_MAX], p2[PATH_MAX];
    char res[PATH_MAX], line[PATH_MAX + 32];
    struct ctl_config cfg;
    struct ctl *c;
    struct ctl_cmd cmd;
    int e = -1, got = -1;

    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, base));
    pathf(p1, "%s/m", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/db", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/root", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/root/in", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/out", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/root/full", base);
    mkdir(p1, 0755);
    pathf(p1, "%s/root/full/x", base);
    close(open(p1, O_CREAT | O_WRONLY, 0644));
    pathf(p1, "%s/out", base);
    pathf(p2, "%s/root/link", base);
    cr_assert_eq(symlink(p1, p2), 0);
    pathf(p1, "%s/m", base);
    pathf(p2, "%s/tomount", base);
    cr_assert_eq(symlink(p1, p2), 0);

    memset(&cfg, 0, sizeof(cfg));
    cfg.owner = 4242;
    pathf(p1, "%s/db", base);
    cfg.dbdir = p1;
    pathf(p2, "%s/m", base);
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

    pathf(p1, "%s/out", base);
    CHECK(p1, "", 0);
    cr_expect_str_eq(res, p1);
    pathf(p1, "%s/root/link", base);                /* symlink to out: followed */
    CHECK(p1, "", 0);
    pathf(p1, "%s/out", base);
    cr_expect_str_eq(res, p1);
    pathf(p1, "%s/missing", base);
    CHECK(p1, "", ENOENT);
    CHECK(p1, " create", 0);
    pathf(p1, "%s/root/full", base);
    CHECK(p1, "", ENOTEMPTY);
    CHECK(p1, " atomic", 0);
    pathf(p1, "%s/root/full/x", base);
    CHECK(p1, " atomic", ENOTDIR);
    pathf(p1, "%s/m/sub", base);                    /* inside the mount */
    CHECK(p1, " create", EXDEV);
    pathf(p1, "%s/out/../m/sub", base);
    CHECK(p1, " create", EXDEV);
    pathf(p1, "%s/tomount/sub", base);              /* through a symlink */
    CHECK(p1, " create", EXDEV);
    pathf(p1, "%s/db/x", base);                     /* inside DBDIR */
    CHECK(p1, " create", EXDEV);
    ctl_free(c);

    /* With backup_root: beneath it, no symlink on the way. */
    pathf(res, "%s/root", base);
    cfg.backup_root = res;
    pathf(p1, "%s/db", base);
    cfg.dbdir = p1;
    pathf(p2, "%s/m", base);
    cfg.mountpoint = p2;
    cr_assert_eq(ctl_new(&cfg, NULL, NULL, &c), JET_errSuccess);
    {
        char q[PATH_MAX], r2[PATH_MAX];
        pathf(q, "%s/root/in", base);
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
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

Test(fs_unit, control_gates_before_ready_and_after_shutdown)
{
    char t[] = "/tmp/jetsnap-fsg.XXXXXX", d[PATH_MAX], m[PATH_MAX], line[PATH_MAX + 16];
    struct ctl_config cfg;
    struct ctl *c;
    int got = -1;

    cr_assert_not_null(mkdtemp(t));
    pathf(d, "%s/db", t);
    pathf(m, "%s/m", t);
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
    status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "recovering");
    st_set_recovering(st, 0);
    st_render(st, buf, sizeof(buf));
    status_value(buf, "state", v, sizeof(v));
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
    sleep_ms(50);
    st_render(st, buf, sizeof(buf));
    expect_keys_in_order(buf);
    status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "running");
    status_value(buf, "phase", v, sizeof(v));
    cr_expect_str_eq(v, "copy-database");
    status_value(buf, "progress_percent", v, sizeof(v));
    cr_expect_str_eq(v, "40");
    status_value(buf, "gen_low", v, sizeof(v));
    cr_expect_str_eq(v, "0000001A");
    status_value(buf, "flags", v, sizeof(v));
    cr_expect_str_eq(v, "atomic wait");
    status_value(buf, "rate_bytes_per_s", r1, sizeof(r1));
    cr_expect_neq(strtoull(r1, NULL, 10), 0);
    /* Rate and eta follow the clock between two progress reports. */
    sleep_ms(1100);
    st_render(st, buf, sizeof(buf));
    status_value(buf, "rate_bytes_per_s", r2, sizeof(r2));
    cr_expect_str_neq(r1, r2);

    st_job_end(st, JET_errReadVerifyFailure, "page 7 of jetsnap.edb:\nchecksum mismatch", "none");
    st_render(st, buf, sizeof(buf));
    expect_keys_in_order(buf);
    status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "failed");
    status_value(buf, "result", v, sizeof(v));
    cr_expect_str_eq(v, "-1018 JET_errReadVerifyFailure");
    status_value(buf, "message", v, sizeof(v));
    cr_expect_str_eq(v, "page 7 of jetsnap.edb: checksum mismatch");

    st_job_begin(st, "full", "/b/y", "");
    st_job_end(st, JET_errBackupAbortByServer, "", "none");
    st_render(st, buf, sizeof(buf));
    status_value(buf, "state", v, sizeof(v));
    cr_expect_str_eq(v, "cancelled");
    status_value(buf, "job", v, sizeof(v));
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
    char t[] = "/tmp/jetsnap-fst.XXXXXX";
    js_instance *inst;
    struct writer_arg w = { 0 };
    pthread_t th;
    js_info info;
    uint8_t *buf = malloc(1 << 20);
    uint64_t pages = 0;
    int64_t end;

    cr_assert_not_null(mkdtemp(t));
    cr_assert_eq(js_create(t, NULL), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_open(t, NULL, &inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_info_read(t, &info), JET_errSuccess);
    w.inst = inst;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
    end = now_ms() + 10500;
    while (now_ms() < end) {
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
    nftw(t, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The same through the mount, the writer going through the daemon's RESP
 * socket (DBDIR/jetsnap.sock). */
static int resp_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct resp_writer {
    char sock[PATH_MAX];
    atomic_int stop;
    atomic_long commits;
    atomic_int failed;
};

static void *resp_writer_main(void *arg)
{
    struct resp_writer *w = arg;
    int fd = resp_connect(w->sock);
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

TestSuite(fs_mount, .init = setup, .fini = teardown, .timeout = 60);

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

    start_daemon();
    memset(&w, 0, sizeof(w));
    pathf(w.sock, "%s/jetsnap.sock", dbdir);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_assert_eq(pthread_create(&th, NULL, resp_writer_main, &w), 0);
    pathf(path, "%s/live/%s", mnt, JS_DB_FILE);
    end = now_ms() + 10500;
    for (unsigned pass = 0; now_ms() < end && !atomic_load(&w.failed); pass++) {
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

    start_daemon();
    n = list_dir(mnt, names, 64, 0);
    cr_assert_eq(n, 4);
    cr_expect_str_eq(names[0], "control");
    cr_expect_str_eq(names[1], "events");
    cr_expect_str_eq(names[2], "live");
    cr_expect_str_eq(names[3], "status");
    pathf(a, "%s/control", mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_expect_eq(sa.st_mode, S_IFREG | 0200);
    cr_expect_eq(sa.st_uid, getuid());
    pathf(a, "%s/status", mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_expect_eq(sa.st_mode, S_IFREG | 0444);
    /* live/ and its files: DBDIR's owners and modes, write bits removed. */
    pathf(a, "%s/live", mnt);
    cr_assert_eq(stat(a, &sa), 0);
    cr_assert_eq(stat(dbdir, &sb), 0);
    cr_expect_eq(sa.st_mode, S_IFDIR | (sb.st_mode & 0555), "live/ mode %o", sa.st_mode);
    cr_expect_eq(sa.st_uid, sb.st_uid);

    /* live/ = DBDIR's regular files minus the lock file; the socket (not a
     * regular file) is not listed either. */
    n = list_dir(dbdir, names, 64, 1);
    ln = list_dir(a, lnames, 64, 0);
    {
        int k = 0;
        for (i = 0; i < n; i++)
            if (strcmp(names[i], JS_LOCK_FILE) != 0 && k++ != i)
                memcpy(names[k - 1], names[i], NAME_MAX + 1);
        n = k;
    }
    cr_assert_eq(ln, n, "live/ has %d files, DBDIR %d", ln, n);
    cr_assert_gt(n, 0);
    for (i = 0; i < n; i++) {
        char *ca, *cb;
        size_t la, lb;
        cr_expect_str_eq(lnames[i], names[i]);
        pathf(a, "%s/live/%s", mnt, names[i]);
        pathf(b, "%s/%s", dbdir, names[i]);
        cr_assert_eq(stat(a, &sa), 0, "%s: %s", a, strerror(errno));
        cr_assert_eq(stat(b, &sb), 0);
        cr_expect_eq(sa.st_size, sb.st_size, "%s size", names[i]);
        cr_expect_eq(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec, "%s mtime", names[i]);
        cr_expect_eq(sa.st_mode, S_IFREG | (sb.st_mode & 0555), "live/%s mode %o", names[i],
                     sa.st_mode);
        cr_expect_eq(sa.st_uid, sb.st_uid);
        cr_expect_eq(sa.st_gid, sb.st_gid);
        ca = slurp(a, &la);
        cb = slurp(b, &lb);
        cr_assert_not_null(ca);
        cr_expect_eq(la, lb, "%s: read %zu bytes, file has %zu", names[i], la, lb);
        cr_expect(la == lb && memcmp(ca, cb, la) == 0, "%s differs", names[i]);
        free(ca);
        free(cb);
    }
    /* cat and cmp through a real shell too. */
    snprintf(a, sizeof(a), "cmp %s/live/%s %s/%s && cat %s/status >/dev/null", mnt, JS_DB_FILE,
             dbdir, JS_DB_FILE, mnt);
    cr_expect_eq(system(a), 0);
    pathf(a, "%s/live/%s", mnt, JS_LOCK_FILE);
    cr_expect_neq(stat(a, &sa), 0);
    cr_expect_eq(errno, ENOENT);
}

Test(fs_mount, every_change_is_erofs)
{
    char f[PATH_MAX], g[PATH_MAX], d[PATH_MAX];
    int fd;

    start_daemon();
    pathf(f, "%s/live/%s", mnt, JS_DB_FILE);
    pathf(g, "%s/live/new", mnt);
    pathf(d, "%s/live/dir", mnt);
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
    pathf(d, "%s/live", mnt);
    EROFS_ON(rmdir(d));
    EROFS_ON(chmod(d, 0777));
    pathf(d, "%s/newdir", mnt);
    EROFS_ON(mkdir(d, 0755));
    pathf(d, "%s/status", mnt);
    EROFS_ON(unlink(d));
    EROFS_ON(truncate(d, 0));
    pathf(d, "%s/newfile", mnt);
    EROFS_ON(open(d, O_WRONLY | O_CREAT, 0644));
    /* Nothing changed underneath. */
    pathf(g, "%s/new", dbdir);
    cr_expect_neq(access(g, F_OK), 0);
    /* O_TRUNC on control is the normal `echo >` open and is accepted. */
    pathf(d, "%s/control", mnt);
    fd = open(d, O_WRONLY | O_TRUNC);
    cr_expect_geq(fd, 0, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    cr_expect_eq(truncate(d, 0), 0, "%s", strerror(errno));
    fd = open(d, O_RDONLY);
    cr_expect_eq(fd, -1);
}

static int resp_ping(const char *sock)
{
    char reply[16];
    int fd = resp_connect(sock), ok;

    if (fd < 0)
        return 0;
    ok = write(fd, "PING\r\n", 6) == 6 && read(fd, reply, sizeof(reply)) >= 7 &&
         strncmp(reply, "+PONG\r\n", 7) == 0;
    close(fd);
    return ok;
}

/* INFO backup over RESP, the reply's text into out (NUL-terminated). */
static int resp_info_backup(const char *sock, char *out, size_t cap)
{
    int fd = resp_connect(sock);
    size_t n = 0;

    if (fd < 0)
        return -1;
    if (write(fd, "INFO backup\r\n", 13) != 13) {
        close(fd);
        return -1;
    }
    /* The section ends with its last key, message. */
    while (n + 1 < cap && strstr(out, "message:") == NULL) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    return 0;
}

Test(fs_mount, creation_options_and_listen, .timeout = 90)
{
    char o[PATH_MAX * 3], s1[PATH_MAX], s2[PATH_MAX], dest[PATH_MAX], cmd[PATH_MAX + 64], v[256];
    js_info info;

    pathf(s1, "%s/one.sock", root);
    pathf(s2, "%s/two.sock", root);
    snprintf(o, sizeof(o), "create,page_size=16384,log_file_size=128K,commit=lazy,"
             "cache_size=16M,listen=%s,listen=%s", s1, s2);
    start_daemon_opts(o, 1);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.page_size, 16384);
    cr_expect_eq(info.log_file_size, 128 * 1024);
    cr_expect(resp_ping(s1), "no PONG on %s", s1);
    cr_expect(resp_ping(s2), "no PONG on %s", s2);
    pathf(cmd, "%s/jetsnap.sock", dbdir);
    cr_expect(access(cmd, F_OK) != 0, "default socket created although listen= was given");
    /* Pages of 16 KiB are read whole through the mount as well. */
    snprintf(cmd, sizeof(cmd), "cmp %s/live/%s %s/%s", mnt, JS_DB_FILE, dbdir, JS_DB_FILE);
    cr_expect_eq(system(cmd), 0);
    pathf(dest, "%s/p16", bk);
    snprintf(cmd, sizeof(cmd), "%s create wait", dest);
    cr_expect_eq(shell_write("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    /* INFO's # Backup section is rendered by the same code as `status`. */
    {
        char info_txt[8192] = "";
        cr_assert_eq(resp_info_backup(s2, info_txt, sizeof(info_txt)), 0);
        cr_expect(strstr(info_txt, "state:succeeded") != NULL, "INFO backup:\n%s", info_txt);
        cr_expect(strstr(info_txt, dest) != NULL, "INFO backup:\n%s", info_txt);
    }
    cr_expect_eq(stop_daemon(SIGTERM, NULL), 0);
    cr_expect(access(s1, F_OK) != 0, "socket left behind");
}

Test(fs_mount, debug_flag_runs_in_foreground)
{
    char *l;

    spawn_daemon("create,auto_unmount", 1);
    cr_assert_eq(stop_daemon(SIGTERM, NULL), 0);
    /* -d: libfuse's request trace on stderr, and still the foreground. */
    daemon_pid = fork();
    cr_assert_geq(daemon_pid, 0);
    if (daemon_pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(daemon_bin, daemon_bin, "-d", "-o", "auto_unmount", dbdir, mnt, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !is_mounted(mnt); i++)
        sleep_ms(10);
    cr_assert(is_mounted(mnt));
    wait_state("idle", 20000, NULL);
    cr_expect_eq(kill(daemon_pid, 0), 0, "-d daemonized");
    cr_assert_eq(stop_daemon(SIGTERM, NULL), 0);
    l = slurp(logpath, NULL);
    cr_expect(l != NULL && strstr(l, "opcode: LOOKUP") != NULL, "no FUSE trace with -d");
    free(l);
}

/* ------------------------------------------------------------------ */
/* Mount: backups through the control file                              */
/* ------------------------------------------------------------------ */

Test(fs_mount, backup_wait_through_sh, .timeout = 90)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;
    int rc;

    start_daemon();
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
    pathf(dest, "%s/set1", bk);
    snprintf(cmd, sizeof(cmd), "%s create wait", dest);
    rc = shell_write("/bin/sh", cmd, v, sizeof(v));
    cr_assert_eq(rc, 0, "backup failed: %s", v);
    snprintf(cmd, sizeof(cmd), "cd %s && sha256sum --quiet -c SHA256SUMS", dest);
    cr_expect_eq(system(cmd), 0, "sha256sum -c failed in %s", dest);
    pathf(cmd, "%s/%s", dest, JS_DB_FILE);
    cr_expect_eq(access(cmd, F_OK), 0);
    pathf(cmd, "%s/backup.info", dest);
    cr_expect_eq(access(cmd, F_OK), 0);
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "succeeded");
    status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "0 JET_errSuccess");
    status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "full");
    status_get("path", v, sizeof(v));
    cr_expect_str_eq(v, dest);
    status_get("phase", v, sizeof(v));
    cr_expect_str_eq(v, "done");
    status_get("job", v, sizeof(v));
    cr_expect_str_eq(v, "1");
    ev = mnt_file("events");
    cr_assert_not_null(ev);
    cr_expect(events_have(ev, 210), "no 210:\n%s", ev);
    cr_expect(events_have(ev, 220), "no 220:\n%s", ev);
    cr_expect(events_have(ev, 221), "no 221:\n%s", ev);
    cr_expect(events_have(ev, 223), "no 223:\n%s", ev);
    cr_expect(events_have(ev, 224) || events_have(ev, 225), "no 224/225:\n%s", ev);
    cr_expect(events_have(ev, 213), "no 213:\n%s", ev);
    cr_expect(!events_have(ev, 214), "214 for a good backup:\n%s", ev);
    /* `truncated` agrees with the engine's 224/225. */
    status_get("truncated", v, sizeof(v));
    if (events_have(ev, 225) && !events_have(ev, 224)) {
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
    cr_expect_eq(shell_write("/bin/sh", cmd, v, sizeof(v)), 0, "incremental: %s", v);
    status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "incremental");
    cr_expect_eq(shell_write("/bin/sh", "truncate wait", v, sizeof(v)), 0, "truncate: %s", v);
    status_get("operation", v, sizeof(v));
    cr_expect_str_eq(v, "truncate");
    status_get("job", v, sizeof(v));
    cr_expect_str_eq(v, "3");
}

Test(fs_mount, atomic_backup_twice)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256];

    start_daemon();
    pathf(dest, "%s/at", bk);
    snprintf(cmd, sizeof(cmd), "%s atomic create wait", dest);
    cr_assert_eq(shell_write("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    cr_assert_eq(shell_write("/bin/sh", cmd, v, sizeof(v)), 0, "%s", v);
    snprintf(cmd, sizeof(cmd), "cd %s/new && sha256sum --quiet -c SHA256SUMS", dest);
    cr_expect_eq(system(cmd), 0);
    pathf(cmd, "%s/temp", dest);
    cr_expect_neq(access(cmd, F_OK), 0);
}

/* Each refusal leaves DEST exactly as it was (here: its entry count). */
Test(fs_mount, refusals_through_shell)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], f[PATH_MAX], v[256];

    start_daemon();
    pathf(dest, "%s/missing", bk);
    snprintf(cmd, sizeof(cmd), "%s", dest);
    expect_refused(cmd, ENOENT);
    cr_expect_neq(access(dest, F_OK), 0);

    expect_refused("relative/dest create", EINVAL);
    pathf(dest, "%s/d", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s bogus", dest);
    expect_refused(cmd, EINVAL);
    snprintf(cmd, sizeof(cmd), "%s full incremental", dest);
    expect_refused(cmd, EINVAL);
    cr_expect_eq(count_entries(dest), 0);

    /* Non-empty DEST for a non-atomic full backup. */
    pathf(f, "%s/keep", dest);
    close(open(f, O_CREAT | O_WRONLY, 0600));
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    expect_refused(cmd, ENOTEMPTY);
    cr_expect_eq(count_entries(dest), 1);

    /* Incremental with no full backup before. */
    pathf(dest, "%s/i", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s incremental wait", dest);
    expect_refused(cmd, ENODATA);
    cr_expect_eq(count_entries(dest), 0);

    /* Inside the mount: refused without touching it. */
    snprintf(cmd, sizeof(cmd), "%s/live create", mnt);
    expect_refused(cmd, EXDEV);

    /* DEST is a file. */
    snprintf(cmd, sizeof(cmd), "%s atomic", f);
    expect_refused(cmd, ENOTDIR);

    /* cancel with nothing running. */
    expect_refused("cancel", EINVAL);

    /* Nothing ran: status still idle. */
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
}

Test(fs_mount, refusals_circular_and_no_log)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64];

    start_daemon_opts("create,circular_log", 1);
    pathf(dest, "%s/c", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    cr_assert_eq(direct_write(cmd), 0);  /* a full backup is allowed */
    pathf(dest, "%s/c2", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s incremental", dest);
    expect_refused(cmd, EOPNOTSUPP);
    cr_expect_eq(count_entries(dest), 0);
    cr_expect_eq(stop_daemon(SIGTERM, NULL), 0);

    start_daemon_opts("no_log", 1);
    snprintf(cmd, sizeof(cmd), "%s atomic", dest);
    expect_refused(cmd, EOPNOTSUPP);
    cr_expect_eq(count_entries(dest), 0);
}

Test(fs_mount, backup_root_confines)
{
    char broot[PATH_MAX], out[PATH_MAX], cmd[PATH_MAX + 64], o[PATH_MAX + 64], lnk[PATH_MAX];

    pathf(broot, "%s/root", bk);
    pathf(out, "%s/outside", bk);
    mkdir(broot, 0700);
    mkdir(out, 0700);
    pathf(lnk, "%s/link", broot);
    cr_assert_eq(symlink(out, lnk), 0);
    snprintf(o, sizeof(o), "create,backup_root=%s", broot);
    start_daemon_opts(o, 1);
    snprintf(cmd, sizeof(cmd), "%s", out);
    expect_refused(cmd, EXDEV);
    snprintf(cmd, sizeof(cmd), "%s/../outside", broot);
    expect_refused(cmd, EXDEV);
    snprintf(cmd, sizeof(cmd), "%s", lnk);
    expect_refused(cmd, EXDEV);
    cr_expect_eq(count_entries(out), 0);
    snprintf(cmd, sizeof(cmd), "%s/ok create wait", broot);
    cr_expect_eq(direct_write(cmd), 0);
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
    start_daemon_opts("create,allow_other", 1);
    pathf(dest, "%s/n", bk);
    mkdir(dest, 0777);
    pathf(ctl, "%s/control", mnt);
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
    cr_expect_eq(count_entries(dest), 0);
}

/* A database whose backup runs for a few seconds: backup_max_rate gives
 * the job a lower bound on its length whatever the machine's speed. */
static void start_big(int mib)
{
    fill_instance(mib, 1 << 20);
    start_daemon_opts("backup_max_rate=64M", 1);
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
    pathf(d1, "%s/b1", bk);
    pathf(d2, "%s/b2", bk);
    mkdir(d2, 0700);
    snprintf(cmd, sizeof(cmd), "%s create", d1);
    cr_assert_eq(direct_write(cmd), 0);   /* returns once the job began */
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "running");
    snprintf(cmd, sizeof(cmd), "%s", d2);
    expect_refused(cmd, EBUSY);
    cr_expect_eq(count_entries(d2), 0);
    expect_refused("truncate", EBUSY);
    /* Sample the status until the job ends: any two samples a second or
     * more apart must differ in bytes_done, rate or eta. */
    for (;;) {
        char *st = mnt_file("status");
        cr_assert_not_null(st);
        cr_assert_lt(n, 2000);
        s[n].t = now_ms();
        status_value(st, "state", s[n].state, sizeof(s[n].state));
        status_value(st, "bytes_done", s[n].bytes, sizeof(s[n].bytes));
        status_value(st, "rate_bytes_per_s", s[n].rate, sizeof(s[n].rate));
        status_value(st, "eta_s", s[n].eta, sizeof(s[n].eta));
        free(st);
        if (strcmp(s[n].state, "running") != 0)
            break;
        n++;
        sleep_ms(100);
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
    status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "0 JET_errSuccess");
}

Test(fs_mount, cancel_running_job, .timeout = 120)
{
    char d1[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;

    start_big(160);
    pathf(d1, "%s/c1", bk);
    mkdir(d1, 0700);
    snprintf(cmd, sizeof(cmd), "%s", d1);
    cr_assert_eq(direct_write(cmd), 0);
    cr_assert_eq(shell_write("/bin/sh", "cancel", v, sizeof(v)), 0, "cancel: %s", v);
    wait_state("cancelled|succeeded|failed", 60000, v);
    cr_assert_str_eq(v, "cancelled");
    status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "-801 JET_errBackupAbortByServer");
    ev = mnt_file("events");
    cr_expect(events_have(ev, 215), "no 215:\n%s", ev);
    cr_expect(!events_have(ev, 213), "213 for a cancelled backup:\n%s", ev);
    free(ev);
    cr_expect_eq(count_entries(d1), 0, "a cancelled backup left files in DEST");
}

Test(fs_mount, eio_on_flipped_page, .timeout = 90)
{
    char dest[PATH_MAX], cmd[PATH_MAX + 64], v[256], *ev;
    js_info info;
    int fd;
    uint8_t byte;
    off_t off;

    fill_instance(20, 20000);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_assert_gt(info.pages, PG_FIRST_DATA);
    /* Flip a byte in the middle of the last used page, on disk. */
    off = (off_t)(info.pages - 1) * info.page_size + info.page_size / 2;
    start_daemon_opts("", 1);
    pathf(cmd, "%s/%s", dbdir, JS_DB_FILE);
    fd = open(cmd, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &byte, 1, off), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, off), 1);
    fsync(fd);
    close(fd);
    pathf(dest, "%s/e", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    cr_expect_neq(shell_write("/bin/sh", cmd, v, sizeof(v)), 0);
    cr_expect_eq(count_entries(dest), 0, "a failed backup left files in DEST");
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "failed");
    status_get("result", v, sizeof(v));
    cr_expect_str_eq(v, "-1018 JET_errReadVerifyFailure");
    status_get("message", v, sizeof(v));
    cr_expect(strstr(v, "page") != NULL, "message: %s", v);
    ev = mnt_file("events");
    cr_expect(events_have(ev, 214), "no 214:\n%s", ev);
    cr_expect(!events_have(ev, 213), "213 for a failed backup:\n%s", ev);
    free(ev);
    /* Again with bash and write(2) for the errno. */
    expect_refused(cmd, EIO);
    cr_expect_eq(count_entries(dest), 0);
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
    pathf(dest, "%s/s", bk);
    mkdir(dest, 0700);
    snprintf(cmd, sizeof(cmd), "%s wait", dest);
    pathf(ctl, "%s/control", mnt);
    pathf(errfile, "%s/sh.err", root);
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
        int rc = direct_write(cmd);
        _exit(rc == ESHUTDOWN ? 0 : rc == 0 ? 200 : rc);
    }
    wait_state("running", 20000, NULL);
    cr_assert_eq(stop_daemon(SIGTERM, &ms), 0);
    cr_expect_lt(ms, 5000, "shutdown took %lld ms", (long long)ms);
    cr_assert_eq(waitpid(w, &status, 0), w);
    if (through_shell) {
        char *e = slurp(errfile, NULL);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "the shell write succeeded");
        cr_expect(e != NULL && strstr(e, strerror(ESHUTDOWN)) != NULL, "shell said '%s'", e);
        free(e);
    } else {
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the waiting writer got %d, wanted ESHUTDOWN", WEXITSTATUS(status));
    }
    cr_expect_eq(count_entries(dest), 0);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
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

    start_daemon();
    pathf(p, "%s/live/%s", mnt, JS_DB_FILE);
    fd1 = open(p, O_RDONLY);
    cr_assert_geq(fd1, 0);
    cr_assert_gt(read(fd1, buf, sizeof(buf)), 0);
    pathf(p, "%s/status", mnt);
    fd2 = open(p, O_RDONLY);
    cr_assert_geq(fd2, 0);
    status = stop_daemon(sig, &ms);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    cr_expect_lt(ms, 5000, "shutdown with an open handle took %lld ms", (long long)ms);
    cr_log_info("signal %d with two open handles: exited after %lld ms", sig, (long long)ms);
    close(fd1);
    close(fd2);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
    for (int i = 0; i < 100 && is_mounted(mnt); i++)
        sleep_ms(20);
    cr_expect(!is_mounted(mnt));
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

    start_daemon();
    snprintf(cmd, sizeof(cmd), "fusermount3 -u %s", mnt);
    cr_assert_eq(system(cmd), 0);
    t0 = now_ms();
    while (waitpid(daemon_pid, &status, WNOHANG) != daemon_pid) {
        cr_assert_lt(now_ms() - t0, 5000, "daemon still running 5 s after fusermount3 -u");
        sleep_ms(10);
    }
    daemon_pid = -1;
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
}

Test(fs_mount, sigkill_then_restart_recovers)
{
    js_info info;
    char v[64];

    start_daemon();
    cr_assert_eq(stop_daemon(SIGKILL, NULL) & 0x7f, SIGKILL);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_DIRTY_SHUTDOWN);
    /* auto_unmount's helper removes the dead mount; wait for it so it
     * cannot remove the next one. */
    for (int i = 0; i < 250 && is_mounted(mnt); i++)
        sleep_ms(20);
    start_daemon_opts("", 1);
    status_get("state", v, sizeof(v));
    cr_expect_str_eq(v, "idle");
    cr_assert_eq(stop_daemon(SIGTERM, NULL), 0);
    cr_assert_eq(js_info_read(dbdir, &info), JET_errSuccess);
    cr_expect_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
}

/* Without auto_unmount a killed daemon leaves ENOTCONN; the next start
 * clears it. */
Test(fs_mount, stale_mount_is_cleared)
{
    struct stat sb;
    int status;

    spawn_daemon("create", 1);
    kill(daemon_pid, SIGKILL);
    waitpid(daemon_pid, &status, 0);
    daemon_pid = -1;
    cr_assert(is_mounted(mnt));
    cr_expect_eq(stat(mnt, &sb), -1);
    cr_expect_eq(errno, ENOTCONN);
    start_daemon_opts("", 1);
    cr_expect_eq(stat(mnt, &sb), 0);
    cr_assert_eq(stop_daemon(SIGTERM, NULL), 0);
    for (int i = 0; i < 100 && is_mounted(mnt); i++)
        sleep_ms(20);
    cr_expect(!is_mounted(mnt), "mount left behind");
}

/* Daemon mode: the parent returns once the mount answers. */
Test(fs_mount, daemonizes_after_mount)
{
    char cmd[PATH_MAX * 3], out[PATH_MAX];
    char *o;
    js_info info;
    int64_t t0;

    pathf(out, "%s/ls.out", root);
    snprintf(cmd, sizeof(cmd), "%s -o create,auto_unmount %s %s && ls %s > %s", daemon_bin,
             dbdir, mnt, mnt, out);
    cr_assert_eq(system(cmd), 0);
    o = slurp(out, NULL);
    cr_expect_str_eq(o, "control\nevents\nlive\nstatus\n");
    free(o);
    wait_state("idle", 20000, NULL);
    snprintf(cmd, sizeof(cmd), "fusermount3 -u %s", mnt);
    cr_assert_eq(system(cmd), 0);
    t0 = now_ms();
    for (;;) {
        if (js_info_read(dbdir, &info) == JET_errSuccess && info.state == JS_DB_CLEAN_SHUTDOWN)
            break;
        cr_assert_lt(now_ms() - t0, 5000, "not clean 5 s after fusermount3 -u");
        sleep_ms(20);
    }
}

Test(fs_mount, refuses_nesting_and_bad_usage)
{
    char cmd[PATH_MAX * 3], inner[PATH_MAX];
    int rc;

    mkdir(dbdir, 0755);
    pathf(inner, "%s/m", dbdir);
    mkdir(inner, 0755);
    snprintf(cmd, sizeof(cmd), "%s -f -o create %s %s 2>/dev/null", daemon_bin, dbdir, inner);
    rc = system(cmd);
    cr_expect_eq(WEXITSTATUS(rc), 1);
    cr_expect(!is_mounted(inner));
    pathf(inner, "%s/db", mnt);
    snprintf(cmd, sizeof(cmd), "%s -f -o create %s %s 2>/dev/null", daemon_bin, inner, mnt);
    rc = system(cmd);
    cr_expect_eq(WEXITSTATUS(rc), 1);
    cr_expect(!is_mounted(mnt));
    snprintf(cmd, sizeof(cmd), "%s -o bogus %s %s 2>/dev/null", daemon_bin, dbdir, mnt);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s --help >/dev/null", daemon_bin);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof(cmd), "%s --version | grep -q jetsnapfs", daemon_bin);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 0);
    /* Missing instance without create: exit 1, nothing mounted. */
    pathf(inner, "%s/nothing", root);
    snprintf(cmd, sizeof(cmd), "%s %s %s 2>/dev/null", daemon_bin, inner, mnt);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
    cr_expect(!is_mounted(mnt));
}

/*
 * test_cli.c - the `jetsnap` tool, run as a subprocess (SPEC section 1).
 *
 * The binary is $BUILD/jetsnap (BUILD defaults to "build"; `make check` sets
 * it).  Each test works in its own mkdtemp directory.  Offline commands run
 * against real instances; backup sets for restore/verify are made through
 * the library in-process.  `backup`/`truncate` are driven against a fake
 * mount: a plain directory with a regular `control` file the tool writes and
 * a `status` file this test rewrites (atomically, by rename) to play the
 * daemon, so the status-following logic, the Ctrl-C handling and the exit
 * codes are covered without FUSE.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

static char tmp[PATH_MAX];      /* this test's mkdtemp directory (real path) */
static char bin[PATH_MAX];      /* absolute path of the jetsnap binary */

struct run {
    int status;                 /* exit status, or 128+signal */
    char *out, *err;
    size_t outlen;
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    remove(p);
    return 0;
}

static void setup(void)
{
    char t[] = "/tmp/jetsnap-cli.XXXXXX";
    const char *b = getenv("BUILD");
    char path[PATH_MAX];

    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, tmp));
    snprintf(path, sizeof path, "%s/jetsnap", b && *b ? b : "build");
    cr_assert_not_null(realpath(path, bin), "no jetsnap binary at %s (build it first)", path);
}

static void teardown(void)
{
    if (tmp[0])
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* A path under tmp.  The result lives in one of 32 rotating buffers: plenty
 * for one test, which copies any path it keeps using for longer. */
static char *path_in(const char *name)
{
    static char bufs[32][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 32];

    /* Checking the length also tells the compiler truncation is handled. */
    cr_assert_lt(snprintf(p, PATH_MAX, "%s/%s", tmp, name), PATH_MAX);
    return p;
}

/* pread, not read: the descriptor may be shared with a running child, and
 * moving the shared offset would make it overwrite its own output. */
static char *slurp_fd(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;

    cr_assert_not_null(buf);
    while ((r = pread(fd, buf + n, cap - n, (off_t)n)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    char *s;

    if (fd < 0)
        return NULL;
    s = slurp_fd(fd, len);
    close(fd);
    return s;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Start jetsnap with stdin from /dev/null and stdout/stderr into the given
 * descriptors, in directory cwd (NULL: ours). */
static pid_t spawn(const char *cwd, int out, int err, const char *const *args)
{
    const char *argv[32];
    int n = 0;
    pid_t pid;

    argv[n++] = bin;
    while (args[n - 1] && n < 31) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);

        if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid at most timeout_ms; kill it if it overstays.  Returns the
 * exit status, 128+signal if it was killed by one. */
static int reap(pid_t pid, int timeout_ms)
{
    int st = 0;

    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            break;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("jetsnap did not finish within %d ms", timeout_ms);
        }
        usleep(10000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int tmpfd(void)
{
    int fd = memfd_create("jetsnap-cli-output", MFD_CLOEXEC);

    cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
    return fd;
}

static void run_in(struct run *r, const char *cwd, const char *const *args)
{
    int out = tmpfd(), err = tmpfd();
    pid_t pid = spawn(cwd, out, err, args);

    r->status = reap(pid, 60000);
    r->out = slurp_fd(out, &r->outlen);
    r->err = slurp_fd(err, NULL);
    close(out);
    close(err);
}

#define RUN(r, ...) run_in((r), NULL, (const char *const[]){ __VA_ARGS__, NULL })

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Run and require exit 0. */
#define OK(...) do {                                                            \
        struct run r_;                                                          \
        RUN(&r_, __VA_ARGS__);                                                  \
        cr_assert_eq(r_.status, 0, "exit %d, stderr: %s", r_.status, r_.err);   \
        run_free(&r_);                                                          \
    } while (0)

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The test's own escaper (independent of the tool's), for the round trips. */
static void esc(char *dst, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];

        if (c == '\\')
            dst += sprintf(dst, "\\\\");
        else if (c == '\t')
            dst += sprintf(dst, "\\t");
        else if (c == '\n')
            dst += sprintf(dst, "\\n");
        else if (c == '\r')
            dst += sprintf(dst, "\\r");
        else if (c < 0x20 || c > 0x7e)
            dst += sprintf(dst, "\\x%02x", c);
        else
            *dst++ = (char)c;
    }
    *dst = '\0';
}

/* Everything under dir (names, sizes and a 64-bit FNV-1a of the bytes) as
 * one string, to prove a misuse changed nothing. */
static void snap_dir(const char *dir, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    size_t o = 0;

    out[0] = '\0';
    cr_assert_geq(n, 0, "%s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX];
        unsigned long long h = 1469598103934665603ull;
        size_t len = 0;
        char *data;

        snprintf(p, sizeof p, "%s/%s", dir, names[i]->d_name);
        data = names[i]->d_name[0] == '.' ? NULL : slurp(p, &len);
        for (size_t k = 0; data && k < len; k++)
            h = (h ^ (unsigned char)data[k]) * 1099511628211ull;
        o += (size_t)snprintf(out + o, cap - o, "%s:%zu:%llx;", names[i]->d_name, len, h);
        cr_assert_lt(o, cap);
        free(data);
        free(names[i]);
    }
    free(names);
}

/* ------------------------------------------------------------------ */
/* help and usage                                                       */
/* ------------------------------------------------------------------ */

Test(cli, help_everywhere)
{
    static const char *const cmds[] = { "create", "info", "check", "dump", "get", "put", "del",
                                        "backup", "truncate", "restore", "verify" };
    struct run r;

    RUN(&r, "--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "usage: jetsnap", 14) == 0, "%s", r.out);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        cr_assert_not_null(strstr(r.out, cmds[i]), "main help lacks %s", cmds[i]);
    run_free(&r);

    RUN(&r, "help");
    cr_assert_eq(r.status, 0);
    run_free(&r);

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];

        snprintf(want, sizeof want, "usage: jetsnap %s ", cmds[i]);
        RUN(&r, cmds[i], "--help");
        cr_assert_eq(r.status, 0, "%s --help: exit %d", cmds[i], r.status);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        run_free(&r);
        RUN(&r, "help", cmds[i]);
        cr_assert_eq(r.status, 0);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        run_free(&r);
    }
    /* --help wins over everything else and does nothing. */
    RUN(&r, "create", path_in("db"), "--page-size", "12345", "--help");
    cr_assert_eq(r.status, 0);
    cr_assert_eq(access(path_in("db"), F_OK), -1);
    run_free(&r);
}

Test(cli, usage_errors_exit_2_and_change_nothing)
{
    const char *db = path_in("db"), *inst = path_in("inst"), *mnt = path_in("mnt");
    const char *const *cases[] = {
        (const char *const[]){ NULL },
        (const char *const[]){ "frobnicate", NULL },
        (const char *const[]){ "help", "frobnicate", NULL },
        (const char *const[]){ "create", NULL },
        (const char *const[]){ "create", db, "extra", NULL },
        (const char *const[]){ "create", "", NULL },
        (const char *const[]){ "restore", inst, "", NULL },
        (const char *const[]){ "backup", mnt, "", NULL },
        (const char *const[]){ "create", db, "--page-size", "12345", NULL },
        (const char *const[]){ "create", db, "--page-size", "8x", NULL },
        (const char *const[]){ "create", db, "--page-size", NULL },
        (const char *const[]){ "create", db, "--page-size=", NULL },
        (const char *const[]){ "create", db, "--page-size", "4096", "--page-size", "8192", NULL },
        (const char *const[]){ "create", db, "--log-file-size", "1K", NULL },
        (const char *const[]){ "create", db, "--log-file-size", "2G", NULL },
        (const char *const[]){ "create", db, "--log-file-size", "-5M", NULL },
        (const char *const[]){ "create", db, "--log-file-size", "99999999999999999999", NULL },
        (const char *const[]){ "create", db, "--circular-log=yes", NULL },
        (const char *const[]){ "create", db, "--bogus", NULL },
        (const char *const[]){ "info", NULL },
        (const char *const[]){ "check", inst, inst, NULL },
        (const char *const[]){ "dump", NULL },
        (const char *const[]){ "get", inst, NULL },
        (const char *const[]){ "get", inst, "k", "v", NULL },
        (const char *const[]){ "put", inst, "k", NULL },
        (const char *const[]){ "put", inst, "k", "v", "w", NULL },
        (const char *const[]){ "put", inst, "", "v", NULL },
        (const char *const[]){ "put", inst, "k\\q", "v", NULL },
        (const char *const[]){ "put", inst, "k", "\\x4", NULL },
        (const char *const[]){ "put", inst, "k", "trailing\\", NULL },
        (const char *const[]){ "put", inst, "k", "\\xzz", NULL },
        (const char *const[]){ "del", inst, "\\", NULL },
        (const char *const[]){ "del", NULL },
        (const char *const[]){ "restore", inst, NULL },
        (const char *const[]){ "restore", inst, db, "--until-gen", "zz", NULL },
        (const char *const[]){ "restore", inst, db, "--until-gen", "0", NULL },
        (const char *const[]){ "restore", inst, db, "--logs", NULL },
        (const char *const[]){ "verify", NULL },
        (const char *const[]){ "backup", mnt, NULL },
        (const char *const[]){ "backup", mnt, "/x", "--full", NULL },
        (const char *const[]){ "backup", mnt, "/x\ny", NULL },
        (const char *const[]){ "backup", mnt, "/with space", NULL },
        (const char *const[]){ "truncate", NULL },
        (const char *const[]){ "truncate", mnt, "x", NULL },
    };
    char before[8192], after[8192], mbefore[256], mafter[256];
    char key256[300];

    OK("create", inst);
    OK("put", inst, "k", "v");
    cr_assert_eq(mkdir(mnt, 0700), 0);
    spit(path_in("mnt/control"), "");
    spit(path_in("mnt/status"), "state: idle\njob: 0\n");
    snap_dir(inst, before, sizeof before);
    snap_dir(mnt, mbefore, sizeof mbefore);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;

        run_in(&r, NULL, cases[i]);
        cr_assert_eq(r.status, 2, "case %zu (%s): exit %d, stderr %s", i,
                     cases[i][0] ? cases[i][0] : "(none)", r.status, r.err);
        cr_assert_eq(count_lines(r.err), 1, "case %zu: want one line, got: %s", i, r.err);
        cr_assert(strncmp(r.err, "jetsnap: ", 9) == 0, "case %zu: %s", i, r.err);
        cr_assert_eq(r.outlen, 0, "case %zu printed on stdout: %s", i, r.out);
        run_free(&r);
    }
    /* A 256-byte key is refused before the instance is opened. */
    memset(key256, 'k', 256);
    key256[256] = '\0';
    {
        struct run r;

        RUN(&r, "put", inst, key256, "v");
        cr_assert_eq(r.status, 2, "%s", r.err);
        run_free(&r);
    }
    cr_assert_eq(access(db, F_OK), -1, "a refused create made %s", db);
    snap_dir(inst, after, sizeof after);
    cr_assert_str_eq(after, before, "a refused command changed the instance");
    snap_dir(mnt, mafter, sizeof mafter);
    cr_assert_str_eq(mafter, mbefore, "a refused backup wrote to the mount");
}

/* ------------------------------------------------------------------ */
/* create, info                                                         */
/* ------------------------------------------------------------------ */

Test(cli, create_on_non_empty_dir_fails)
{
    struct run r;
    const char *d = path_in("full");

    cr_assert_eq(mkdir(d, 0700), 0);
    spit(path_in("full/precious"), "data");
    RUN(&r, "create", d);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    cr_assert_not_null(strstr(r.err, " (-"), "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    cr_assert_eq(access(path_in("full/" JS_DB_FILE), F_OK), -1);
    run_free(&r);
}

/* The value of `key: ` in info output, or NULL. */
static const char *info_val(const char *out, const char *key, char *buf, size_t cap)
{
    size_t kl = strlen(key);

    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
            const char *v = p + kl + 2, *e = strchr(v, '\n');
            size_t n = e ? (size_t)(e - v) : strlen(v);

            snprintf(buf, cap, "%.*s", (int)n, v);
            return buf;
        }
    }
    return NULL;
}

static int all_of(const char *s, const char *set)
{
    return *s && strspn(s, set) == strlen(s);
}

static void assert_info_form(const char *out)
{
    static const char *const num_keys[] = { "page_size", "pages", "checkpoint_gen",
                                            "log_gen_min", "log_gen_max" };
    char v[256];

    cr_assert_not_null(info_val(out, "state", v, sizeof v), "%s", out);
    cr_assert(strcmp(v, "clean-shutdown") == 0 || strcmp(v, "dirty-shutdown") == 0 ||
              strcmp(v, "just-created") == 0 || strcmp(v, "being-restored") == 0, "state %s", v);
    for (size_t i = 0; i < sizeof num_keys / sizeof num_keys[0]; i++) {
        cr_assert_not_null(info_val(out, num_keys[i], v, sizeof v), "no %s in %s", num_keys[i],
                           out);
        cr_assert(all_of(v, "0123456789abcdefABCDEFx"), "%s: %s", num_keys[i], v);
    }
    cr_assert_not_null(info_val(out, "db_signature", v, sizeof v), "%s", out);
    cr_assert(all_of(v, "0123456789abcdefABCDEF"), "db_signature %s", v);
    cr_assert_not_null(info_val(out, "log_signature", v, sizeof v), "%s", out);
    cr_assert(all_of(v, "0123456789abcdefABCDEF"), "log_signature %s", v);
    cr_assert_not_null(info_val(out, "circular_log", v, sizeof v), "%s", out);
    cr_assert(strcmp(v, "yes") == 0 || strcmp(v, "no") == 0, "circular_log %s", v);
    cr_assert_not_null(info_val(out, "last_full_backup", v, sizeof v), "%s", out);
    cr_assert_not_null(info_val(out, "last_incremental_backup", v, sizeof v), "%s", out);
}

/* `gen LOW-HIGH at YYYY-MM-DDTHH:MM:SSZ`, generations in hex. */
static int is_backup_stamp(const char *v)
{
    const char *p = v, *dash, *at;

    if (strncmp(p, "gen ", 4) != 0)
        return 0;
    p += 4;
    dash = strchr(p, '-');
    at = strstr(p, " at ");
    if (!dash || !at || dash > at || dash == p || at == dash + 1)
        return 0;
    for (const char *q = p; q < at; q++)
        if (q != dash && !strchr("0123456789ABCDEFabcdef", *q))
            return 0;
    p = at + 4;
    return strlen(p) >= 20 && p[4] == '-' && p[7] == '-' && p[10] == 'T' && p[13] == ':' &&
           p[16] == ':' && p[strlen(p) - 1] == 'Z';
}

Test(cli, create_and_info)
{
    const char *a = path_in("a"), *b = path_in("b");
    struct run r;
    char v[256];

    OK("create", a, "--page-size", "4096", "--log-file-size", "1M", "--circular-log");
    RUN(&r, "info", a);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_info_form(r.out);
    cr_assert_str_eq(info_val(r.out, "page_size", v, sizeof v), "4096");
    cr_assert_str_eq(info_val(r.out, "circular_log", v, sizeof v), "yes");
    cr_assert_str_eq(info_val(r.out, "last_full_backup", v, sizeof v), "none");
    cr_assert_str_eq(info_val(r.out, "last_incremental_backup", v, sizeof v), "none");
    run_free(&r);

    /* Defaults; a lone .edb file works too; an instance that was opened
     * and closed is clean-shutdown. */
    OK("create", b, "--page-size=16K");
    OK("put", b, "k", "v");
    RUN(&r, "info", path_in("b/" JS_DB_FILE));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(info_val(r.out, "page_size", v, sizeof v), "16384");
    cr_assert_str_eq(info_val(r.out, "circular_log", v, sizeof v), "no");
    cr_assert_str_eq(info_val(r.out, "state", v, sizeof v), "clean-shutdown");
    run_free(&r);

    RUN(&r, "info", path_in("nothing-here"));
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* put, get, del, dump                                                  */
/* ------------------------------------------------------------------ */

Test(cli, put_get_del_round_trip)
{
    const char *d = path_in("db");
    struct run r;

    OK("create", d);
    OK("put", d, "greeting", "hello world");
    RUN(&r, "get", d, "greeting");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "hello world\n");
    run_free(&r);

    OK("put", d, "greeting", "replaced");
    RUN(&r, "get", d, "greeting");
    cr_assert_str_eq(r.out, "replaced\n");
    run_free(&r);

    /* A key that starts with a dash, after `--`. */
    OK("put", d, "--", "-dash", "-value");
    RUN(&r, "get", d, "--", "-dash");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "-value\n");
    run_free(&r);

    OK("del", d, "greeting");
    RUN(&r, "get", d, "greeting");
    cr_assert_eq(r.status, 1);
    cr_assert_eq(r.outlen, 0);
    cr_assert(strncmp(r.err, "jetsnap: JET_errRecordNotFound (-1601): ", 40) == 0, "%s", r.err);
    run_free(&r);
    RUN(&r, "del", d, "greeting");
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_errRecordNotFound (-1601): ", 40) == 0, "%s", r.err);
    run_free(&r);

    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "-dash\t-value\n");
    run_free(&r);

    /* No instance there: an engine error, exit 1, and nothing created. */
    RUN(&r, "put", path_in("none"), "k", "v");
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    run_free(&r);
}

Test(cli, every_byte_value_through_escapes)
{
    const char *d = path_in("db");
    unsigned char k1[255], val[256], k2[3] = { 0xff, 0x00, 0x7f };
    char ek1[4 * 255 + 1], eval[4 * 256 + 1], ek2[16], want[4096];
    struct run r;

    /* k1 holds every byte but 0xff (keys are at most 255 bytes), k2 the
     * last one; the value holds all 256. */
    for (int i = 0; i < 255; i++)
        k1[i] = (unsigned char)i;
    for (int i = 0; i < 256; i++)
        val[i] = (unsigned char)(255 - i);
    esc(ek1, k1, sizeof k1);
    esc(eval, val, sizeof val);
    esc(ek2, k2, sizeof k2);
    cr_assert_str_eq(ek2, "\\xff\\x00\\x7f");

    OK("create", d);
    OK("put", d, ek1, eval);
    /* Upper-case hex digits are accepted on input. */
    OK("put", d, "\\xFF\\x00\\x7F", "\\x00");

    RUN(&r, "get", d, ek1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s\n", eval);
    cr_assert_str_eq(r.out, want);
    run_free(&r);

    RUN(&r, "get", d, ek2);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\\x00\n");
    run_free(&r);

    /* Byte order: k1 starts with 0x00, k2 with 0xff. */
    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s\t%s\n%s\t\\x00\n", ek1, eval, ek2);
    cr_assert_str_eq(r.out, want);
    run_free(&r);

    OK("del", d, ek1);
    RUN(&r, "dump", d);
    snprintf(want, sizeof want, "%s\t\\x00\n", ek2);
    cr_assert_str_eq(r.out, want);
    run_free(&r);
}

Test(cli, dump_escaping_exact)
{
    const char *d = path_in("db");
    struct run r;

    OK("create", d);
    OK("put", d, "plain", "value one");
    OK("put", d, "tab\\tkey", "line1\\nline2\\r");
    OK("put", d, "back\\\\slash", "\\x00\\x7f\\x80\\xff\\x1b~ ");
    OK("put", d, "\\x01", "");
    OK("put", d, "\\x41BC", "\\xC3\\xA9");
    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out,
                     "\\x01\t\n"
                     "ABC\t\\xc3\\xa9\n"
                     "back\\\\slash\t\\x00\\x7f\\x80\\xff\\x1b~ \n"
                     "plain\tvalue one\n"
                     "tab\\tkey\tline1\\nline2\\r\n");
    run_free(&r);

    /* An empty instance dumps nothing, successfully. */
    OK("create", path_in("empty"));
    RUN(&r, "dump", path_in("empty"));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.outlen, 0);
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* check                                                                */
/* ------------------------------------------------------------------ */

static void fill(const char *dir, int n)
{
    js_instance *inst;
    js_session *s;
    js_params p;
    char k[32], v[200];

    js_params_default(&p);
    cr_assert_eq(js_open(dir, &p, &inst), 0, "js_open: %s", js_errdetail());
    cr_assert_eq(js_session_open(inst, &s), 0);
    memset(v, 'v', sizeof v);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        cr_assert_eq(js_put(s, k, strlen(k), v, sizeof v), 0, "%s", js_errdetail());
    }
    js_session_close(s);
    cr_assert_eq(js_close(inst), 0);
}

Test(cli, check_passes_then_names_the_bad_page)
{
    const char *d = path_in("db");
    js_info info;
    struct run r;
    char want[64], v[64];
    uint32_t page;
    unsigned char byte;
    int fd;

    OK("create", d);
    RUN(&r, "check", d);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(info_val(r.out, "pages_bad", v, sizeof v), "0");
    cr_assert_str_eq(info_val(r.out, "log_files_bad", v, sizeof v), "0");
    cr_assert_not_null(info_val(r.out, "pages_checked", v, sizeof v));
    run_free(&r);

    fill(d, 400);
    RUN(&r, "check", d);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_free(&r);

    /* Flip one byte in the middle of the last used page. */
    cr_assert_eq(js_info_read(d, &info), 0);
    cr_assert_gt(info.pages, 2);
    page = (uint32_t)(info.pages - 1);
    fd = open(path_in("db/" JS_DB_FILE), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &byte, 1, (off_t)page * info.page_size + info.page_size / 2), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, (off_t)page * info.page_size + info.page_size / 2), 1);
    close(fd);

    RUN(&r, "check", d);
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    snprintf(want, sizeof want, "%u", page);
    cr_assert_str_eq(info_val(r.out, "first_bad_page", v, sizeof v), want);
    cr_assert_str_eq(info_val(r.out, "pages_bad", v, sizeof v), "1");
    cr_assert(strncmp(r.err, "jetsnap: JET_errReadVerifyFailure (-1018): ", 43) == 0, "%s",
              r.err);
    snprintf(want, sizeof want, "page %u", page);
    cr_assert_not_null(strstr(r.err, want), "error does not name %s: %s", want, r.err);
    run_free(&r);

    /* The lone database file is checked the same way. */
    RUN(&r, "check", path_in("db/" JS_DB_FILE));
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* restore, verify                                                      */
/* ------------------------------------------------------------------ */

Test(cli, verify_and_restore_a_backup_set)
{
    const char *d = path_in("db"), *set = path_in("set"), *t = path_in("restored");
    js_instance *inst;
    js_session *s;
    js_params p;
    struct run r;
    char v[256];
    unsigned char byte;
    int fd;

    OK("create", d);
    OK("put", d, "before", "backup");
    js_params_default(&p);
    cr_assert_eq(js_open(d, &p, &inst), 0, "%s", js_errdetail());
    cr_assert_eq(js_session_open(inst, &s), 0);
    cr_assert_eq(js_put(s, "during", 6, "open", 4), 0);
    cr_assert_eq(js_backup(inst, set, JS_BACKUP_CREATE_DIR, NULL, NULL), 0, "js_backup: %s",
                 js_errdetail());
    js_session_close(s);
    cr_assert_eq(js_close(inst), 0);

    RUN(&r, "info", d);
    cr_assert_eq(r.status, 0);
    cr_assert(is_backup_stamp(info_val(r.out, "last_full_backup", v, sizeof v)),
              "last_full_backup: %s", v);
    run_free(&r);

    RUN(&r, "info", set);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_info_form(r.out);
    run_free(&r);

    RUN(&r, "verify", set);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(info_val(r.out, "pages_bad", v, sizeof v), "0");
    run_free(&r);

    RUN(&r, "check", set);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_free(&r);

    RUN(&r, "restore", set, t);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_free(&r);
    RUN(&r, "dump", t);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "before\tbackup\nduring\topen\n");
    run_free(&r);

    /* TARGET must be empty. */
    RUN(&r, "restore", set, t);
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    run_free(&r);

    /* A damaged set neither verifies nor restores. */
    fd = open(path_in("set/" JS_DB_FILE), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &byte, 1, 2 * 8192 + 100), 1);
    byte ^= 0xff;
    cr_assert_eq(pwrite(fd, &byte, 1, 2 * 8192 + 100), 1);
    close(fd);
    RUN(&r, "verify", set);
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0 || strstr(r.err, "\njetsnap: JET_err"),
              "%s", r.err);
    run_free(&r);
    RUN(&r, "restore", set, path_in("restored2"));
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* backup and truncate against a fake mount                             */
/* ------------------------------------------------------------------ */

static char *mount_dir(void)
{
    char *m = path_in("mnt");

    cr_assert_eq(mkdir(m, 0700), 0);
    spit(path_in("mnt/control"), "");
    spit(path_in("mnt/status"), "state: succeeded\njob: 7\noperation: full\n"
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
    cr_assert_lt(snprintf(tmpname, sizeof tmpname, "%s/mnt/status.new", tmp), PATH_MAX);
    spit(tmpname, text);
    cr_assert_eq(rename(tmpname, path_in("mnt/status")), 0);
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
        got = slurp(path_in("mnt/control"), NULL);
        if (got && strcmp(got, want) == 0)
            break;
        usleep(10000);
    }
    cr_assert_str_eq(got, want);
    free(got);
}

/* Wait until the child's output on fd contains want. */
static void wait_output(int fd, const char *want)
{
    char *got = NULL;

    for (int i = 0; i < 1000; i++) {
        free(got);
        got = slurp_fd(fd, NULL);
        if (strstr(got, want))
            break;
        usleep(10000);
    }
    cr_assert_not_null(strstr(got, want), "never printed '%s'; got: %s", want, got);
    free(got);
}

static pid_t spawn_bg(const char *cwd, int *out, int *err, const char *const *args)
{
    *out = tmpfd();
    *err = tmpfd();
    return spawn(cwd, *out, *err, args);
}

Test(cli, backup_follows_status_to_success)
{
    char dest[PATH_MAX + 32], *err, *out;
    int ofd, efd;
    pid_t pid;

    mount_dir();
    pid = spawn_bg(tmp, &ofd, &efd,
                   (const char *const[]){ "backup", "mnt", "sets/nightly", "--atomic",
                                          "--create", NULL });
    /* DEST was made absolute against the tool's working directory. */
    snprintf(dest, sizeof dest, "%s/sets/nightly atomic create\n", tmp);
    wait_control(dest);
    dest[strlen(dest) - strlen(" atomic create\n")] = '\0';

    /* Still the old job for a while: the tool must not take its
     * `succeeded` for ours. */
    usleep(500000);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "took the previous job's result for its own");
    set_status(STATUS_FMT, "running", "full", dest, "atomic create", "copy-database", 50,
               512ull << 20, 1024ull << 20, 100ull << 20, 5, "-", "-", "-");
    wait_output(efd, "backup:  50% 512.0 MiB/1.0 GiB 100.0 MiB/s ETA 0:05 copy-database\n");
    set_status(STATUS_FMT, "running", "full", dest, "atomic create", "copy-logs", 97,
               1000ull << 20, 1024ull << 20, 100ull << 20, 1, "-", "-", "-");
    wait_output(efd, "backup:  97% ");
    set_status(STATUS_FMT, "succeeded", "full", dest, "atomic create", "done", 100,
               1024ull << 20, 1024ull << 20, 100ull << 20, 0,
               "edb00000001.log-edb00000002.log", "0 JET_errSuccess", "-");
    cr_assert_eq(reap(pid, 10000), 0);
    err = slurp_fd(efd, NULL);
    out = slurp_fd(ofd, NULL);
    /* One line per change, not per poll. */
    cr_assert_eq(count_lines(err), 3, "%s", err);
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
    pid = spawn_bg(NULL, &ofd, &efd,
                   (const char *const[]){ "backup", path_in("mnt"), "/srv/b", "--incremental",
                                          NULL });
    wait_control("/srv/b incremental\n");
    set_status(STATUS_FMT, "running", "incremental", "/srv/b", "incremental", "copy-logs", 10,
               1ull, 10ull, 1ull, 9, "-", "-", "-");
    wait_output(efd, "backup:  10% ");
    set_status(STATUS_FMT, "failed", "incremental", "/srv/b", "incremental", "copy-logs", 10,
               1ull, 10ull, 1ull, 9, "none", "-569 JET_errMissingFileToBackup",
               "generation 0x4 (edb00000004.log) is missing");
    cr_assert_eq(reap(pid, 10000), 1);
    err = slurp_fd(efd, NULL);
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
    pid = spawn_bg(NULL, &ofd, &efd, (const char *const[]){ "truncate", path_in("mnt"), NULL });
    wait_control("truncate\n");
    set_status(STATUS_FMT, "succeeded", "truncate", "", "", "done", 100, 0ull, 0ull, 0ull, 0,
               "edb00000001.log-edb00000003.log", "0 JET_errSuccess", "");
    cr_assert_eq(reap(pid, 10000), 0);
    out = slurp_fd(ofd, NULL);
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
    pid = spawn_bg(NULL, &ofd, &efd,
                   (const char *const[]){ "backup", path_in("mnt"), "/srv/b", NULL });
    wait_control("/srv/b\n");
    set_status(STATUS_FMT, "running", "full", "/srv/b", "", "copy-database", 20, 2ull, 10ull,
               1ull, 8, "-", "-", "-");
    wait_output(efd, "backup:  20% ");
    kill(pid, SIGINT);
    wait_control("cancel\n");
    set_status(STATUS_FMT, "cancelled", "full", "/srv/b", "", "copy-database", 20, 2ull, 10ull,
               1ull, 8, "none", "-801 JET_errBackupAbortByServer", "cancelled by request");
    cr_assert_eq(reap(pid, 10000), 1);
    err = slurp_fd(efd, NULL);
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
        execl(bin, bin, "backup", path_in("mnt"), "/srv/tty", (char *)NULL);
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
        char *c = slurp(path_in("mnt/control"), NULL);

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
    struct run r;

    cr_assert_eq(mkdir(path_in("mnt"), 0700), 0);
    spit(path_in("mnt/status"), "state: idle\njob: 0\n");
    cr_assert_eq(symlink("/dev/full", path_in("mnt/control")), 0);
    RUN(&r, "backup", path_in("mnt"), "/srv/b");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(r.err, "jetsnap: JET_errDiskFull (-1808): No space left on device\n");
    run_free(&r);
}

Test(cli, not_a_mount_fails_and_writes_nothing)
{
    struct run r;

    cr_assert_eq(mkdir(path_in("plain"), 0700), 0);
    RUN(&r, "truncate", path_in("plain"));
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strncmp(r.err, "jetsnap: cannot read ", 21) == 0, "%s", r.err);
    cr_assert_eq(access(path_in("plain/control"), F_OK), -1);
    run_free(&r);
}

Test(cli, no_new_job_times_out, .timeout = 60)
{
    struct run r;

    mount_dir();
    RUN(&r, "backup", path_in("mnt"), "/srv/b");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert_not_null(strstr(r.err, "shows no new job"), "%s", r.err);
    run_free(&r);
}

Test(cli, restore_rolls_forward_with_logs_until_gen)
{
    static const char *const until[] = { "2", "0x2", "edb00000002.log" };
    char d[PATH_MAX], set[PATH_MAX];
    js_instance *inst;
    js_session *s;
    js_params p;
    struct run r;
    uint32_t gen;

    snprintf(d, sizeof d, "%s", path_in("db"));
    snprintf(set, sizeof set, "%s", path_in("set"));
    /* A full backup holding generation 1, then two more closed
     * generations in the live directory: 2 holds "after", 3 "later". */
    OK("create", d);
    js_params_default(&p);
    cr_assert_eq(js_open(d, &p, &inst), 0, "%s", js_errdetail());
    cr_assert_eq(js_session_open(inst, &s), 0);
    cr_assert_eq(js_put(s, "before", 6, "1", 1), 0);
    cr_assert_eq(js_backup(inst, set, JS_BACKUP_CREATE_DIR, NULL, NULL), 0, "%s",
                 js_errdetail());
    cr_assert_eq(js_put(s, "after", 5, "2", 1), 0);
    cr_assert_eq(js_log_roll(inst, &gen), 0);
    cr_assert_eq(gen, 2, "the set is expected to end at generation 1");
    cr_assert_eq(js_put(s, "later", 5, "3", 1), 0);
    cr_assert_eq(js_log_roll(inst, &gen), 0);
    js_session_close(s);
    cr_assert_eq(js_close(inst), 0);

    RUN(&r, "restore", set, path_in("t-set"));
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    RUN(&r, "dump", path_in("t-set"));
    cr_assert_str_eq(r.out, "before\t1\n");
    run_free(&r);

    RUN(&r, "restore", set, path_in("t-all"), "--logs", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    RUN(&r, "dump", path_in("t-all"));
    cr_assert_str_eq(r.out, "after\t2\nbefore\t1\nlater\t3\n");
    run_free(&r);

    for (size_t i = 0; i < sizeof until / sizeof until[0]; i++) {
        char name[32];

        snprintf(name, sizeof name, "t-until-%zu", i);
        RUN(&r, "restore", set, path_in(name), "--logs", d, "--until-gen", until[i]);
        cr_assert_eq(r.status, 0, "--until-gen %s: %s", until[i], r.err);
        run_free(&r);
        RUN(&r, "dump", path_in(name));
        cr_assert_str_eq(r.out, "after\t2\nbefore\t1\n", "--until-gen %s", until[i]);
        run_free(&r);
    }
}

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
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "jstool.h"
#include "proc.h"
#include "testlib.h"

TestSuite(cli, .init = tl_cli_setup, .fini = tl_tmp_teardown, .timeout = 120);

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
        data = names[i]->d_name[0] == '.' ? NULL : tl_slurp(p, &len);
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
    struct tl_run r;

    RUN(&r, "--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "usage: jetsnap", 14) == 0, "%s", r.out);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        cr_assert_not_null(strstr(r.out, cmds[i]), "main help lacks %s", cmds[i]);
    tl_run_free(&r);

    RUN(&r, "help");
    cr_assert_eq(r.status, 0);
    tl_run_free(&r);

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];

        snprintf(want, sizeof want, "usage: jetsnap %s ", cmds[i]);
        RUN(&r, cmds[i], "--help");
        cr_assert_eq(r.status, 0, "%s --help: exit %d", cmds[i], r.status);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        tl_run_free(&r);
        RUN(&r, "help", cmds[i]);
        cr_assert_eq(r.status, 0);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        tl_run_free(&r);
    }
    /* --help wins over everything else and does nothing. */
    RUN(&r, "create", tl_tp("db"), "--page-size", "12345", "--help");
    cr_assert_eq(r.status, 0);
    cr_assert_eq(access(tl_tp("db"), F_OK), -1);
    tl_run_free(&r);
}

Test(cli, usage_errors_exit_2_and_change_nothing)
{
    const char *db = tl_tp("db"), *inst = tl_tp("inst"), *mnt = tl_tp("mnt");
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

    RUN_OK("create", inst);
    RUN_OK("put", inst, "k", "v");
    cr_assert_eq(mkdir(mnt, 0700), 0);
    tl_spit(tl_tp("mnt/control"), "");
    tl_spit(tl_tp("mnt/status"), "state: idle\njob: 0\n");
    snap_dir(inst, before, sizeof before);
    snap_dir(mnt, mbefore, sizeof mbefore);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tl_run r;

        tl_cli_run(&r, NULL, cases[i]);
        cr_assert_eq(r.status, 2, "case %zu (%s): exit %d, stderr %s", i,
                     cases[i][0] ? cases[i][0] : "(none)", r.status, r.err);
        cr_assert_eq(tl_count_lines(r.err), 1, "case %zu: want one line, got: %s", i, r.err);
        cr_assert(strncmp(r.err, "jetsnap: ", 9) == 0, "case %zu: %s", i, r.err);
        cr_assert_eq(r.outlen, 0, "case %zu printed on stdout: %s", i, r.out);
        tl_run_free(&r);
    }
    /* A 256-byte key is refused before the instance is opened. */
    memset(key256, 'k', 256);
    key256[256] = '\0';
    {
        struct tl_run r;

        RUN(&r, "put", inst, key256, "v");
        cr_assert_eq(r.status, 2, "%s", r.err);
        tl_run_free(&r);
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
    struct tl_run r;
    const char *d = tl_tp("full");

    cr_assert_eq(mkdir(d, 0700), 0);
    tl_spit(tl_tp("full/precious"), "data");
    RUN(&r, "create", d);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    cr_assert_not_null(strstr(r.err, " (-"), "%s", r.err);
    cr_assert_eq(tl_count_lines(r.err), 1, "%s", r.err);
    cr_assert_eq(access(tl_tp("%s", "full/" JS_DB_FILE), F_OK), -1);
    tl_run_free(&r);
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
    const char *a = tl_tp("a"), *b = tl_tp("b");
    struct tl_run r;
    char v[256];

    RUN_OK("create", a, "--page-size", "4096", "--log-file-size", "1M", "--circular-log");
    RUN(&r, "info", a);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_info_form(r.out);
    cr_assert_str_eq(info_val(r.out, "page_size", v, sizeof v), "4096");
    cr_assert_str_eq(info_val(r.out, "circular_log", v, sizeof v), "yes");
    cr_assert_str_eq(info_val(r.out, "last_full_backup", v, sizeof v), "none");
    cr_assert_str_eq(info_val(r.out, "last_incremental_backup", v, sizeof v), "none");
    tl_run_free(&r);

    /* Defaults; a lone .edb file works too; an instance that was opened
     * and closed is clean-shutdown. */
    RUN_OK("create", b, "--page-size=16K");
    RUN_OK("put", b, "k", "v");
    RUN(&r, "info", tl_tp("%s", "b/" JS_DB_FILE));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(info_val(r.out, "page_size", v, sizeof v), "16384");
    cr_assert_str_eq(info_val(r.out, "circular_log", v, sizeof v), "no");
    cr_assert_str_eq(info_val(r.out, "state", v, sizeof v), "clean-shutdown");
    tl_run_free(&r);

    RUN(&r, "info", tl_tp("nothing-here"));
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    tl_run_free(&r);
}

/* ------------------------------------------------------------------ */
/* put, get, del, dump                                                  */
/* ------------------------------------------------------------------ */

Test(cli, put_get_del_round_trip)
{
    const char *d = tl_tp("db");
    struct tl_run r;

    RUN_OK("create", d);
    RUN_OK("put", d, "greeting", "hello world");
    RUN(&r, "get", d, "greeting");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "hello world\n");
    tl_run_free(&r);

    RUN_OK("put", d, "greeting", "replaced");
    RUN(&r, "get", d, "greeting");
    cr_assert_str_eq(r.out, "replaced\n");
    tl_run_free(&r);

    /* A key that starts with a dash, after `--`. */
    RUN_OK("put", d, "--", "-dash", "-value");
    RUN(&r, "get", d, "--", "-dash");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "-value\n");
    tl_run_free(&r);

    RUN_OK("del", d, "greeting");
    RUN(&r, "get", d, "greeting");
    cr_assert_eq(r.status, 1);
    cr_assert_eq(r.outlen, 0);
    cr_assert(strncmp(r.err, "jetsnap: JET_errRecordNotFound (-1601): ", 40) == 0, "%s", r.err);
    tl_run_free(&r);
    RUN(&r, "del", d, "greeting");
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_errRecordNotFound (-1601): ", 40) == 0, "%s", r.err);
    tl_run_free(&r);

    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "-dash\t-value\n");
    tl_run_free(&r);

    /* No instance there: an engine error, exit 1, and nothing created. */
    RUN(&r, "put", tl_tp("none"), "k", "v");
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    tl_run_free(&r);
}

/* An instance another process holds while no mount serves it (a daemon
 * still checkpointing after fusermount3 -u): an offline command says so and
 * waits for it instead of failing.  The test holds DBDIR's lock itself and
 * lets go once the tool has said it waits. */
Test(cli, offline_command_waits_for_a_stopping_holder)
{
    const char *d = tl_tp("db");
    char lock[PATH_MAX + 16], *out;
    int ofd, efd, lfd;

    RUN_OK("create", d);
    RUN_OK("put", d, "k", "v");
    snprintf(lock, sizeof lock, "%s/jetsnap.lock", d);
    lfd = open(lock, O_RDWR | O_CLOEXEC);
    cr_assert(lfd >= 0 && flock(lfd, LOCK_EX) == 0);
    pid_t pid = tl_cli_spawn_bg(NULL, &ofd, &efd, (const char *const[]){ "dump", d, NULL });
    tl_cli_wait_output(efd, "is open in another process: waiting up to 10 s for it");
    close(lfd);
    cr_assert_eq(tl_reap(pid, 30000), 0);
    out = tl_slurp_fd(ofd, NULL);
    cr_assert_str_eq(out, "k\tv\n");
    free(out);
    close(ofd);
    close(efd);
}

Test(cli, every_byte_value_through_escapes)
{
    const char *d = tl_tp("db");
    unsigned char k1[255], val[256], k2[3] = { 0xff, 0x00, 0x7f };
    char ek1[4 * 255 + 1], eval[4 * 256 + 1], ek2[16], want[4096];
    struct tl_run r;

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

    RUN_OK("create", d);
    RUN_OK("put", d, ek1, eval);
    /* Upper-case hex digits are accepted on input. */
    RUN_OK("put", d, "\\xFF\\x00\\x7F", "\\x00");

    RUN(&r, "get", d, ek1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s\n", eval);
    cr_assert_str_eq(r.out, want);
    tl_run_free(&r);

    RUN(&r, "get", d, ek2);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\\x00\n");
    tl_run_free(&r);

    /* Byte order: k1 starts with 0x00, k2 with 0xff. */
    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s\t%s\n%s\t\\x00\n", ek1, eval, ek2);
    cr_assert_str_eq(r.out, want);
    tl_run_free(&r);

    RUN_OK("del", d, ek1);
    RUN(&r, "dump", d);
    snprintf(want, sizeof want, "%s\t\\x00\n", ek2);
    cr_assert_str_eq(r.out, want);
    tl_run_free(&r);
}

Test(cli, dump_escaping_exact)
{
    const char *d = tl_tp("db");
    struct tl_run r;

    RUN_OK("create", d);
    RUN_OK("put", d, "plain", "value one");
    RUN_OK("put", d, "tab\\tkey", "line1\\nline2\\r");
    RUN_OK("put", d, "back\\\\slash", "\\x00\\x7f\\x80\\xff\\x1b~ ");
    RUN_OK("put", d, "\\x01", "");
    RUN_OK("put", d, "\\x41BC", "\\xC3\\xA9");
    RUN(&r, "dump", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out,
                     "\\x01\t\n"
                     "ABC\t\\xc3\\xa9\n"
                     "back\\\\slash\t\\x00\\x7f\\x80\\xff\\x1b~ \n"
                     "plain\tvalue one\n"
                     "tab\\tkey\tline1\\nline2\\r\n");
    tl_run_free(&r);

    /* An empty instance dumps nothing, successfully. */
    RUN_OK("create", tl_tp("empty"));
    RUN(&r, "dump", tl_tp("empty"));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.outlen, 0);
    tl_run_free(&r);
}

/* ------------------------------------------------------------------ */
/* check                                                                */
/* ------------------------------------------------------------------ */

static void fill_dir(const char *dir, int n)
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
    const char *d = tl_tp("db");
    js_info info;
    struct tl_run r;
    char want[64], v[64];
    uint32_t page;
    unsigned char byte;
    int fd;

    RUN_OK("create", d);
    RUN(&r, "check", d);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(info_val(r.out, "pages_bad", v, sizeof v), "0");
    cr_assert_str_eq(info_val(r.out, "log_files_bad", v, sizeof v), "0");
    cr_assert_not_null(info_val(r.out, "pages_checked", v, sizeof v));
    tl_run_free(&r);

    fill_dir(d, 400);
    RUN(&r, "check", d);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    tl_run_free(&r);

    /* Flip one byte in the middle of the last used page. */
    cr_assert_eq(js_info_read(d, &info), 0);
    cr_assert_gt(info.pages, 2);
    page = (uint32_t)(info.pages - 1);
    fd = open(tl_tp("%s", "db/" JS_DB_FILE), O_RDWR);
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
    tl_run_free(&r);

    /* The lone database file is checked the same way. */
    RUN(&r, "check", tl_tp("%s", "db/" JS_DB_FILE));
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    tl_run_free(&r);
}

/* ------------------------------------------------------------------ */
/* restore, verify                                                      */
/* ------------------------------------------------------------------ */

Test(cli, verify_and_restore_a_backup_set)
{
    const char *d = tl_tp("db"), *set = tl_tp("set"), *t = tl_tp("restored");
    js_instance *inst;
    js_session *s;
    js_params p;
    struct tl_run r;
    char v[256];
    unsigned char byte;
    int fd;

    RUN_OK("create", d);
    RUN_OK("put", d, "before", "backup");
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
    tl_run_free(&r);

    RUN(&r, "info", set);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_info_form(r.out);
    tl_run_free(&r);

    RUN(&r, "verify", set);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_str_eq(info_val(r.out, "pages_bad", v, sizeof v), "0");
    tl_run_free(&r);

    RUN(&r, "check", set);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    tl_run_free(&r);

    RUN(&r, "restore", set, t);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    tl_run_free(&r);
    RUN(&r, "dump", t);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "before\tbackup\nduring\topen\n");
    tl_run_free(&r);

    /* TARGET must be empty. */
    RUN(&r, "restore", set, t);
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0, "%s", r.err);
    tl_run_free(&r);

    /* A damaged set neither verifies nor restores. */
    fd = open(tl_tp("%s", "set/" JS_DB_FILE), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &byte, 1, 2 * 8192 + 100), 1);
    byte ^= 0xff;
    cr_assert_eq(pwrite(fd, &byte, 1, 2 * 8192 + 100), 1);
    close(fd);
    RUN(&r, "verify", set);
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    cr_assert(strncmp(r.err, "jetsnap: JET_err", 16) == 0 || strstr(r.err, "\njetsnap: JET_err"),
              "%s", r.err);
    tl_run_free(&r);
    RUN(&r, "restore", set, tl_tp("restored2"));
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    tl_run_free(&r);
}

Test(cli, restore_rolls_forward_with_logs_until_gen)
{
    static const char *const until[] = { "2", "0x2", "edb00000002.log" };
    char d[PATH_MAX], set[PATH_MAX];
    js_instance *inst;
    js_session *s;
    js_params p;
    struct tl_run r;
    uint32_t gen;

    snprintf(d, sizeof d, "%s", tl_tp("db"));
    snprintf(set, sizeof set, "%s", tl_tp("set"));
    /* A full backup holding generation 1, then two more closed
     * generations in the live directory: 2 holds "after", 3 "later". */
    RUN_OK("create", d);
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

    RUN(&r, "restore", set, tl_tp("t-set"));
    cr_assert_eq(r.status, 0, "%s", r.err);
    tl_run_free(&r);
    RUN(&r, "dump", tl_tp("t-set"));
    cr_assert_str_eq(r.out, "before\t1\n");
    tl_run_free(&r);

    RUN(&r, "restore", set, tl_tp("t-all"), "--logs", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tl_run_free(&r);
    RUN(&r, "dump", tl_tp("t-all"));
    cr_assert_str_eq(r.out, "after\t2\nbefore\t1\nlater\t3\n");
    tl_run_free(&r);

    for (size_t i = 0; i < sizeof until / sizeof until[0]; i++) {
        char name[32];

        snprintf(name, sizeof name, "t-until-%zu", i);
        RUN(&r, "restore", set, tl_tp("%s", name), "--logs", d, "--until-gen", until[i]);
        cr_assert_eq(r.status, 0, "--until-gen %s: %s", until[i], r.err);
        tl_run_free(&r);
        RUN(&r, "dump", tl_tp("%s", name));
        cr_assert_str_eq(r.out, "after\t2\nbefore\t1\n", "--until-gen %s", until[i]);
        tl_run_free(&r);
    }
}

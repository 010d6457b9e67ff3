/*
 * test_dest.c - a backup's DEST and a restore's TARGET (and its set) are
 * held, not named (issue 8, item 1; core/backup.c and core/restore.c).
 *
 * Each test renames a directory on the job's path away while the job runs
 * and puts a symlink to somewhere else in its place (swap()), at a chosen
 * moment: the status callback runs on the job thread at every phase change
 * and progress report, so the swap happens deterministically at a phase.
 * Then it asserts that the job went on in the directory it had opened
 * (found under its new name) and that nothing outside it was read, written
 * or removed: the live instance's directory (DBDIR) keeps exactly its own
 * files, still serves, passes js_check and holds every key; a decoy tree
 * keeps its listing and every file's SHA-256.
 *
 * Layout in the test's mkdtemp directory T:
 *   live/db        DBDIR of the live instance (named "db" on purpose)
 *   R/q/db         DEST (or TARGET); R/q is swapped for a symlink to live/,
 *                  so that R/q/db names DBDIR after the swap
 *   R/q.real       where R/q went: the job's held directory lives here
 * The last tests go through the daemon (fs_dest suite): backup_root, the
 * control file and a throttled copy, as an administrator would meet it.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"

#define OK(x)                                                                                            \
    do {                                                                                                 \
        JET_ERR e_ = (x);                                                                                \
        cr_assert_eq(e_, JET_errSuccess, "%s -> %s (%d): %s", #x, js_errname(e_), e_, js_errdetail());   \
    } while (0)

/* ------------------------------------------------------------------ */
/* Scratch directory, shell                                              */
/* ------------------------------------------------------------------ */
static char T[PATH_MAX];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}

static void setup(void)
{
    char t[] = "/tmp/jsdest.XXXXXX";
    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, T));
    js_fault_reset();
}

static void teardown(void)
{
    js_fault_reset();
    if (T[0])
        nftw(T, rm_one, 16, FTW_DEPTH | FTW_PHYS);   /* never through a symlink */
}

TestSuite(dest, .init = setup, .fini = teardown, .timeout = 60);

/* A path inside T (rotating static buffers). */
static char *tp(const char *fmt, ...)
{
    static char bufs[32][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 32];
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    cr_assert_lt(snprintf(p, PATH_MAX, "%s/%s", T, rel), PATH_MAX);
    return p;
}

static int sh(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static char *sh_out(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    size_t cap = 4096, len = 0, n;
    char *out = malloc(cap);
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    pclose(f);
    return out;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Every entry under dir (type and name, symlinks with their target) and
 * every regular file's SHA-256: equal snapshots mean an untouched tree. */
static char *tree_snapshot(const char *dir)
{
    if (!exists(dir))
        return strdup("<absent>");
    return sh_out("cd '%s' && { find . -printf '%%y %%p %%l\\n' | LC_ALL=C sort; find . -type f -print0 | "
                  "LC_ALL=C sort -z | xargs -0 -r sha256sum; }",
                  dir);
}

/* DBDIR's entries apart from closed log generations (which the job's
 * roll and truncation legitimately add and remove) and the spare next
 * generation (edbtmp.log, prepared in the background), with their types. */
static char *dbdir_names(const char *dir)
{
    return sh_out("cd '%s' && find . -mindepth 1 -printf '%%y %%p\\n' | "
                  "grep -v -e '^f ./edb[0-9A-F]\\{8\\}\\.log$' -e '^f ./edbtmp\\.log$' | LC_ALL=C sort",
                  dir);
}

/* ------------------------------------------------------------------ */
/* Instance and data                                                     */
/* ------------------------------------------------------------------ */
static js_params test_params(void)
{
    js_params p;
    js_params_default(&p);
    p.page_size = 4096;
    p.log_file_size = 64 << 10;
    p.commit_mode = JS_COMMIT_LAZY;
    p.cache_size = 32 << 20;
    p.checkpoint_ms = 3600 * 1000;
    return p;
}

static js_instance *open_inst(const char *dir)
{
    js_params p = test_params();
    js_instance *inst = NULL;
    OK(js_open(dir, &p, &inst));
    return inst;
}

static void fill(js_instance *inst, const char *prefix, int from, int to)
{
    js_session *s;
    char key[64], val[256];
    OK(js_session_open(inst, &s));
    for (int i = from; i < to;) {
        OK(js_txn_begin(s, 0));
        for (int k = 0; k < 50 && i < to; k++, i++) {
            int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
            int vl = snprintf(val, sizeof val, "%s=%d:%0200d", prefix, i, i);
            OK(js_put(s, key, (size_t)kl, val, (size_t)vl));
        }
        OK(js_txn_commit(s, 0));
    }
    js_session_close(s);
}

/* Every key prefix:i, i in [from, to), holds its value. */
static void check_fill(js_instance *inst, const char *prefix, int from, int to)
{
    js_session *s;
    char key[64], val[256];
    OK(js_session_open(inst, &s));
    for (int i = from; i < to; i++) {
        int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
        int vl = snprintf(val, sizeof val, "%s=%d:%0200d", prefix, i, i);
        void *v = NULL;
        size_t got = 0;
        JET_ERR e = js_get(s, key, (size_t)kl, &v, &got);
        cr_assert_eq(e, JET_errSuccess, "%s: %s", key, js_errname(e));
        cr_assert(got == (size_t)vl && !memcmp(v, val, got), "%s has a wrong value", key);
        free(v);
    }
    js_session_close(s);
}

/* The live instance still serves: a write and its read back. */
static void still_serves(js_instance *inst)
{
    js_session *s;
    void *v = NULL;
    size_t vl = 0;
    OK(js_session_open(inst, &s));
    OK(js_put(s, "probe", 5, "alive", 5));
    OK(js_get(s, "probe", 5, &v, &vl));
    cr_assert(vl == 5 && !memcmp(v, "alive", 5));
    free(v);
    js_session_close(s);
}

/* DBDIR after the job: closed, it passes js_check and holds every key. */
static void dbdir_intact(const char *db, int nkeys, int mkeys)
{
    js_check_report rep;
    cr_assert(exists(tp("live/db/" JS_DB_FILE)), "DBDIR lost its " JS_DB_FILE);
    JET_ERR e = js_check(db, &rep);
    cr_assert_eq(e, JET_errSuccess, "js_check of DBDIR: %s: %s", js_errname(e), rep.first_error);
    js_instance *inst = open_inst(db);
    check_fill(inst, "k", 0, nkeys);
    check_fill(inst, "m", 0, mkeys);
    OK(js_close(inst));
}

/* ------------------------------------------------------------------ */
/* The swap                                                              */
/* ------------------------------------------------------------------ */

/* Rename dir to real and put a symlink to elsewhere in its place. */
static void swap(const char *dir, const char *real, const char *elsewhere)
{
    cr_assert_eq(rename(dir, real), 0, "rename %s: %s", dir, strerror(errno));
    cr_assert_eq(symlink(elsewhere, dir), 0, "symlink %s: %s", dir, strerror(errno));
}

typedef struct swapper {
    const char *at;             /* "begin", or the phase that triggers it */
    const char *dir, *real, *elsewhere;
    int cancel;                 /* and cancel the job right there */
    const char *fail_path;      /* and fail the next fail_op matching this */
    int fail_op;
    int done;
} swapper;

static int swap_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    swapper *w = ctx;
    (void)snp;
    if (w->done || snt == JS_SNT_FAIL || snt == JS_SNT_COMPLETE)
        return 0;
    int hit = !strcmp(w->at, "begin") ? snt == JS_SNT_BEGIN
                                      : p && p->phase && !strcmp(p->phase, w->at) && snt == JS_SNT_PROGRESS;
    if (!hit)
        return 0;
    w->done = 1;
    swap(w->dir, w->real, w->elsewhere);
    if (w->fail_path)
        js_fault_arm(w->fail_op, 1, EIO, -1, w->fail_path);
    return w->cancel;
}

/* ------------------------------------------------------------------ */
/* Backup jobs                                                           */
/* ------------------------------------------------------------------ */
enum job { FULL_PLAIN, FULL_ATOMIC, INC_PLAIN, INC_ATOMIC };
enum when { AT_PREPARE, AT_COPY, AT_PUBLISH, AT_PUBLISH_FAILING, AT_FAILURE, AT_CANCEL };

#define NKEYS 600
#define MKEYS 300

static void backup_swap(enum job job, enum when when)
{
    const char *db = tp("live/db"), *dest = tp("R/q/db");
    int inc = job == INC_PLAIN || job == INC_ATOMIC, atomic = job == FULL_ATOMIC || job == INC_ATOMIC;
    unsigned flags = (atomic ? JS_BACKUP_ATOMIC : 0) | (inc ? JS_BACKUP_INCREMENTAL : JS_BACKUP_CREATE_DIR);
    js_params p = test_params();
    cr_assert_eq(sh("mkdir -p '%s' '%s'", tp("live"), tp("R/q")), 0);
    OK(js_create(db, &p));
    js_instance *inst = open_inst(db);
    fill(inst, "k", 0, NKEYS);
    if (inc)
        OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR | (atomic ? JS_BACKUP_ATOMIC : 0), NULL, NULL));
    fill(inst, "m", 0, MKEYS);
    char *q_before = tree_snapshot(tp("R/q"));
    char *names_before = dbdir_names(db);

    swapper w = { .dir = tp("R/q"), .real = tp("R/q.real"), .elsewhere = tp("live") };
    const char *copy_phase = inc ? "copy-logs" : "copy-database";
    switch (when) {
    case AT_PREPARE: w.at = "begin"; break;
    case AT_COPY: w.at = copy_phase; break;
    case AT_PUBLISH: w.at = "publish"; break;
    case AT_PUBLISH_FAILING: w.at = "publish"; w.fail_op = JS_FAULT_FSYNC; w.fail_path = dest; break;
    case AT_FAILURE: w.at = copy_phase; w.fail_op = JS_FAULT_WRITE; w.fail_path = "backup.info"; break;
    case AT_CANCEL: w.at = copy_phase; w.cancel = 1; break;
    }
    JET_ERR r = js_backup(inst, dest, flags, swap_cb, &w);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    js_fault_reset();
    cr_assert(w.done, "the swap at %s never happened", w.at);

    /* Outside: DBDIR keeps its own files and serves; nothing next to it. */
    char *names_after = dbdir_names(db);
    cr_expect_str_eq(names_after, names_before, "DBDIR's entries changed:\n%s\nwere:\n%s", names_after, names_before);
    char *beside = sh_out("ls -A '%s'", tp("live"));
    cr_expect_str_eq(beside, "db\n", "something was made next to DBDIR");
    free(beside);
    char link[PATH_MAX] = "";
    ssize_t l = readlink(tp("R/q"), link, sizeof link - 1);
    cr_expect(l > 0 && !strcmp((link[l] = '\0', link), tp("live")), "the swapped-in symlink was changed");
    still_serves(inst);
    OK(js_close(inst));
    dbdir_intact(db, NKEYS, MKEYS);

    /* Inside: the job worked in the directory it held. */
    const char *held = tp("R/q.real/db");
    if (when == AT_FAILURE || when == AT_CANCEL || when == AT_PUBLISH_FAILING) {
        cr_expect_eq(r, when == AT_CANCEL ? JET_errBackupAbortByServer : JET_errDiskIO, "the job: %s (%d): %s",
                     js_errname(r), r, detail);
        char *q_after = tree_snapshot(tp("R/q.real"));
        cr_expect_str_eq(q_after, q_before, "a failed job left its directory changed");
        free(q_after);
    } else {
        cr_assert_eq(r, JET_errSuccess, "the job failed: %s (%d): %s", js_errname(r), r, detail);
        cr_expect_eq(sh("cd '%s%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", held, atomic ? "/new" : ""), 0,
                     "the set in the held directory does not pass sha256sum -c");
        cr_expect(!exists(tp("R/q.real/db/temp")) && !exists(tp("R/q.real/db/old")) &&
                      !exists(tp("R/q.real/db/.jetsnap-incremental")),
                  "the job left its work directories behind");
        /* And it restores, with the data of the moment. */
        OK(js_restore(held, tp("restored"), NULL, 0, NULL, NULL));
        inst = open_inst(tp("restored"));
        check_fill(inst, "k", 0, NKEYS);
        check_fill(inst, "m", 0, MKEYS);
        OK(js_close(inst));
    }
    free(q_before);
    free(names_before);
    free(names_after);
}

Test(dest, full_plain_swap_at_prepare) { backup_swap(FULL_PLAIN, AT_PREPARE); }
Test(dest, full_plain_swap_at_copy) { backup_swap(FULL_PLAIN, AT_COPY); }
/* A plain full backup's publish only makes the set durable: the swap there
 * matters when publishing fails and the job cleans up. */
Test(dest, full_plain_swap_at_publish_then_failure) { backup_swap(FULL_PLAIN, AT_PUBLISH_FAILING); }
Test(dest, full_plain_swap_then_failure) { backup_swap(FULL_PLAIN, AT_FAILURE); }
Test(dest, full_plain_swap_then_cancel) { backup_swap(FULL_PLAIN, AT_CANCEL); }
Test(dest, full_atomic_swap_at_prepare) { backup_swap(FULL_ATOMIC, AT_PREPARE); }
Test(dest, full_atomic_swap_at_copy) { backup_swap(FULL_ATOMIC, AT_COPY); }
Test(dest, full_atomic_swap_at_publish) { backup_swap(FULL_ATOMIC, AT_PUBLISH); }
Test(dest, full_atomic_swap_at_publish_then_failure) { backup_swap(FULL_ATOMIC, AT_PUBLISH_FAILING); }
Test(dest, full_atomic_swap_then_failure) { backup_swap(FULL_ATOMIC, AT_FAILURE); }
Test(dest, full_atomic_swap_then_cancel) { backup_swap(FULL_ATOMIC, AT_CANCEL); }
Test(dest, incremental_plain_swap_at_prepare) { backup_swap(INC_PLAIN, AT_PREPARE); }
Test(dest, incremental_plain_swap_at_copy) { backup_swap(INC_PLAIN, AT_COPY); }
Test(dest, incremental_plain_swap_at_publish) { backup_swap(INC_PLAIN, AT_PUBLISH); }
Test(dest, incremental_plain_swap_at_publish_then_failure) { backup_swap(INC_PLAIN, AT_PUBLISH_FAILING); }
Test(dest, incremental_plain_swap_then_failure) { backup_swap(INC_PLAIN, AT_FAILURE); }
Test(dest, incremental_plain_swap_then_cancel) { backup_swap(INC_PLAIN, AT_CANCEL); }
Test(dest, incremental_atomic_swap_at_prepare) { backup_swap(INC_ATOMIC, AT_PREPARE); }
Test(dest, incremental_atomic_swap_at_copy) { backup_swap(INC_ATOMIC, AT_COPY); }
Test(dest, incremental_atomic_swap_at_publish) { backup_swap(INC_ATOMIC, AT_PUBLISH); }
Test(dest, incremental_atomic_swap_at_publish_then_failure) { backup_swap(INC_ATOMIC, AT_PUBLISH_FAILING); }
Test(dest, incremental_atomic_swap_then_failure) { backup_swap(INC_ATOMIC, AT_FAILURE); }
Test(dest, incremental_atomic_swap_then_cancel) { backup_swap(INC_ATOMIC, AT_CANCEL); }

/* ------------------------------------------------------------------ */
/* Restore's TARGET and its set                                          */
/* ------------------------------------------------------------------ */
enum rs_when { RS_BEGIN, RS_COPY, RS_REPLAY, RS_CANCEL };

/* A live instance with data, closed (so its directory can be hashed), and
 * a full backup of it in T/set. */
static void live_and_set(void)
{
    js_params p = test_params();
    cr_assert_eq(sh("mkdir -p '%s' '%s'", tp("live"), tp("R/q")), 0);
    OK(js_create(tp("live/db"), &p));
    js_instance *inst = open_inst(tp("live/db"));
    fill(inst, "k", 0, NKEYS);
    fill(inst, "m", 0, MKEYS);
    OK(js_backup(inst, tp("set"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_close(inst));
}

static void restore_swap(enum rs_when when)
{
    live_and_set();
    char *live_before = tree_snapshot(tp("live"));
    swapper w = { .dir = tp("R/q"), .real = tp("R/q.real"), .elsewhere = tp("live") };
    switch (when) {
    case RS_BEGIN: w.at = "begin"; break;
    case RS_COPY: w.at = "copy-database"; break;
    case RS_REPLAY: w.at = "replay"; break;
    case RS_CANCEL: w.at = "copy-database"; w.cancel = 1; break;
    }
    JET_ERR r = js_restore(tp("set"), tp("R/q/db"), NULL, 0, swap_cb, &w);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    cr_assert(w.done, "the swap at %s never happened", w.at);

    char *live_after = tree_snapshot(tp("live"));
    cr_expect_str_eq(live_after, live_before, "DBDIR (or something next to it) changed");
    dbdir_intact(tp("live/db"), NKEYS, MKEYS);
    if (when == RS_CANCEL) {
        cr_expect_eq(r, JET_errBackupAbortByServer, "the restore: %s (%d): %s", js_errname(r), r, detail);
        char *left = sh_out("ls -A '%s'", tp("R/q.real"));
        cr_expect_str_eq(left, "", "a failed restore left TARGET behind");
        free(left);
    } else {
        cr_assert_eq(r, JET_errSuccess, "the restore failed: %s (%d): %s", js_errname(r), r, detail);
        js_instance *inst = open_inst(tp("R/q.real/db"));
        check_fill(inst, "k", 0, NKEYS);
        check_fill(inst, "m", 0, MKEYS);
        OK(js_close(inst));
    }
    free(live_before);
    free(live_after);
}

Test(dest, restore_target_swap_before_it_is_made) { restore_swap(RS_BEGIN); }
Test(dest, restore_target_swap_during_copy) { restore_swap(RS_COPY); }
Test(dest, restore_target_swap_during_replay) { restore_swap(RS_REPLAY); }
Test(dest, restore_target_swap_then_cancel) { restore_swap(RS_CANCEL); }

/* The set a restore reads is the one it resolved first: BACKUP swapped for
 * a symlink to another (valid) set mid-copy does not mix the two. */
Test(dest, restore_reads_the_set_it_resolved)
{
    live_and_set();
    js_params p = test_params();
    cr_assert_eq(mkdir(tp("other"), 0700), 0);
    OK(js_create(tp("other/db"), &p));
    js_instance *inst = open_inst(tp("other/db"));
    fill(inst, "x", 0, 200);
    OK(js_backup(inst, tp("other/set"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_close(inst));
    cr_assert_eq(sh("mkdir -p '%s' && mv '%s' '%s'", tp("S"), tp("set"), tp("S/set")), 0);
    swapper w = { .at = "copy-database", .dir = tp("S"), .real = tp("S.real"), .elsewhere = tp("other") };
    JET_ERR r = js_restore(tp("S/set"), tp("restored"), NULL, 0, swap_cb, &w);
    cr_assert(w.done);
    cr_assert_eq(r, JET_errSuccess, "the restore failed: %s (%d): %s", js_errname(r), r, js_errdetail());
    inst = open_inst(tp("restored"));
    check_fill(inst, "k", 0, NKEYS);
    check_fill(inst, "m", 0, MKEYS);
    OK(js_close(inst));
}

/* ------------------------------------------------------------------ */
/* Beneath a backup root (js_backup_beneath)                             */
/* ------------------------------------------------------------------ */

/* The issue's second case: an atomic job into R/p/d, R/p swapped for a
 * symlink to a directory outside R (with d/old/, d/new/ and d/temp/ in
 * it) before publishing.  The previous set goes to old/ and is removed in
 * the held DEST; OUTSIDE/d/old/ keeps its file. */
Test(dest, atomic_beneath_root_swap_to_outside)
{
    js_params p = test_params();
    cr_assert_eq(sh("mkdir -p '%s' '%s' '%s' '%s' '%s' && echo keep > '%s' && echo keep > '%s'", tp("live"),
                    tp("R/p"), tp("out/d/old"), tp("out/d/new"), tp("out/d/temp"), tp("out/d/old/file"),
                    tp("out/d/new/backup.info")),
                 0);
    OK(js_create(tp("live/db"), &p));
    js_instance *inst = open_inst(tp("live/db"));
    fill(inst, "k", 0, NKEYS);
    int root_fd = open(tp("R"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    OK(js_backup_beneath(inst, root_fd, tp("R"), tp("R/p/d"), JS_BACKUP_ATOMIC | JS_BACKUP_CREATE_DIR, NULL,
                         NULL));
    fill(inst, "m", 0, MKEYS);
    char *out_before = tree_snapshot(tp("out"));
    swapper w = { .at = "publish", .dir = tp("R/p"), .real = tp("R/p.real"), .elsewhere = tp("out") };
    JET_ERR r = js_backup_beneath(inst, root_fd, tp("R"), tp("R/p/d"), JS_BACKUP_ATOMIC, swap_cb, &w);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    close(root_fd);
    still_serves(inst);
    OK(js_close(inst));
    cr_assert(w.done);
    cr_assert_eq(r, JET_errSuccess, "the job failed: %s (%d): %s", js_errname(r), r, detail);
    char *out_after = tree_snapshot(tp("out"));
    cr_expect_str_eq(out_after, out_before, "the job wrote or removed outside the backup root");
    cr_expect_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tp("R/p.real/d/new")), 0);
    cr_expect(!exists(tp("R/p.real/d/old")) && !exists(tp("R/p.real/d/temp")));
    dbdir_intact(tp("live/db"), NKEYS, MKEYS);
    free(out_before);
    free(out_after);
}

/* Make openat2 fail with ENOSYS in this process (each test runs in its
 * own), as on kernels before 5.6, so os_open_beneath takes its walk. */
static void without_openat2(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0, "seccomp: %s", strerror(errno));
    cr_assert_eq(syscall(SYS_openat2, AT_FDCWD, ".", NULL, 0), -1);
    cr_assert_eq(errno, ENOSYS);
}

/* What is refused when the job is accepted: outside the root, a symlink
 * on the way or at the end, a parent missing.  Nothing is made anywhere. */
static void beneath_root_refusals(void)
{
    js_params p = test_params();
    cr_assert_eq(sh("mkdir -p '%s' '%s' '%s' && ln -s '%s' '%s' && ln -s '%s' '%s'", tp("live"), tp("R/in"),
                    tp("out"), tp("out"), tp("R/link"), tp("out"), tp("R/in/last")),
                 0);
    OK(js_create(tp("live/db"), &p));
    js_instance *inst = open_inst(tp("live/db"));
    int root_fd = open(tp("R"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    struct { const char *dest; unsigned flags; JET_ERR want; } cases[] = {
        { tp("out/x"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },
        { tp("Rx/y"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },          /* a prefix, not beneath */
        { tp("R/link/x"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },      /* symlink on the way */
        { tp("R/link"), JS_BACKUP_ATOMIC, JET_errInvalidPath },            /* symlink at the end */
        { tp("R/in/last"), JS_BACKUP_ATOMIC | JS_BACKUP_CREATE_DIR, JET_errInvalidPath },
        { tp("R/in/../../out"), JS_BACKUP_ATOMIC, JET_errInvalidPath },    /* .. out of the root */
        { tp("R/in/missing"), JS_BACKUP_ATOMIC, JET_errInvalidPath },
        { tp("R/no/such/x"), JS_BACKUP_CREATE_DIR, JET_errMakeBackupDirectoryFail },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        JET_ERR r = js_backup_beneath(inst, root_fd, tp("R"), cases[i].dest, cases[i].flags, NULL, NULL);
        cr_expect_eq(r, cases[i].want, "%s: %s (%d) [%s], expected %s", cases[i].dest, js_errname(r), r,
                     js_errdetail(), js_errname(cases[i].want));
    }
    char *left = sh_out("ls -A '%s'; ls -A '%s'", tp("out"), tp("R/in"));
    cr_expect_str_eq(left, "last\n", "a refused job made something");
    free(left);
    /* Beneath the root, without symlinks: accepted. */
    OK(js_backup_beneath(inst, root_fd, tp("R"), tp("R/in/ok"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    cr_expect_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tp("R/in/ok")), 0);
    close(root_fd);
    OK(js_close(inst));
}

Test(dest, beneath_root_refusals) { beneath_root_refusals(); }

Test(dest, beneath_root_refusals_without_openat2)
{
    without_openat2();
    beneath_root_refusals();
}

/* ------------------------------------------------------------------ */
/* Through the daemon: backup_root, the control file, a throttled copy   */
/* ------------------------------------------------------------------ */
static char M[PATH_MAX], mdb[PATH_MAX], mnt[PATH_MAX], mlog[PATH_MAX], daemon_bin[PATH_MAX];
static pid_t daemon_pid = -1;

static char *mp(const char *rel)
{
    static char bufs[16][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 16];
    snprintf(p, PATH_MAX, "%s/%s", M, rel);
    return p;
}

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

static int is_mounted(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192], m[PATH_MAX];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%*u %*u %*s %*s %4095s", m) == 1 && !strcmp(m, path) && strstr(line, " - fuse"))
            found = 1;
    fclose(f);
    return found;
}

static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0)
            len += (size_t)n;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

static void dump_log(void)
{
    char *l = slurp(mlog);
    if (l && *l)
        fprintf(stderr, "---- daemon output (%s):\n%s----\n", mlog, l);
    free(l);
}

/* Value of `key: ` in the mount's status file. */
static void status_get(const char *key, char *out, size_t cap)
{
    char path[PATH_MAX + 16], pat[64];
    snprintf(path, sizeof path, "%s/status", mnt);
    char *s = slurp(path);
    if (!s) {
        dump_log();
        cr_assert_fail("cannot read status: %s", strerror(errno));
    }
    snprintf(pat, sizeof pat, "\n%s: ", key);
    char *at = strstr(s, pat);
    if (!at && !strncmp(s, pat + 1, strlen(pat + 1)))
        at = s - 1;
    cr_assert_not_null(at, "no key %s in status:\n%s", key, s);
    at += strlen(pat);
    snprintf(out, cap, "%.*s", (int)strcspn(at, "\n"), at);
    free(s);
}

/* Wait until status `state` is one of the |-separated words. */
static void wait_state(const char *states, long timeout_ms, char *state_out)
{
    char st[64], pat[80], hay[256];
    int64_t end = now_ms() + timeout_ms;
    snprintf(hay, sizeof hay, "|%s|", states);
    for (;;) {
        status_get("state", st, sizeof st);
        snprintf(pat, sizeof pat, "|%s|", st);
        if (strstr(hay, pat))
            break;
        cr_assert(now_ms() < end, "status state stayed '%s', wanted %s", st, states);
        sleep_ms(20);
    }
    if (state_out)
        strcpy(state_out, st);
}

static void msetup(void)
{
    char t[] = "/tmp/jsdest-fs.XXXXXX";
    const char *b = getenv("BUILD");
    char p[PATH_MAX];
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        cr_skip_test("/dev/fuse cannot be opened");
    close(fd);
    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, M));
    snprintf(mdb, sizeof mdb, "%s/live/db", M);
    snprintf(mnt, sizeof mnt, "%s/mnt", M);
    snprintf(mlog, sizeof mlog, "%s/daemon.log", M);
    cr_assert_eq(sh("mkdir -p '%s' '%s' '%s'", mp("live"), mnt, mp("R")), 0);
    snprintf(p, sizeof p, "%s/jetsnapfs", b && *b ? b : "build");
    cr_assert_not_null(realpath(p, daemon_bin), "no daemon at %s (build it first)", p);
    daemon_pid = -1;
}

static void mteardown(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
    if (M[0]) {
        for (int i = 0; i < 50 && is_mounted(mnt); i++) {
            umount2(mnt, MNT_DETACH);
            sleep_ms(20);
        }
        nftw(M, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

TestSuite(fs_dest, .init = msetup, .fini = mteardown, .timeout = 90);

/* A database of mib MiB of incompressible values (k000000...). */
static void fill_big(int mib)
{
    js_instance *inst;
    js_session *s;
    js_params prm;
    char key[32];
    size_t vsize = 1 << 20;
    uint8_t *v = malloc(vsize);
    uint64_t x = 88172645463325252ull;
    OK(js_create(mdb, NULL));
    js_params_default(&prm);
    prm.commit_mode = JS_COMMIT_LAZY;
    OK(js_open(mdb, &prm, &inst));
    OK(js_session_open(inst, &s));
    for (int i = 0; i < mib; i++) {
        for (size_t j = 0; j < vsize; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[j] = (uint8_t)x;
        }
        snprintf(key, sizeof key, "k%06d", i);
        OK(js_put(s, key, strlen(key), v, vsize));
    }
    js_session_close(s);
    OK(js_close(inst));
    free(v);
}

/* jetsnapfs -f -o auto_unmount,OPTS DBDIR MNT, mounted and idle. */
static void start_daemon(const char *opts)
{
    char o[2048];
    int64_t end = now_ms() + 15000;
    struct stat sb;
    int status;
    snprintf(o, sizeof o, "auto_unmount,%s", opts);
    daemon_pid = fork();
    cr_assert(daemon_pid >= 0);
    if (daemon_pid == 0) {
        int fd = open(mlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(daemon_bin, daemon_bin, "-f", "-o", o, mdb, mnt, (char *)NULL);
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
    wait_state("idle", 30000, NULL);
}

static void stop_daemon(void)
{
    int status = -1;
    int64_t end = now_ms() + 20000;
    kill(daemon_pid, SIGTERM);
    while (waitpid(daemon_pid, &status, WNOHANG) != daemon_pid) {
        if (now_ms() > end) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, &status, 0);
            daemon_pid = -1;
            cr_assert_fail("daemon did not stop within 20 s");
        }
        sleep_ms(5);
    }
    daemon_pid = -1;
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status %d", status);
}

/* One write(2) of cmd to control: 0 or errno. */
static int control(const char *cmd)
{
    char ctl[PATH_MAX + 16], line[PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "%s\n", cmd), rc = 0;
    snprintf(ctl, sizeof ctl, "%s/control", mnt);
    int fd = open(ctl, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (write(fd, line, (size_t)n) != n)
        rc = errno;
    close(fd);
    return rc;
}

/* Wait for the running job to be copying (status phase), then swap. */
static void swap_while_copying(const char *dir, const char *real, const char *elsewhere)
{
    char phase[64], state[64];
    int64_t end = now_ms() + 30000;
    for (;;) {
        status_get("phase", phase, sizeof phase);
        if (!strcmp(phase, "copy-database"))
            break;
        cr_assert(now_ms() < end, "the job never reached copy-database (phase %s)", phase);
        sleep_ms(5);
    }
    swap(dir, real, elsewhere);
    status_get("phase", phase, sizeof phase);
    status_get("state", state, sizeof state);
    cr_assert(!strcmp(state, "running") && !strcmp(phase, "copy-database"),
              "the copy ended before the swap (state %s, phase %s): the copy is too fast to test", state, phase);
}

#define BIG_MIB 16

/* After the job: DBDIR passes js_check and holds every key. */
static void big_dbdir_intact(void)
{
    js_check_report rep;
    js_instance *inst;
    js_session *s;
    uint64_t n = 0;
    JET_ERR e = js_check(mdb, &rep);
    cr_assert_eq(e, JET_errSuccess, "js_check of DBDIR: %s: %s", js_errname(e), rep.first_error);
    OK(js_open(mdb, NULL, &inst));
    OK(js_session_open(inst, &s));
    OK(js_count(s, &n));
    cr_expect_eq(n, BIG_MIB, "DBDIR holds %llu keys, not %d", (unsigned long long)n, BIG_MIB);
    js_session_close(s);
    OK(js_close(inst));
}

/* The issue's first case, as reported: `R/q/db create`, and while it
 * copies `mv R/q R/q.real && ln -s DBDIR_PARENT R/q`.  The job used to fail
 * with EEXIST on a log copy and its cleanup unlinked R/q/db/jetsnap.edb,
 * which then was DBDIR's. */
Test(fs_dest, backup_root_swap_to_dbdir_parent_while_copying)
{
    char cmd[PATH_MAX + 64], state[64];
    fill_big(BIG_MIB);
    cr_assert_eq(mkdir(mp("R/q"), 0700), 0);
    snprintf(cmd, sizeof cmd, "backup_root=%s,backup_max_rate=4M", mp("R"));
    start_daemon(cmd);
    char *names_before = dbdir_names(mdb);
    snprintf(cmd, sizeof cmd, "%s create", mp("R/q/db"));
    cr_assert_eq(control(cmd), 0);
    swap_while_copying(mp("R/q"), mp("R/q.real"), mp("live"));
    wait_state("succeeded|failed|cancelled", 60000, state);
    char result[256] = "", message[512] = "";
    status_get("result", result, sizeof result);
    status_get("message", message, sizeof message);
    char *names_after = dbdir_names(mdb);
    stop_daemon();
    cr_expect_str_eq(state, "succeeded", "the job: %s: %s", result, message);
    cr_expect_str_eq(names_after, names_before, "DBDIR's entries changed:\n%s\nwere:\n%s", names_after,
                     names_before);
    cr_expect_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", mp("R/q.real/db")), 0,
                 "the set in the held DEST does not pass sha256sum -c");
    big_dbdir_intact();
    free(names_before);
    free(names_after);
}

/* The issue's second case: an atomic job into R/p/d (which holds a set),
 * R/p swapped for a symlink to OUTSIDE while it copies.  The job used to
 * succeed, write its set into OUTSIDE/d and delete OUTSIDE/d/old/'s file. */
Test(fs_dest, backup_root_atomic_swap_to_outside_while_copying)
{
    char cmd[PATH_MAX + 64], state[64];
    fill_big(BIG_MIB);
    cr_assert_eq(sh("mkdir -p '%s' '%s' '%s' '%s' && echo keep > '%s' && echo keep > '%s'", mp("R/p"),
                    mp("out/d/old"), mp("out/d/new"), mp("out/d/temp"), mp("out/d/old/file"),
                    mp("out/d/new/backup.info")),
                 0);
    snprintf(cmd, sizeof cmd, "backup_root=%s,backup_max_rate=8M", mp("R"));
    start_daemon(cmd);
    snprintf(cmd, sizeof cmd, "%s create atomic wait", mp("R/p/d"));
    cr_assert_eq(control(cmd), 0);
    char *out_before = tree_snapshot(mp("out"));
    snprintf(cmd, sizeof cmd, "%s atomic", mp("R/p/d"));
    cr_assert_eq(control(cmd), 0);
    swap_while_copying(mp("R/p"), mp("R/p.real"), mp("out"));
    wait_state("succeeded|failed|cancelled", 60000, state);
    char result[256] = "", message[512] = "";
    status_get("result", result, sizeof result);
    status_get("message", message, sizeof message);
    stop_daemon();
    cr_expect_str_eq(state, "succeeded", "the job: %s: %s", result, message);
    char *out_after = tree_snapshot(mp("out"));
    cr_expect_str_eq(out_after, out_before, "the job wrote or removed outside backup_root");
    cr_expect_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", mp("R/p.real/d/new")), 0,
                 "the new set in the held DEST does not pass sha256sum -c");
    cr_expect(!exists(mp("R/p.real/d/old")) && !exists(mp("R/p.real/d/temp")));
    big_dbdir_intact();
    free(out_before);
    free(out_after);
}

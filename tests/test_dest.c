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
 * Layout in the test's scratch directory T (tl_tmp):
 *   live/db        DBDIR of the live instance (named "db" on purpose)
 *   R/q/db         DEST (or TARGET); R/q is swapped for a symlink to live/,
 *                  so that R/q/db names DBDIR after the swap
 *   R/q.real       where R/q went: the job's held directory lives here
 * The last tests go through the daemon (fs_dest suite): backup_root, the
 * control file and a throttled copy, as an administrator would meet it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bkset.h"
#include "fsmount.h"
#include "proc.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */
/* Scratch directory and what the tests compare                          */
/* ------------------------------------------------------------------ */
static void setup(void)
{
    tl_tmp_setup("jsdest");
    js_fault_reset();
}

static void teardown(void)
{
    js_fault_reset();
    tl_tmp_teardown();   /* never through a symlink */
}

TestSuite(dest, .init = setup, .fini = teardown, .timeout = 60);

/* Every entry under dir (type and name, symlinks with their target) and
 * every regular file's SHA-256: equal snapshots mean an untouched tree.
 * Unlike tl_tree_snapshot it lists symlinks, which are what the swaps
 * put in place. */
static char *tree_snapshot(const char *dir)
{
    if (!tl_exists(dir))
        return strdup("<absent>");
    return tl_sh_out("cd '%s' && { find . -printf '%%y %%p %%l\\n' | LC_ALL=C sort; find . -type f -print0 | "
                     "LC_ALL=C sort -z | xargs -0 -r sha256sum; }",
                     dir);
}

/* DBDIR's entries apart from closed log generations (which the job's
 * roll and truncation legitimately add and remove) and the spare next
 * generation (edbtmp.log, prepared in the background), with their types. */
static char *dbdir_names(const char *dir)
{
    return tl_sh_out("cd '%s' && find . -mindepth 1 -printf '%%y %%p\\n' | "
                     "grep -v -e '^f ./edb[0-9A-F]\\{8\\}\\.log$' -e '^f ./edbtmp\\.log$' | LC_ALL=C sort",
                     dir);
}

/* ------------------------------------------------------------------ */
/* Instance and data                                                     */
/* ------------------------------------------------------------------ */
#define VLEN 206   /* bytes of each value tl_fill writes */

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
    cr_assert(tl_exists(tl_tp("live/db/" JS_DB_FILE)), "DBDIR lost its " JS_DB_FILE);
    JET_ERR e = js_check(db, &rep);
    cr_assert_eq(e, JET_errSuccess, "js_check of DBDIR: %s: %s", js_errname(e), rep.first_error);
    js_instance *inst = tl_reopen(db);
    tl_check_fill(inst, "k", 0, nkeys, VLEN);
    tl_check_fill(inst, "m", 0, mkeys, VLEN);
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
    const char *db = tl_tp("live/db"), *dest = tl_tp("R/q/db");
    int inc = job == INC_PLAIN || job == INC_ATOMIC, atomic = job == FULL_ATOMIC || job == INC_ATOMIC;
    unsigned flags = (atomic ? JS_BACKUP_ATOMIC : 0) | (inc ? JS_BACKUP_INCREMENTAL : JS_BACKUP_CREATE_DIR);
    js_params p = tl_test_params();
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s'", tl_tp("live"), tl_tp("R/q")), 0);
    OK(js_create(db, &p));
    js_instance *inst = tl_reopen(db);
    tl_fill(inst, "k", 0, NKEYS, VLEN);
    if (inc)
        OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR | (atomic ? JS_BACKUP_ATOMIC : 0), NULL, NULL));
    tl_fill(inst, "m", 0, MKEYS, VLEN);
    char *q_before = tree_snapshot(tl_tp("R/q"));
    char *names_before = dbdir_names(db);

    swapper w = { .dir = tl_tp("R/q"), .real = tl_tp("R/q.real"), .elsewhere = tl_tp("live") };
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
    char *beside = tl_sh_out("ls -A '%s'", tl_tp("live"));
    cr_expect_str_eq(beside, "db\n", "something was made next to DBDIR");
    free(beside);
    char link[PATH_MAX] = "";
    ssize_t l = readlink(tl_tp("R/q"), link, sizeof link - 1);
    cr_expect(l > 0 && !strcmp((link[l] = '\0', link), tl_tp("live")), "the swapped-in symlink was changed");
    still_serves(inst);
    OK(js_close(inst));
    dbdir_intact(db, NKEYS, MKEYS);

    /* Inside: the job worked in the directory it held. */
    const char *held = tl_tp("R/q.real/db");
    if (when == AT_FAILURE || when == AT_CANCEL || when == AT_PUBLISH_FAILING) {
        cr_expect_eq(r, when == AT_CANCEL ? JET_errBackupAbortByServer : JET_errDiskIO, "the job: %s (%d): %s",
                     js_errname(r), r, detail);
        char *q_after = tree_snapshot(tl_tp("R/q.real"));
        cr_expect_str_eq(q_after, q_before, "a failed job left its directory changed");
        free(q_after);
    } else {
        cr_assert_eq(r, JET_errSuccess, "the job failed: %s (%d): %s", js_errname(r), r, detail);
        cr_expect_eq(tl_sh("cd '%s%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", held, atomic ? "/new" : ""), 0,
                     "the set in the held directory does not pass sha256sum -c");
        cr_expect(!tl_exists(tl_tp("R/q.real/db/temp")) && !tl_exists(tl_tp("R/q.real/db/old")) &&
                      !tl_exists(tl_tp("R/q.real/db/.jetsnap-incremental")),
                  "the job left its work directories behind");
        /* And it restores, with the data of the moment. */
        OK(js_restore(held, tl_tp("restored"), NULL, 0, NULL, NULL));
        inst = tl_reopen(tl_tp("restored"));
        tl_check_fill(inst, "k", 0, NKEYS, VLEN);
        tl_check_fill(inst, "m", 0, MKEYS, VLEN);
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
    js_params p = tl_test_params();
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s'", tl_tp("live"), tl_tp("R/q")), 0);
    OK(js_create(tl_tp("live/db"), &p));
    js_instance *inst = tl_reopen(tl_tp("live/db"));
    tl_fill(inst, "k", 0, NKEYS, VLEN);
    tl_fill(inst, "m", 0, MKEYS, VLEN);
    OK(js_backup(inst, tl_tp("set"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_close(inst));
}

static void restore_swap(enum rs_when when)
{
    live_and_set();
    char *live_before = tree_snapshot(tl_tp("live"));
    swapper w = { .dir = tl_tp("R/q"), .real = tl_tp("R/q.real"), .elsewhere = tl_tp("live") };
    switch (when) {
    case RS_BEGIN: w.at = "begin"; break;
    case RS_COPY: w.at = "copy-database"; break;
    case RS_REPLAY: w.at = "replay"; break;
    case RS_CANCEL: w.at = "copy-database"; w.cancel = 1; break;
    }
    JET_ERR r = js_restore(tl_tp("set"), tl_tp("R/q/db"), NULL, 0, swap_cb, &w);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    cr_assert(w.done, "the swap at %s never happened", w.at);

    char *live_after = tree_snapshot(tl_tp("live"));
    cr_expect_str_eq(live_after, live_before, "DBDIR (or something next to it) changed");
    dbdir_intact(tl_tp("live/db"), NKEYS, MKEYS);
    if (when == RS_CANCEL) {
        cr_expect_eq(r, JET_errBackupAbortByServer, "the restore: %s (%d): %s", js_errname(r), r, detail);
        char *left = tl_sh_out("ls -A '%s'", tl_tp("R/q.real"));
        cr_expect_str_eq(left, "", "a failed restore left TARGET behind");
        free(left);
    } else {
        cr_assert_eq(r, JET_errSuccess, "the restore failed: %s (%d): %s", js_errname(r), r, detail);
        js_instance *inst = tl_reopen(tl_tp("R/q.real/db"));
        tl_check_fill(inst, "k", 0, NKEYS, VLEN);
        tl_check_fill(inst, "m", 0, MKEYS, VLEN);
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
    js_params p = tl_test_params();
    cr_assert_eq(mkdir(tl_tp("other"), 0700), 0);
    OK(js_create(tl_tp("other/db"), &p));
    js_instance *inst = tl_reopen(tl_tp("other/db"));
    tl_fill(inst, "x", 0, 200, VLEN);
    OK(js_backup(inst, tl_tp("other/set"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_close(inst));
    cr_assert_eq(tl_sh("mkdir -p '%s' && mv '%s' '%s'", tl_tp("S"), tl_tp("set"), tl_tp("S/set")), 0);
    swapper w = { .at = "copy-database", .dir = tl_tp("S"), .real = tl_tp("S.real"), .elsewhere = tl_tp("other") };
    JET_ERR r = js_restore(tl_tp("S/set"), tl_tp("restored"), NULL, 0, swap_cb, &w);
    cr_assert(w.done);
    cr_assert_eq(r, JET_errSuccess, "the restore failed: %s (%d): %s", js_errname(r), r, js_errdetail());
    inst = tl_reopen(tl_tp("restored"));
    tl_check_fill(inst, "k", 0, NKEYS, VLEN);
    tl_check_fill(inst, "m", 0, MKEYS, VLEN);
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
    js_params p = tl_test_params();
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s' '%s' '%s' '%s' && echo keep > '%s' && echo keep > '%s'", tl_tp("live"),
                    tl_tp("R/p"), tl_tp("out/d/old"), tl_tp("out/d/new"), tl_tp("out/d/temp"), tl_tp("out/d/old/file"),
                    tl_tp("out/d/new/backup.info")),
                 0);
    OK(js_create(tl_tp("live/db"), &p));
    js_instance *inst = tl_reopen(tl_tp("live/db"));
    tl_fill(inst, "k", 0, NKEYS, VLEN);
    int root_fd = open(tl_tp("R"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    OK(js_backup_beneath(inst, root_fd, tl_tp("R"), tl_tp("R/p/d"), JS_BACKUP_ATOMIC | JS_BACKUP_CREATE_DIR, NULL,
                         NULL));
    tl_fill(inst, "m", 0, MKEYS, VLEN);
    char *out_before = tree_snapshot(tl_tp("out"));
    swapper w = { .at = "publish", .dir = tl_tp("R/p"), .real = tl_tp("R/p.real"), .elsewhere = tl_tp("out") };
    JET_ERR r = js_backup_beneath(inst, root_fd, tl_tp("R"), tl_tp("R/p/d"), JS_BACKUP_ATOMIC, swap_cb, &w);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    close(root_fd);
    still_serves(inst);
    OK(js_close(inst));
    cr_assert(w.done);
    cr_assert_eq(r, JET_errSuccess, "the job failed: %s (%d): %s", js_errname(r), r, detail);
    char *out_after = tree_snapshot(tl_tp("out"));
    cr_expect_str_eq(out_after, out_before, "the job wrote or removed outside the backup root");
    cr_expect_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tl_tp("R/p.real/d/new")), 0);
    cr_expect(!tl_exists(tl_tp("R/p.real/d/old")) && !tl_exists(tl_tp("R/p.real/d/temp")));
    dbdir_intact(tl_tp("live/db"), NKEYS, MKEYS);
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
    js_params p = tl_test_params();
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s' '%s' && ln -s '%s' '%s' && ln -s '%s' '%s'", tl_tp("live"), tl_tp("R/in"),
                    tl_tp("out"), tl_tp("out"), tl_tp("R/link"), tl_tp("out"), tl_tp("R/in/last")),
                 0);
    OK(js_create(tl_tp("live/db"), &p));
    js_instance *inst = tl_reopen(tl_tp("live/db"));
    int root_fd = open(tl_tp("R"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    struct { const char *dest; unsigned flags; JET_ERR want; } cases[] = {
        { tl_tp("out/x"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },
        { tl_tp("Rx/y"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },          /* a prefix, not beneath */
        { tl_tp("R/link/x"), JS_BACKUP_CREATE_DIR, JET_errInvalidPath },      /* symlink on the way */
        { tl_tp("R/link"), JS_BACKUP_ATOMIC, JET_errInvalidPath },            /* symlink at the end */
        { tl_tp("R/in/last"), JS_BACKUP_ATOMIC | JS_BACKUP_CREATE_DIR, JET_errInvalidPath },
        { tl_tp("R/in/../../out"), JS_BACKUP_ATOMIC, JET_errInvalidPath },    /* .. out of the root */
        { tl_tp("R/in/missing"), JS_BACKUP_ATOMIC, JET_errInvalidPath },
        { tl_tp("R/no/such/x"), JS_BACKUP_CREATE_DIR, JET_errMakeBackupDirectoryFail },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        JET_ERR r = js_backup_beneath(inst, root_fd, tl_tp("R"), cases[i].dest, cases[i].flags, NULL, NULL);
        cr_expect_eq(r, cases[i].want, "%s: %s (%d) [%s], expected %s", cases[i].dest, js_errname(r), r,
                     js_errdetail(), js_errname(cases[i].want));
    }
    char *left = tl_sh_out("ls -A '%s'; ls -A '%s'", tl_tp("out"), tl_tp("R/in"));
    cr_expect_str_eq(left, "last\n", "a refused job made something");
    free(left);
    /* Beneath the root, without symlinks: accepted. */
    OK(js_backup_beneath(inst, root_fd, tl_tp("R"), tl_tp("R/in/ok"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    cr_expect_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tl_tp("R/in/ok")), 0);
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

/* The mount fixture with DBDIR at ROOT/live/db (so that its parent holds
 * nothing else) and R/ beside it.  Paths under ROOT are built with tl_tp,
 * as in the dest suite: tl_tmp names ROOT too (tl_fs_teardown removes it). */
static void msetup(void)
{
    tl_fs_setup("jsdest-fs", 0);
    snprintf(tl_tmp, sizeof tl_tmp, "%s", tl_root);
    tl_pathf(tl_dbdir, "%s", tl_tp("live/db"));
    tl_pathf(tl_sock, "%s/jetsnap.sock", tl_dbdir);
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s'", tl_tp("live"), tl_tp("R")), 0);
}

TestSuite(fs_dest, .init = msetup, .fini = tl_fs_teardown, .timeout = 90);

/* SIGTERM the daemon; it must exit 0. */
static void stop_daemon(void)
{
    int status = tl_fs_stop(SIGTERM, NULL);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status %d", status);
}

/* Wait for the running job to be copying (status phase), then swap. */
static void swap_while_copying(const char *dir, const char *real, const char *elsewhere)
{
    char phase[64], state[64];
    int64_t end = tl_now_ms() + 30000;
    for (;;) {
        tl_status_get("phase", phase, sizeof phase);
        if (!strcmp(phase, "copy-database"))
            break;
        cr_assert(tl_now_ms() < end, "the job never reached copy-database (phase %s)", phase);
        tl_sleep_ms(5);
    }
    swap(dir, real, elsewhere);
    tl_status_get("phase", phase, sizeof phase);
    tl_status_get("state", state, sizeof state);
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
    JET_ERR e = js_check(tl_dbdir, &rep);
    cr_assert_eq(e, JET_errSuccess, "js_check of DBDIR: %s: %s", js_errname(e), rep.first_error);
    OK(js_open(tl_dbdir, NULL, &inst));
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
    tl_fill_instance(BIG_MIB, 1 << 20);
    cr_assert_eq(mkdir(tl_tp("R/q"), 0700), 0);
    snprintf(cmd, sizeof cmd, "backup_root=%s,backup_max_rate=4M", tl_tp("R"));
    tl_fs_start_opts(cmd, 1);
    char *names_before = dbdir_names(tl_dbdir);
    snprintf(cmd, sizeof cmd, "%s create", tl_tp("R/q/db"));
    cr_assert_eq(tl_ctl_write(cmd), 0);
    swap_while_copying(tl_tp("R/q"), tl_tp("R/q.real"), tl_tp("live"));
    tl_wait_state("succeeded|failed|cancelled", 60000, state);
    char result[256] = "", message[512] = "";
    tl_status_get("result", result, sizeof result);
    tl_status_get("message", message, sizeof message);
    char *names_after = dbdir_names(tl_dbdir);
    stop_daemon();
    cr_expect_str_eq(state, "succeeded", "the job: %s: %s", result, message);
    cr_expect_str_eq(names_after, names_before, "DBDIR's entries changed:\n%s\nwere:\n%s", names_after,
                     names_before);
    cr_expect_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tl_tp("R/q.real/db")), 0,
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
    tl_fill_instance(BIG_MIB, 1 << 20);
    cr_assert_eq(tl_sh("mkdir -p '%s' '%s' '%s' '%s' && echo keep > '%s' && echo keep > '%s'", tl_tp("R/p"),
                    tl_tp("out/d/old"), tl_tp("out/d/new"), tl_tp("out/d/temp"), tl_tp("out/d/old/file"),
                    tl_tp("out/d/new/backup.info")),
                 0);
    snprintf(cmd, sizeof cmd, "backup_root=%s,backup_max_rate=8M", tl_tp("R"));
    tl_fs_start_opts(cmd, 1);
    snprintf(cmd, sizeof cmd, "%s create atomic wait", tl_tp("R/p/d"));
    cr_assert_eq(tl_ctl_write(cmd), 0);
    char *out_before = tree_snapshot(tl_tp("out"));
    snprintf(cmd, sizeof cmd, "%s atomic", tl_tp("R/p/d"));
    cr_assert_eq(tl_ctl_write(cmd), 0);
    swap_while_copying(tl_tp("R/p"), tl_tp("R/p.real"), tl_tp("out"));
    tl_wait_state("succeeded|failed|cancelled", 60000, state);
    char result[256] = "", message[512] = "";
    tl_status_get("result", result, sizeof result);
    tl_status_get("message", message, sizeof message);
    stop_daemon();
    cr_expect_str_eq(state, "succeeded", "the job: %s: %s", result, message);
    char *out_after = tree_snapshot(tl_tp("out"));
    cr_expect_str_eq(out_after, out_before, "the job wrote or removed outside backup_root");
    cr_expect_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null", tl_tp("R/p.real/d/new")), 0,
                 "the new set in the held DEST does not pass sha256sum -c");
    cr_expect(!tl_exists(tl_tp("R/p.real/d/old")) && !tl_exists(tl_tp("R/p.real/d/temp")));
    big_dbdir_intact();
    free(out_before);
    free(out_after);
}

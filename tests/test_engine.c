/*
 * test_engine.c - the engine against a reference model, limits, sessions,
 * bad input, error names, snapshots, commit modes and readers under
 * eviction.  The log, crashes and damaged files: test_engine_log.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jetsnap.h"
#include "instance/instance.h"
#include "bkset.h"
#include "testlib.h"

/* ---------------- reference model ---------------- */

#define NKEYS 3000

typedef struct model_entry {
    int present;
    size_t len;
    unsigned char *val;
} model_entry;

static void key_of(int id, char *k, size_t *kl)
{
    /* Mixed lengths and bytes, including NUL and 0xff. */
    *kl = (size_t)snprintf(k, 32, "k%05d", id);
    if (id % 7 == 0) {
        k[(*kl)++] = '\0';
        k[(*kl)++] = (char)0xff;
    }
}

static size_t rand_len(unsigned *seed)
{
    int r = rand_r(seed) % 100;
    if (r < 5)
        return 0;
    if (r < 90)
        return (size_t)(rand_r(seed) % 200);
    if (r < 98)
        return (size_t)(1000 + rand_r(seed) % 4000);
    return (size_t)(20000 + rand_r(seed) % 60000);   /* overflow chains */
}

static void fill_random(unsigned char *v, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (unsigned char)rand_r(seed);
}

/* A new lazy instance in a fresh directory (returned, for
 * close_and_remove), open, with one session unless s is NULL. */
static char *fresh_instance(js_instance **inst, js_session **s)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    *inst = tl_create_open(dir, &p);
    if (s)
        OK(js_session_open(*inst, s));
    return dir;
}

/* Close inst, check its files offline when asked, remove dir. */
static void close_and_remove(js_instance *inst, char *dir, int check)
{
    OK(js_close(inst));
    if (check) {
        js_check_report rep;
        OK(js_check(dir, &rep));
    }
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* Walk every key with a cursor, asserting key order (memcmp, the shorter
 * first on a common prefix) and calling visit on each pair.  Returns how
 * many it saw. */
typedef void (*visit_fn)(const void *k, size_t kl, const void *v, size_t vl, void *ctx);

static uint64_t walk_in_order(js_session *s, visit_fn visit, void *ctx)
{
    js_cursor *c;
    OK(js_cursor_open(s, &c));
    JET_ERR e = js_cursor_seek(c, NULL, 0);
    uint64_t seen = 0;
    uint8_t prev[256];
    size_t prevlen = 0;
    while (e == JET_errSuccess) {
        const void *k, *v;
        size_t kl, vl;
        OK(js_cursor_key(c, &k, &kl));
        OK(js_cursor_value(c, &v, &vl));
        if (seen) {
            size_t n = kl < prevlen ? kl : prevlen;
            int cmp = memcmp(prev, k, n);
            cr_assert(cmp < 0 || (cmp == 0 && prevlen < kl), "cursor out of order at key %llu",
                      (unsigned long long)seen);
        }
        memcpy(prev, k, kl);
        prevlen = kl;
        visit(k, kl, v, vl, ctx);
        seen++;
        e = js_cursor_next(c);
    }
    cr_assert_eq(e, JET_errRecordNotFound);
    js_cursor_close(c);
    return seen;
}

static void visit_model(const void *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    model_entry *m = ctx;
    (void)kl;
    int id = atoi((const char *)k + 1);
    cr_assert(id >= 0 && id < NKEYS && m[id].present, "cursor shows key %d not in the model", id);
    cr_assert_eq(vl, m[id].len);
    cr_assert(vl == 0 || !memcmp(v, m[id].val, vl), "value of key %d differs", id);
}

static void model_check_all(js_session *s, model_entry *m)
{
    uint64_t count = 0, expect = 0;
    for (int i = 0; i < NKEYS; i++)
        expect += m[i].present;
    OK(js_count(s, &count));
    cr_assert_eq(count, expect, "count %llu, model %llu", (unsigned long long)count, (unsigned long long)expect);
    /* A full cursor walk sees exactly the model, in key order. */
    cr_assert_eq(walk_in_order(s, visit_model, m), expect);
}

Test(engine, reference_model_100k, .timeout = 600)
{
    js_instance *inst;
    js_session *s;
    char *dir = fresh_instance(&inst, &s);
    js_params p = tl_lazy_params();   /* to open it again */
    model_entry *m = calloc(NKEYS, sizeof *m);
    unsigned seed = 12345;
    unsigned char *buf = malloc(100000);
    char k[32];
    size_t kl;
    int ops = 100000;
    for (int op = 0; op < ops; op++) {
        int r = rand_r(&seed) % 100;
        int id = rand_r(&seed) % NKEYS;
        key_of(id, k, &kl);
        if (r < 45) {
            size_t n = rand_len(&seed);
            fill_random(buf, n, &seed);
            OK(js_put(s, k, kl, buf, n));
            free(m[id].val);
            m[id].val = malloc(n + 1);
            memcpy(m[id].val, buf, n);
            m[id].len = n;
            m[id].present = 1;
        } else if (r < 65) {
            JET_ERR e = js_del(s, k, kl);
            cr_assert_eq(e, m[id].present ? JET_errSuccess : JET_errRecordNotFound, "del %d -> %d", id, e);
            m[id].present = 0;
        } else if (r < 85) {
            /* A multi-key transaction, committed or rolled back. */
            int commit = rand_r(&seed) % 4 != 0;
            int n = 2 + rand_r(&seed) % 6;
            int ids[8];
            size_t lens[8];
            unsigned char *vals[8];
            int dels[8];
            OK(js_txn_begin(s, 0));
            for (int i = 0; i < n; i++) {
                ids[i] = rand_r(&seed) % NKEYS;
                dels[i] = rand_r(&seed) % 3 == 0;
                key_of(ids[i], k, &kl);
                if (dels[i]) {
                    JET_ERR e = js_del(s, k, kl);
                    cr_assert(e == JET_errSuccess || e == JET_errRecordNotFound);
                    vals[i] = NULL;
                    lens[i] = 0;
                } else {
                    lens[i] = rand_len(&seed);
                    vals[i] = malloc(lens[i] + 1);
                    fill_random(vals[i], lens[i], &seed);
                    OK(js_put(s, k, kl, vals[i], lens[i]));
                }
            }
            if (commit)
                OK(js_txn_commit(s, 0));
            else
                OK(js_txn_rollback(s));
            for (int i = 0; i < n; i++) {
                if (commit) {
                    free(m[ids[i]].val);
                    m[ids[i]].val = vals[i];
                    m[ids[i]].len = lens[i];
                    m[ids[i]].present = !dels[i];
                } else {
                    free(vals[i]);
                }
            }
        } else if (r < 99 || rand_r(&seed) % 10) {
            void *v = NULL;
            size_t vl = 0;
            JET_ERR e = js_get(s, k, kl, &v, &vl);
            if (m[id].present) {
                cr_assert_eq(e, JET_errSuccess, "get %d -> %s %s", id, js_errname(e), js_errdetail());
                cr_assert_eq(vl, m[id].len);
                cr_assert(vl == 0 || !memcmp(v, m[id].val, vl));
                free(v);
            } else {
                cr_assert_eq(e, JET_errRecordNotFound);
            }
        } else {
            js_session_close(s);
            OK(js_close(inst));
            OK(js_open(dir, &p, &inst));
            OK(js_session_open(inst, &s));
        }
        if (op % 20000 == 19999)
            model_check_all(s, m);
    }
    model_check_all(s, m);
    js_session_close(s);
    OK(js_close(inst));
    /* And once more after a clean close, from disk. */
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    model_check_all(s, m);
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    cr_assert(rep.pages_checked > 3);
    for (int i = 0; i < NKEYS; i++)
        free(m[i].val);
    free(m);
    free(buf);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- limits ---------------- */

static void visit_self(const void *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    (void)ctx;
    cr_assert(vl == kl && !memcmp(k, v, kl), "a key's value is not itself");
}

/* Keys of 1..40 bytes drawn from the bytes where signed and unsigned, or
 * word and byte, comparisons differ (0x00, 0x7f, 0x80, 0xff), sharing long
 * prefixes: every one is found again and a cursor walks them in memcmp
 * order, shorter first on a common prefix. */
Test(engine, binary_keys_order_as_bytes, .timeout = 60)
{
    static const uint8_t alphabet[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
    js_instance *inst;
    js_session *s;
    char *dir = fresh_instance(&inst, &s);
    unsigned seed = 777;
    uint8_t key[40];
    size_t stored = 0;
    for (int i = 0; i < 6000; i++) {
        size_t kl = 1 + (size_t)(rand_r(&seed) % 40);
        for (size_t b = 0; b < kl; b++)   /* long shared prefixes: few choices early */
            key[b] = alphabet[rand_r(&seed) % (b < 16 ? 2 : 6)];
        void *v = NULL;
        size_t vl = 0;
        JET_ERR e = js_get(s, key, kl, &v, &vl);
        free(v);
        if (e == JET_errRecordNotFound)
            stored++;
        else
            OK(e);
        OK(js_put(s, key, kl, key, kl));   /* the value is the key */
    }
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, stored);
    cr_assert_eq(walk_in_order(s, visit_self, NULL), stored);
    js_session_close(s);
    close_and_remove(inst, dir, 0);
}

Test(engine, key_and_value_limits, .timeout = 60)
{
    js_instance *inst;
    js_session *s;
    char *dir = fresh_instance(&inst, &s);
    js_params p = tl_lazy_params();   /* to open it again */
    unsigned char key[256], *val = malloc(JS_VALUE_MAX + 1);
    for (int i = 0; i < 256; i++)
        key[i] = (unsigned char)i;
    for (size_t i = 0; i <= JS_VALUE_MAX; i++)
        val[i] = (unsigned char)(i * 7 + 3);
    OK(js_put(s, key, 255, val, JS_VALUE_MAX));                 /* 255-byte key, 1 MiB value */
    OK(js_put(s, "empty", 5, "", 0));                          /* 0-byte value */
    OK(js_put(s, key, 256 - 1 - 100, key, 256));               /* every byte value */
    cr_assert_eq(js_put(s, key, 256, "x", 1), JET_errKeyTooBig);
    cr_assert_eq(js_put(s, "big", 3, val, JS_VALUE_MAX + 1), JET_errRecordTooBig);
    cr_assert_eq(js_put(s, "", 0, "x", 1), JET_errInvalidParameter);
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, 3, "refused puts stored something: %llu keys", (unsigned long long)n);
    void *v;
    size_t vl;
    cr_assert_eq(js_get(s, "big", 3, &v, &vl), JET_errRecordNotFound);
    js_session_close(s);
    OK(js_close(inst));
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    OK(js_get(s, key, 255, &v, &vl));
    cr_assert_eq(vl, JS_VALUE_MAX);
    cr_assert(!memcmp(v, val, vl));
    free(v);
    OK(js_get(s, "empty", 5, &v, &vl));
    cr_assert_eq(vl, 0);
    free(v);
    OK(js_get(s, key, 155, &v, &vl));
    cr_assert_eq(vl, 256);
    cr_assert(!memcmp(v, key, 256));
    free(v);
    js_session_close(s);
    OK(js_close(inst));
    free(val);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(engine, freed_pages_are_reused, .timeout = 120)
{
    js_instance *inst;
    js_session *s;
    char *dir = fresh_instance(&inst, &s);
    unsigned char *val = calloc(1, 50000);
    char k[32];
    js_info info1, info2;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof k, "key%d", i);
            OK(js_put(s, k, strlen(k), val, 50000));
        }
        if (round == 0) {
            for (int i = 0; i < 300; i++) {
                snprintf(k, sizeof k, "key%d", i);
                OK(js_del(s, k, strlen(k)));
            }
            OK(js_checkpoint(inst));
            OK(js_info_read(dir, &info1));
        }
    }
    OK(js_checkpoint(inst));
    OK(js_info_read(dir, &info2));
    cr_assert(info2.pages <= info1.pages + 4, "pages grew from %llu to %llu: freed pages not reused",
              (unsigned long long)info1.pages, (unsigned long long)info2.pages);
    js_session_close(s);
    OK(js_close(inst));
    free(val);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- sessions ---------------- */

struct share_arg {
    js_session *s;
    JET_ERR err;
};

static void *blocked_put(void *p)
{
    struct share_arg *a = p;
    a->err = js_put(a->s, "shared", 6, "1", 1);   /* waits for the writer lock inside the session */
    return NULL;
}

Test(engine, session_sharing_violation, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s1, *s2;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s1));
    OK(js_session_open(inst, &s2));
    OK(js_txn_begin(s2, 0));   /* holds the writer lock */
    struct share_arg a = { s1, -1 };
    pthread_t t;
    pthread_create(&t, NULL, blocked_put, &a);
    JET_ERR seen = JET_errSuccess;
    for (int i = 0; i < 2000 && seen != JET_errSessionSharingViolation; i++) {
        usleep(1000);
        void *v;
        size_t vl;
        seen = js_get(s1, "shared", 6, &v, &vl);
    }
    cr_assert_eq(seen, JET_errSessionSharingViolation);
    OK(js_txn_commit(s2, 0));
    pthread_join(t, NULL);
    OK(a.err);
    cr_assert_eq(js_txn_commit(s1, 0), JET_errNotInTransaction);
    OK(js_txn_begin(s1, 0));
    cr_assert_eq(js_txn_begin(s1, 0), JET_errInTransaction);
    OK(js_txn_rollback(s1));
    js_session_close(s1);
    js_session_close(s2);
    close_and_remove(inst, dir, 0);
}

/* ---------------- bad input ---------------- */

Test(engine, bad_input_changes_nothing, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    js_instance *inst;
    char path[600];
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_eq(js_open(path, &p, &inst), JET_errFileNotFound);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "open of a missing instance created it");

    /* A file that is not a jetsnap database. */
    snprintf(path, sizeof path, "%s/foreign", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    char db[700];
    snprintf(db, sizeof db, "%s/jetsnap.edb", path);
    FILE *f = fopen(db, "w");
    for (int i = 0; i < 20000; i++)
        fputc('A' + i % 26, f);
    fclose(f);
    cr_assert_eq(js_open(path, &p, &inst), JET_errInvalidDatabase);
    f = fopen(db, "r");
    for (int i = 0; i < 20000; i++)
        cr_assert_eq(fgetc(f), 'A' + i % 26, "a refused open changed the file");
    fclose(f);
    js_info info;
    cr_assert_eq(js_info_read(path, &info), JET_errInvalidDatabase);

    /* Page size mismatch and bad creation parameters. */
    snprintf(path, sizeof path, "%s/small", dir);
    js_params q = p;
    q.page_size = 4096;
    OK(js_create(path, &q));
    q.page_size = 16384;
    cr_assert_eq(js_open(path, &q, &inst), JET_errPageSizeMismatch);
    cr_assert_eq(js_create(path, &q), JET_errInvalidPath, "create over an instance");
    snprintf(path, sizeof path, "%s/badsize", dir);
    q.page_size = 12345;
    cr_assert_eq(js_create(path, &q), JET_errInvalidParameter);
    cr_assert_neq(stat(path, &st), 0);
    q.page_size = 8192;
    q.log_file_size = 1000;
    cr_assert_eq(js_create(path, &q), JET_errInvalidParameter);

    /* A second open of the same instance. */
    snprintf(path, sizeof path, "%s/small", dir);
    q.page_size = 4096;
    q.log_file_size = 256 << 10;
    OK(js_open(path, &q, &inst));
    js_instance *second;
    cr_assert_eq(js_open(path, &q, &second), JET_errDatabaseInUse);
    close_and_remove(inst, dir, 0);
}

Test(engine, errors_have_names_and_errnos)
{
    cr_assert_str_eq(js_errname(JET_errReadVerifyFailure), "JET_errReadVerifyFailure");
    cr_assert_eq(js_err_to_errno(JET_errBackupInProgress), EBUSY);
    cr_assert_eq(js_err_to_errno(JET_errDiskFull), ENOSPC);
    cr_assert_eq(js_err_to_errno(JET_errInvalidGrbit), EINVAL);
    cr_assert_eq(js_err_to_errno(JET_errMissingFullBackup), ENODATA);
    cr_assert_eq(js_err_to_errno(JET_errTermInProgress), ESHUTDOWN);
    cr_assert_str_eq(js_errname(-99999), "JET_errUnknown");
}

struct snap_arg {
    js_session *s;
    JET_ERR err;
};

static void *snap_writer(void *p)
{
    struct snap_arg *a = p;
    /* Two keys in one transaction: a snapshot sees both old or both new. */
    a->err = js_txn_begin(a->s, 0);
    if (!a->err)
        a->err = js_put(a->s, "x", 1, "2", 1);
    if (!a->err)
        a->err = js_put(a->s, "y", 1, "2", 1);
    if (!a->err)
        a->err = js_txn_commit(a->s, 0);
    return NULL;
}

static char get1(js_session *s, const char *k)
{
    void *v;
    size_t vl;
    OK(js_get(s, k, 1, &v, &vl));
    char c = *(char *)v;
    free(v);
    return c;
}

Test(engine, readonly_transaction_is_a_snapshot, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *r, *w;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &r));
    OK(js_session_open(inst, &w));
    OK(js_put(w, "x", 1, "1", 1));
    OK(js_put(w, "y", 1, "1", 1));
    OK(js_txn_begin(r, JS_TXN_READONLY));
    cr_assert_eq(get1(r, "x"), '1');
    struct snap_arg a = { w, -1 };
    pthread_t t;
    pthread_create(&t, NULL, snap_writer, &a);
    usleep(50000);   /* the writer reaches its install and waits */
    cr_assert_eq(get1(r, "y"), '1', "a read-only transaction saw half of a later commit");
    cr_assert_eq(js_put(r, "z", 1, "1", 1), JET_errInvalidParameter);
    OK(js_txn_commit(r, 0));
    pthread_join(t, NULL);
    OK(a.err);
    cr_assert_eq(get1(r, "x"), '2');
    cr_assert_eq(get1(r, "y"), '2');
    js_session_close(r);
    js_session_close(w);
    close_and_remove(inst, dir, 0);
}

/* Commit modes: a durable commit is on disk when it returns; a lazy one
 * within 100 ms (the test allows 20 times that before it "crashes"). */
static void durable_then_crash(js_instance *inst, js_session *s)
{
    if (js_put(s, "durable", 7, "1", 1))
        _exit(4);
    /* no close, no flush: the process ends right after the commit */
}

static void lazy_then_crash(js_instance *inst, js_session *s)
{
    if (js_put(s, "lazy", 4, "1", 1))
        _exit(4);
    usleep(2000 * 1000);
}

static void lazy_flag_then_crash(js_instance *inst, js_session *s)
{
    /* JS_COMMIT_FLAG_DURABLE overrides a lazy instance for one commit. */
    if (js_txn_begin(s, 0) || js_put(s, "forced", 6, "1", 1) || js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
        _exit(4);
}

Test(engine, commit_modes, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    p.commit_mode = JS_COMMIT_DURABLE;
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, durable_then_crash);
    p.commit_mode = JS_COMMIT_LAZY;
    tl_in_crashing_child(dir, &p, lazy_then_crash);
    tl_in_crashing_child(dir, &p, lazy_flag_then_crash);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    const char *keys[] = { "durable", "lazy", "forced" };
    for (int i = 0; i < 3; i++) {
        void *v;
        size_t vl;
        JET_ERR e = js_get(s, keys[i], strlen(keys[i]), &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "%s commit lost after a crash: %s", keys[i], js_errname(e));
        free(v);
    }
    cr_assert_eq(js_txn_commit(s, 7), JET_errNotInTransaction);
    OK(js_txn_begin(s, 0));
    cr_assert_eq(js_txn_commit(s, 0x100), JET_errInvalidGrbit);
    OK(js_txn_rollback(s));
    js_session_close(s);
    close_and_remove(inst, dir, 0);
}

/* Readers and a writer at once, with a pool far smaller than the data so
 * pages are evicted and reloaded all the time, and frequent checkpoints:
 * every read returns a whole, committed value of its own key. */
#define STRESS_KEYS 20000
struct stress {
    js_instance *inst;
    atomic_int stop;
    atomic_long bad, reads;
};

static void stress_value(char *v, int k, int ver)
{
    memset(v, 'a' + (k + ver) % 26, 200);
    snprintf(v, 32, "%d:%d:", k, ver);
}

static void *stress_reader(void *arg)
{
    struct stress *st = arg;
    js_session *s;
    unsigned seed = (unsigned)(uintptr_t)&s;
    if (js_session_open(st->inst, &s)) {
        st->bad++;
        return NULL;
    }
    while (!st->stop) {
        int k = rand_r(&seed) % STRESS_KEYS, kk, ver;
        char key[32], want[200];
        void *v;
        size_t vl;
        snprintf(key, sizeof key, "k%06d", k);
        if (js_get(s, key, strlen(key), &v, &vl)) {
            st->bad++;
            continue;
        }
        if (vl != 200 || sscanf(v, "%d:%d:", &kk, &ver) != 2 || kk != k)
            st->bad++;
        else if (stress_value(want, k, ver), memcmp(want, v, 200))
            st->bad++;
        free(v);
        st->reads++;
    }
    js_session_close(s);
    return NULL;
}

static void *stress_writer(void *arg)
{
    struct stress *st = arg;
    js_session *s;
    unsigned seed = 7;
    if (js_session_open(st->inst, &s)) {
        st->bad++;
        return NULL;
    }
    for (int ver = 1; !st->stop; ver++) {
        int k = rand_r(&seed) % STRESS_KEYS;
        char key[32], v[200];
        snprintf(key, sizeof key, "k%06d", k);
        stress_value(v, k, ver);
        if (js_put(s, key, strlen(key), v, 200))
            st->bad++;
    }
    js_session_close(s);
    return NULL;
}

Test(engine, concurrent_readers_under_eviction, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    p.cache_size = 64 * 8192;    /* 64 frames for hundreds of pages */
    p.checkpoint_ms = 50;
    OK(js_create(dir, &p));
    struct stress st = { 0 };
    OK(js_open(dir, &p, &st.inst));
    js_session *s;
    OK(js_session_open(st.inst, &s));
    for (int k = 0; k < STRESS_KEYS; k++) {
        char key[32], v[200];
        snprintf(key, sizeof key, "k%06d", k);
        stress_value(v, k, 0);
        OK(js_put(s, key, strlen(key), v, 200));
    }
    js_session_close(s);
    pthread_t t[3];
    pthread_create(&t[0], NULL, stress_reader, &st);
    pthread_create(&t[1], NULL, stress_reader, &st);
    pthread_create(&t[2], NULL, stress_writer, &st);
    sleep(3);
    st.stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(st.bad, 0, "%ld bad reads or failed calls of %ld", (long)st.bad, (long)st.reads);
    cr_assert_gt(st.reads, 1000, "the readers hardly ran (%ld reads)", (long)st.reads);
    OK(js_close(st.inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- js_prefetch ---------------- */

/* A hint: outside and inside a write transaction (over pages it split and
 * has not committed), with more keys than it follows, absent and longest
 * keys, it succeeds and changes nothing; NULL keys are refused. */
Test(engine, prefetch_is_a_hint_that_changes_nothing, .timeout = 60)
{
    js_instance *inst;
    js_session *s;
    char *dir = fresh_instance(&inst, &s);
    char key[300], val[100];
    memset(val, 'v', sizeof val);
    for (int k = 0; k < 3000; k += 2) {   /* even keys: three levels of pages */
        snprintf(key, sizeof key, "key%06d", k);
        OK(js_put(s, key, strlen(key), val, sizeof val));
    }
    OK(js_prefetch(s, NULL, 0));
    cr_assert_eq(js_prefetch(s, NULL, 2), JET_errInvalidParameter);
    static char names[100][16];
    js_keyref refs[100];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "key%06d", i * 29);   /* odd ones absent */
        refs[i].key = names[i];
        refs[i].klen = strlen(names[i]);
    }
    memset(key, 'z', 255);
    refs[99].key = key;
    refs[99].klen = 255;
    OK(js_prefetch(s, refs, 100));
    OK(js_txn_begin(s, 0));
    for (int k = 1; k < 3000; k += 2) {   /* odd keys: splits, uncommitted */
        snprintf(key, sizeof key, "key%06d", k);
        OK(js_put(s, key, strlen(key), val, sizeof val));
    }
    OK(js_prefetch(s, refs, 100));
    OK(js_txn_commit(s, 0));
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, 3000);
    for (int i = 0; i < 99; i++) {
        void *got = NULL;
        size_t len = 0;
        OK(js_get(s, names[i], strlen(names[i]), &got, &len));
        cr_assert_eq(len, sizeof val);
        free(got);
    }
    js_session_close(s);
    close_and_remove(inst, dir, 1);
}

/* ---------------- spare page buffers ---------------- */

/* A growing tree takes a page buffer for good with each new page; the
 * flush thread keeps spare ones ready, faulted in, so the
 * commit path does not fault fresh memory in.  Without a writer, within a
 * few ticks the pool holds the stock (4 MiB of buffers). */
Test(engine, spare_buffers_are_stocked_in_the_background, .timeout = 60)
{
    js_instance *inst;
    char *dir = fresh_instance(&inst, NULL);
    buf_pool *pool = &inst->store.pool;
    size_t want = (4u << 20) / pool->page_size, have = 0;
    for (int i = 0; i < 100 && have < want; i++) {
        usleep(50 * 1000);
        js_mutex_lock(&pool->spare_lock);
        have = pool->nspare;
        js_mutex_unlock(&pool->spare_lock);
    }
    cr_assert_geq(have, want, "%zu spare buffers after 5 s, want %zu", have, want);
    close_and_remove(inst, dir, 0);
}

/* ---------------- the pool's memory (store/arena.c) ---------------- */

/* js_cache_info_get: the limit is cache_size, the pages written are held,
 * the pool's memory covers them; NULL is refused. */
Test(engine, cache_info_counts_the_pool, .timeout = 60)
{
    js_instance *inst;
    char *dir = fresh_instance(&inst, NULL);
    js_cache_info ci;
    cr_assert_eq(js_cache_info_get(NULL, &ci), JET_errInvalidParameter);
    cr_assert_eq(js_cache_info_get(inst, NULL), JET_errInvalidParameter);
    tl_fill(inst, "k", 0, 2000, 1000);   /* some 2 MB of pages */
    OK(js_cache_info_get(inst, &ci));
    cr_assert_eq(ci.limit_bytes, 8u << 20, "tl_lazy_params' cache_size");
    cr_assert_eq(ci.page_size, 8192);
    cr_assert_geq(ci.pages_bytes, 2000u * 1000u, "%llu bytes of pages held", (unsigned long long)ci.pages_bytes);
    cr_assert_geq(ci.memory_bytes, ci.pages_bytes + ci.spare_bytes);
    cr_assert_geq(ci.mapped_bytes, ci.memory_bytes);
    cr_assert_leq(ci.dirty_bytes, ci.pages_bytes);
    close_and_remove(inst, dir, 0);
}

/* Allocations are cache-line aligned, zero-filled and disjoint, including
 * one larger than a mapping; arena_prefault near a mapping's end makes the
 * next one ready, and it is the one arena_alloc goes on with. */
Test(engine, arena_hands_out_aligned_zeroed_disjoint_memory)
{
    buf_arena a;
    arena_init(&a);
    uint8_t *prev = NULL;
    for (int i = 0; i < 5000; i++) {   /* 5000 * 8 KiB: past one 32 MiB mapping */
        uint8_t *b = arena_alloc(&a, 8192);
        cr_assert_not_null(b);
        cr_assert_eq((uintptr_t)b % 64, 0, "allocation %d at %p is not cache-line aligned", i, (void *)b);
        for (int k = 0; k < 8192; k += 512)
            cr_assert_eq(b[k], 0, "allocation %d is not zero-filled", i);
        memset(b, 0xA5, 8192);
        if (prev)
            cr_assert_eq(prev[8191], 0xA5, "allocation %d overlapped the one before", i);
        prev = b;
    }
    uint8_t *big = arena_alloc(&a, 40u << 20);
    cr_assert_not_null(big);
    big[(40u << 20) - 1] = 1;
    cr_assert_eq(prev[0], 0xA5);
#ifndef JS_ARENA_MALLOC
    /* Fill the current mapping to within 1 MiB of its end. */
    while ((size_t)(a.end - a.next) > (1u << 20))
        cr_assert_not_null(arena_alloc(&a, 8192));
    arena_prefault(&a, 4u << 20);
    cr_assert_not_null(a.ready, "no next mapping made ahead with 1 MiB left and 4 MiB asked");
    void *ready = a.ready;
    while ((size_t)(a.end - a.next) >= 8192)
        cr_assert_not_null(arena_alloc(&a, 8192));
    uint8_t *b = arena_alloc(&a, 8192);
    cr_assert_null(a.ready);
    cr_assert_eq((void *)a.maps, ready, "the mapping made ahead was not the one used next");
    cr_assert_eq(b[0], 0);
#endif
    arena_destroy(&a);
}

/* Where the kernel has transparent huge pages (enabled: always or
 * madvise), the pool's page buffers are backed by them: a random write's
 * leaf then costs no TLB page walk. */
Test(engine, pool_buffers_are_backed_by_huge_pages, .timeout = 60)
{
#ifdef JS_ARENA_MALLOC
    cr_skip_test("sanitizer builds take the pool's memory from malloc");
#endif
    char *thp = tl_slurp("/sys/kernel/mm/transparent_hugepage/enabled", NULL);
    if (!thp || strstr(thp, "[never]")) {
        free(thp);
        cr_skip_test("no transparent huge pages on this kernel");
    }
    free(thp);
    js_instance *inst;
    char *dir = fresh_instance(&inst, NULL);
    tl_fill(inst, "k", 0, 8000, 1000);   /* some 8 MiB of pages */
    uintptr_t at = (uintptr_t)inst->store.pool.frames[inst->store.pool.nframes - 1]->data;
    char *smaps = tl_slurp("/proc/self/smaps", NULL);
    cr_assert_not_null(smaps);
    long huge_kib = -1;
    for (char *line = smaps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && at >= lo && at < hi) {
            char *h = strstr(line, "AnonHugePages:");
            if (h)
                huge_kib = strtol(h + strlen("AnonHugePages:"), NULL, 10);
            break;
        }
    }
    free(smaps);
    cr_assert_gt(huge_kib, 0, "the mapping of a frame's buffer has %ld KiB in huge pages", huge_kib);
    close_and_remove(inst, dir, 0);
}

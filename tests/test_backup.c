/*
 * test_backup.c - online backup and restore through the core API
 * (SPEC sections 4 and 6, DESIGN sections 3, 4 and 6).
 *
 * Every test works in its own mkdtemp directory under /tmp, with small log
 * generations (64 KiB) so the log rolls often, 4 KiB pages and lazy commits
 * unless durability is what is under test.  Every backup set a test makes is
 * checked with `sha256sum -c SHA256SUMS` run inside it (assert_set_sums).
 *
 * Some tests are regressions for engine bugs they found (each says which):
 *   verify_accepts_online_copy_of_growing_database   core/check.c check_db
 *   until_gen_inside_set_is_honoured_or_refused      core/restore.c js_restore
 *   faults_full_atomic_publish                       core/backup.c bk_publish_full
 *   faults_incremental_{atomic,plain}_publish,
 *   failed_incremental_keeps_previous_set_restorable core/backup.c bk_publish_incremental
 *   sigkill_during_restore_copy_leaves_being_restored core/restore.c js_restore
 *   refused_open_of_set_leaves_it_untouched          core/instance.c inst_new_common
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define FAILS_WITH(x, want)                                                                              \
    do {                                                                                                 \
        JET_ERR e_ = (x);                                                                                \
        cr_assert_eq(e_, (want), "%s -> %s (%d) [%s], expected %s (%d)", #x, js_errname(e_), e_,         \
                     js_errdetail(), js_errname(want), (want));                                          \
    } while (0)

/* ------------------------------------------------------------------ */
/* Scratch directory                                                     */
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
    char t[] = "/tmp/jsbackup.XXXXXX";
    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, T));
    js_fault_reset();
}

static void teardown(void)
{
    js_fault_reset();
    if (T[0])
        nftw(T, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}


TestSuite(backup, .init = setup, .fini = teardown, .timeout = 120);

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

/* Output of a shell command (malloc'd, NUL-terminated). */
static char *sh_out(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    out[len] = '\0';
    pclose(f);
    return out;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Every file under dir with its SHA-256, and every directory: "<absent>"
 * when dir does not exist.  Two equal snapshots mean an unchanged tree. */
static char *tree_snapshot(const char *dir)
{
    if (!exists(dir))
        return strdup("<absent>");
    return sh_out("cd '%s' && { find . -type d | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | "
                  "xargs -0 -r sha256sum; }",
                  dir);
}

/* ------------------------------------------------------------------ */
/* Parameters, data                                                      */
/* ------------------------------------------------------------------ */
static js_params test_params(void)
{
    js_params p;
    js_params_default(&p);
    p.page_size = 4096;
    p.log_file_size = 64 << 10;
    p.commit_mode = JS_COMMIT_LAZY;
    p.cache_size = 32 << 20;
    p.checkpoint_ms = 3600 * 1000;   /* the backup's own checkpoints only */
    return p;
}

static js_instance *create_open(const char *dir, const js_params *p)
{
    js_instance *inst = NULL;
    OK(js_create(dir, p));
    OK(js_open(dir, p, &inst));
    return inst;
}

static js_instance *reopen(const char *dir)
{
    js_params p = test_params();
    js_instance *inst = NULL;
    OK(js_open(dir, &p, &inst));
    return inst;
}

static size_t make_val(char *buf, const char *prefix, int i, size_t vlen)
{
    int n = snprintf(buf, vlen + 1, "%s=%d:", prefix, i);
    for (size_t k = (size_t)n; k < vlen; k++)
        buf[k] = (char)('a' + (i + (int)k) % 26);
    return vlen > (size_t)n ? vlen : (size_t)n;
}

/* Put PREFIX:i for i in [from, to), 50 keys a transaction. */
static void fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen)
{
    js_session *s;
    char key[64], *val = malloc(vlen + 64);
    OK(js_session_open(inst, &s));
    for (int i = from; i < to;) {
        OK(js_txn_begin(s, 0));
        for (int k = 0; k < 50 && i < to; k++, i++) {
            int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
            size_t vl = make_val(val, prefix, i, vlen);
            OK(js_put(s, key, (size_t)kl, val, vl));
        }
        OK(js_txn_commit(s, 0));
    }
    js_session_close(s);
    free(val);
}

/* Delete PREFIX:i for i in [from, to) step 'step'. */
static void del_some(js_instance *inst, const char *prefix, int from, int to, int step)
{
    js_session *s;
    char key[64];
    OK(js_session_open(inst, &s));
    OK(js_txn_begin(s, 0));
    for (int i = from; i < to; i += step) {
        int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
        OK(js_del(s, key, (size_t)kl));
    }
    OK(js_txn_commit(s, 0));
    js_session_close(s);
}

/* PREFIX:i holds its value for every i in [from, to). */
static void check_fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen)
{
    js_session *s;
    char key[64], *want = malloc(vlen + 64);
    OK(js_session_open(inst, &s));
    for (int i = from; i < to; i++) {
        int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
        size_t wl = make_val(want, prefix, i, vlen);
        void *v = NULL;
        size_t vl = 0;
        JET_ERR e = js_get(s, key, (size_t)kl, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "%s: %s", key, js_errname(e));
        cr_assert(vl == wl && !memcmp(v, want, wl), "%s has a wrong value", key);
        free(v);
    }
    js_session_close(s);
    free(want);
}

static void put_str(js_instance *inst, const char *k, const char *v)
{
    js_session *s;
    OK(js_session_open(inst, &s));
    OK(js_put(s, k, strlen(k), v, strlen(v)));
    js_session_close(s);
}

/* 1 when key holds v. */
static int has_str(js_instance *inst, const char *k, const char *v)
{
    js_session *s;
    void *got = NULL;
    size_t gl = 0;
    OK(js_session_open(inst, &s));
    JET_ERR e = js_get(s, k, strlen(k), &got, &gl);
    js_session_close(s);
    int ok = e == JET_errSuccess && gl == strlen(v) && !memcmp(got, v, gl);
    free(got);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Dumps: every key/value through a cursor                               */
/* ------------------------------------------------------------------ */
typedef struct kvdump {
    size_t n, cap;
    char **k, **v;
    size_t *kl, *vl;
} kvdump;

static void dump_free(kvdump *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->k[i]);
        free(d->v[i]);
    }
    free(d->k);
    free(d->v);
    free(d->kl);
    free(d->vl);
    memset(d, 0, sizeof *d);
}

static void dump_inst(js_instance *inst, kvdump *d)
{
    js_session *s;
    js_cursor *c;
    memset(d, 0, sizeof *d);
    OK(js_session_open(inst, &s));
    OK(js_txn_begin(s, JS_TXN_READONLY));
    OK(js_cursor_open(s, &c));
    JET_ERR e = js_cursor_seek(c, NULL, 0);
    while (e == JET_errSuccess) {
        const void *k, *v;
        size_t kl, vl;
        OK(js_cursor_key(c, &k, &kl));
        OK(js_cursor_value(c, &v, &vl));
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 1024;
            d->k = realloc(d->k, d->cap * sizeof *d->k);
            d->v = realloc(d->v, d->cap * sizeof *d->v);
            d->kl = realloc(d->kl, d->cap * sizeof *d->kl);
            d->vl = realloc(d->vl, d->cap * sizeof *d->vl);
        }
        d->k[d->n] = malloc(kl + 1);
        memcpy(d->k[d->n], k, kl);
        d->kl[d->n] = kl;
        d->v[d->n] = malloc(vl + 1);
        memcpy(d->v[d->n], v, vl);
        d->vl[d->n] = vl;
        d->n++;
        e = js_cursor_next(c);
    }
    cr_assert_eq(e, JET_errRecordNotFound, "cursor walk ended with %s", js_errname(e));
    js_cursor_close(c);
    OK(js_txn_commit(s, 0));
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, d->n, "js_count %llu but the cursor saw %zu keys", (unsigned long long)count, d->n);
    js_session_close(s);
}

static void dump_dir(const char *dir, kvdump *d)
{
    js_instance *inst = reopen(dir);
    dump_inst(inst, d);
    OK(js_close(inst));
}

/* NULL when equal, else a description of the first difference (static). */
static const char *dump_diff(const kvdump *a, const kvdump *b)
{
    static char why[512];
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        if (a->kl[i] != b->kl[i] || memcmp(a->k[i], b->k[i], a->kl[i])) {
            snprintf(why, sizeof why, "key #%zu: '%.*s' vs '%.*s'", i, (int)a->kl[i], a->k[i], (int)b->kl[i],
                     b->k[i]);
            return why;
        }
        if (a->vl[i] != b->vl[i] || memcmp(a->v[i], b->v[i], a->vl[i])) {
            snprintf(why, sizeof why, "value of '%.*s' differs (%zu vs %zu bytes)", (int)a->kl[i], a->k[i],
                     a->vl[i], b->vl[i]);
            return why;
        }
    }
    if (a->n != b->n) {
        snprintf(why, sizeof why, "%zu keys vs %zu keys (first extra: '%.*s')", a->n, b->n,
                 (int)(a->n > b->n ? a->kl[n] : b->kl[n]), a->n > b->n ? a->k[n] : b->k[n]);
        return why;
    }
    return NULL;
}

#define ASSERT_DUMP_EQ(a, b, what)                                                   \
    do {                                                                             \
        const char *why_ = dump_diff((a), (b));                                      \
        cr_assert_null(why_, "%s: dumps differ: %s", (what), why_ ? why_ : "");      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Log generations of a directory                                       */
/* ------------------------------------------------------------------ */
#define MAXGENS 4096
typedef struct genlist {
    uint32_t g[MAXGENS];
    size_t n;
} genlist;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void list_gens(const char *dir, genlist *out)
{
    out->n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned g;
        char tail[8];
        if (strlen(de->d_name) == 15 && sscanf(de->d_name, "edb%8X%4s", &g, tail) == 2 && !strcmp(tail, ".log") &&
            g != 0) {
            cr_assert_lt(out->n, MAXGENS);
            out->g[out->n++] = g;
        }
    }
    closedir(d);
    qsort(out->g, out->n, sizeof out->g[0], cmp_u32);
}

static int gen_has(const genlist *l, uint32_t g)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->g[i] == g)
            return 1;
    return 0;
}

/* Every generation of 'before' is still in 'after'; NULL or the first missing. */
static const char *gens_kept(const genlist *before, const genlist *after)
{
    static char why[64];
    for (size_t i = 0; i < before->n; i++)
        if (!gen_has(after, before->g[i])) {
            snprintf(why, sizeof why, "edb%08X.log was deleted", before->g[i]);
            return why;
        }
    return NULL;
}

static void gen_path(char *out, const char *dir, uint32_t g)
{
    snprintf(out, PATH_MAX, "%s/edb%08X.log", dir, g);
}

/* ------------------------------------------------------------------ */
/* Backup sets                                                           */
/* ------------------------------------------------------------------ */
typedef struct binfo {
    char type[32];
    uint32_t gen_low, gen_high, full_gen_high;
    char log_signature[64];
} binfo;

static void read_binfo(const char *set, binfo *bi)
{
    char path[PATH_MAX], line[256];
    memset(bi, 0, sizeof *bi);
    snprintf(path, sizeof path, "%s/backup.info", set);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    while (fgets(line, sizeof line, f)) {
        char key[64], val[128];
        if (sscanf(line, "%63[^:]: %127[^\n]", key, val) != 2)
            continue;
        if (!strcmp(key, "type"))
            snprintf(bi->type, sizeof bi->type, "%s", val);
        else if (!strcmp(key, "gen_low"))
            bi->gen_low = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "gen_high"))
            bi->gen_high = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "full_gen_high"))
            bi->full_gen_high = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "log_signature"))
            snprintf(bi->log_signature, sizeof bi->log_signature, "%s", val);
    }
    fclose(f);
    cr_assert(bi->gen_low && bi->gen_high >= bi->gen_low, "%s: bad backup.info", set);
}

/* Replace the value of key in backup.info. */
static void edit_binfo(const char *set, const char *key, const char *value)
{
    char path[PATH_MAX], line[256], out[4096] = "";
    size_t len = 0;
    int found = 0;
    snprintf(path, sizeof path, "%s/backup.info", set);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        size_t kl = strlen(key);
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            len += (size_t)snprintf(out + len, sizeof out - len, "%s: %s\n", key, value);
            found = 1;
        } else {
            len += (size_t)snprintf(out + len, sizeof out - len, "%s", line);
        }
    }
    fclose(f);
    cr_assert(found, "no %s in %s", key, path);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
}

/* Rewrite SHA256SUMS so it matches the set's files as they are now. */
static void regen_sums(const char *set)
{
    cr_assert_eq(sh("cd '%s' && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%%f\\n' | LC_ALL=C sort | "
                    "xargs -r sha256sum > '%s/sums.tmp' && mv '%s/sums.tmp' SHA256SUMS",
                    set, T, T),
                 0);
}

/* `sha256sum -c SHA256SUMS` inside the set passes, and SHA256SUMS lists
 * every other file of it (and nothing else is there: no edb.chk, edb.log,
 * temp files). */
static void assert_set_sums(const char *set)
{
    cr_assert_eq(sh("cd '%s' && sha256sum -c --quiet --strict SHA256SUMS >/dev/null 2>&1", set), 0,
                 "sha256sum -c SHA256SUMS fails in %s", set);
    char *listed = sh_out("cd '%s' && awk '{print $2}' SHA256SUMS | LC_ALL=C sort", set);
    char *present = sh_out("cd '%s' && ls -A | grep -v '^SHA256SUMS$' | LC_ALL=C sort", set);
    cr_assert_str_eq(listed, present, "%s: SHA256SUMS lists\n%s\nbut the set holds\n%s", set, listed, present);
    free(listed);
    free(present);
    char p[PATH_MAX], q[PATH_MAX];
    snprintf(p, sizeof p, "%s/edb.chk", set);
    snprintf(q, sizeof q, "%s/edb.log", set);
    cr_assert(!exists(p) && !exists(q), "%s holds a checkpoint file or a current log", set);
    struct stat st;
    cr_assert_eq(stat(set, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "%s has mode %o", set, st.st_mode & 0777);
    snprintf(p, sizeof p, "%s/jetsnap.edb", set);
    cr_assert_eq(stat(p, &st), 0, "no jetsnap.edb in %s", set);
    cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o", p, st.st_mode & 0777);
}

static const char *set_of(const char *dest, unsigned flags)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, PATH_MAX, "%s%s", dest, (flags & JS_BACKUP_ATOMIC) ? "/new" : "");
    return p;
}

/* A backup that must succeed; then the set passes sha256sum -c. */
static void backup_ok(js_instance *inst, const char *dest, unsigned flags)
{
    OK(js_backup(inst, dest, flags, NULL, NULL));
    if (dest)
        assert_set_sums(set_of(dest, flags));
    if (dest && (flags & JS_BACKUP_ATOMIC)) {
        char p[PATH_MAX], q[PATH_MAX];
        snprintf(p, sizeof p, "%s/temp", dest);
        snprintf(q, sizeof q, "%s/old", dest);
        cr_assert(!exists(p), "%s left after a successful backup", p);
        cr_assert(!exists(q), "%s left after a successful backup", q);
    }
}

/* Restore that must succeed and leave a clean-shutdown instance. */
static void restore_ok(const char *backup, const char *target, const char *logs, uint32_t until)
{
    OK(js_restore(backup, target, logs, until, NULL, NULL));
    js_info info;
    OK(js_info_read(target, &info));
    cr_assert_eq(info.state, JS_DB_CLEAN_SHUTDOWN, "restored %s has state %d", target, info.state);
}

/* ------------------------------------------------------------------ */
/* The monotonic writer (DESIGN section 6)                               */
/* ------------------------------------------------------------------ */
typedef struct mwriter {
    js_instance *inst;
    _Atomic uint64_t acked;     /* highest N whose commit returned */
    atomic_int stop;
    uint64_t limit;
    int durable;
    int ackfd;                  /* -1, or a pipe to report acks to */
    JET_ERR err;
    pthread_t th;
} mwriter;

static size_t seq_val(char *buf, uint64_t n)
{
    return make_val(buf, "seq", (int)n, 120);
}

static void *mwriter_main(void *arg)
{
    mwriter *w = arg;
    js_session *s = NULL;
    char key[64], val[256], cnt[32];
    w->err = js_session_open(w->inst, &s);
    for (uint64_t n = atomic_load(&w->acked) + 1; !w->err && !atomic_load(&w->stop) && n <= w->limit; n++) {
        int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)n);
        size_t vl = seq_val(val, n);
        int cl = snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)n);
        w->err = js_txn_begin(s, 0);
        if (!w->err)
            w->err = js_put(s, key, (size_t)kl, val, vl);
        if (!w->err)
            w->err = js_put(s, "counter", 7, cnt, (size_t)cl);
        if (!w->err)
            w->err = js_txn_commit(s, w->durable ? JS_COMMIT_FLAG_DURABLE : 0);
        if (w->err)
            break;
        atomic_store(&w->acked, n);
        if (w->ackfd >= 0) {
            uint64_t v = n;
            if (write(w->ackfd, &v, sizeof v) != (ssize_t)sizeof v)
                break;
        }
        if (n % 16 == 0)
            usleep(200);
    }
    js_session_close(s);
    return NULL;
}

static void mwriter_start(mwriter *w, js_instance *inst, uint64_t limit, int durable, int ackfd)
{
    memset(w, 0, sizeof *w);
    w->inst = inst;
    w->limit = limit;
    w->durable = durable;
    w->ackfd = ackfd;
    atomic_store(&w->acked, 0);
    atomic_store(&w->stop, 0);
    cr_assert_eq(pthread_create(&w->th, NULL, mwriter_main, w), 0);
}

static void mwriter_stop(mwriter *w)
{
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
    cr_assert_eq(w->err, JET_errSuccess, "writer failed: %s", js_errname(w->err));
}

/* The monotonic invariant of an instance: seq:1..M with no gap and nothing
 * after, counter = M, plus 'extra' other keys.  Returns M. */
static uint64_t check_monotonic(js_instance *inst, uint64_t extra)
{
    js_session *s;
    void *v = NULL;
    size_t vl = 0;
    char key[64], want[256];
    OK(js_session_open(inst, &s));
    uint64_t m = 0;
    JET_ERR e = js_get(s, "counter", 7, &v, &vl);
    if (e == JET_errSuccess) {
        char tmp[32];
        cr_assert_lt(vl, sizeof tmp);
        memcpy(tmp, v, vl);
        tmp[vl] = '\0';
        m = strtoull(tmp, NULL, 10);
        free(v);
    } else {
        cr_assert_eq(e, JET_errRecordNotFound);
    }
    for (uint64_t n = 1; n <= m; n++) {
        int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)n);
        e = js_get(s, key, (size_t)kl, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "seq:%llu missing (counter %llu): a gap", (unsigned long long)n,
                     (unsigned long long)m);
        size_t wl = seq_val(want, n);
        cr_assert(vl == wl && !memcmp(v, want, wl), "seq:%llu has a wrong value", (unsigned long long)n);
        free(v);
    }
    int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)(m + 1));
    e = js_get(s, key, (size_t)kl, &v, &vl);
    cr_assert_eq(e, JET_errRecordNotFound, "seq:%llu present beyond counter %llu", (unsigned long long)(m + 1),
                 (unsigned long long)m);
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, m + (m ? 1 : 0) + extra, "%llu keys, expected seq:1..%llu + counter + %llu",
                 (unsigned long long)count, (unsigned long long)m, (unsigned long long)extra);
    js_session_close(s);
    return m;
}

/* ------------------------------------------------------------------ */
/* Status callbacks                                                      */
/* ------------------------------------------------------------------ */
typedef struct cbrec {
    int begins, progresses, completes, fails;
    JET_ERR fail_err;
    uint32_t gen_low, gen_high;
    char truncated[64];
    char last_phase[32];
    uint64_t last_units;
    int monotonic_units;    /* units_done never went down */
    unsigned sleep_us;      /* per progress call */
    mwriter *w;             /* acked when the roll-log phase began */
    uint64_t acked_at_roll;
} cbrec;

static int record_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    cbrec *r = ctx;
    cr_assert(snp == JS_SNP_BACKUP || snp == JS_SNP_RESTORE);
    cr_assert_eq(p->units_total, 100);
    cr_assert_leq(p->units_done, 100);
    if (p->units_done < r->last_units && snt != JS_SNT_FAIL)
        r->monotonic_units = 0;
    r->last_units = p->units_done;
    if (p->phase)
        snprintf(r->last_phase, sizeof r->last_phase, "%s", p->phase);
    switch (snt) {
    case JS_SNT_BEGIN: r->begins++; break;
    case JS_SNT_PROGRESS: r->progresses++; break;
    case JS_SNT_COMPLETE:
        r->completes++;
        r->gen_low = p->gen_low;
        r->gen_high = p->gen_high;
        snprintf(r->truncated, sizeof r->truncated, "%s", p->truncated ? p->truncated : "");
        break;
    case JS_SNT_FAIL:
        r->fails++;
        r->fail_err = p->err;
        break;
    }
    if (r->w && p->phase && !strcmp(p->phase, "roll-log") && !r->acked_at_roll)
        r->acked_at_roll = atomic_load(&r->w->acked);
    if (r->sleep_us && snt == JS_SNT_PROGRESS)
        usleep(r->sleep_us);
    return 0;
}

/* ================================================================== */
/* 1. Online full backup under a concurrent monotonic writer             */
/* ================================================================== */
Test(backup, online_full_under_monotonic_writer, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk1"), *dest2 = tp("bk2");
    js_params p = test_params();
    p.checkpoint_ms = 20;   /* the flusher runs during the copy too */
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "pre", 0, 3000, 900);   /* a few MB, so the copy takes several batches */

    mwriter w;
    mwriter_start(&w, inst, UINT64_MAX, 0, -1);
    while (atomic_load(&w.acked) < 300)
        usleep(1000);
    uint64_t acked_before = atomic_load(&w.acked);

    cbrec rec = { .monotonic_units = 1, .sleep_us = 3000, .w = &w };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, record_cb, &rec));
    uint64_t acked_after = atomic_load(&w.acked);
    assert_set_sums(dest);
    cr_assert_eq(rec.begins, 1);
    cr_assert_eq(rec.completes, 1);
    cr_assert_eq(rec.fails, 0);
    cr_assert(rec.progresses > 3, "only %d progress reports", rec.progresses);
    cr_assert_eq(rec.last_units, 100);
    cr_assert_gt(acked_after, acked_before, "the writer was blocked for the length of the backup");
    binfo bi;
    read_binfo(dest, &bi);
    cr_assert_str_eq(bi.type, "full");
    cr_assert_eq(rec.gen_low, bi.gen_low);
    cr_assert_eq(rec.gen_high, bi.gen_high);

    /* Keep writing a little, then stop: the set must not see any of it. */
    while (atomic_load(&w.acked) < acked_after + 200)
        usleep(1000);
    mwriter_stop(&w);
    uint64_t final_acked = atomic_load(&w.acked);

    restore_ok(dest, tp("r1"), NULL, 0);
    js_instance *r1 = reopen(tp("r1"));
    uint64_t m = check_monotonic(r1, 3000);
    cr_assert_geq(m, acked_before, "restored M=%llu below %llu acknowledged before the backup began",
                  (unsigned long long)m, (unsigned long long)acked_before);
    cr_assert_geq(rec.acked_at_roll, acked_before);
    cr_assert_geq(m, rec.acked_at_roll, "restored M=%llu below %llu acknowledged before the log roll",
                  (unsigned long long)m, (unsigned long long)rec.acked_at_roll);
    cr_assert_leq(m, final_acked);
    /* The prefill is intact too. */
    check_fill(r1, "pre", 0, 3000, 900);
    OK(js_close(r1));

    /* A quiet second backup equals its restored copy, key for key. */
    kvdump live, restored;
    dump_inst(inst, &live);
    cr_assert_eq(check_monotonic(inst, 3000), final_acked);
    backup_ok(inst, dest2, JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    OK(js_close(inst));
    restore_ok(dest2, tp("r2"), NULL, 0);
    dump_dir(tp("r2"), &restored);
    ASSERT_DUMP_EQ(&live, &restored, "quiet backup vs its restore");
    cr_assert_eq(live.n, 3000 + final_acked + 1);
    dump_free(&live);
    dump_free(&restored);
    OK(js_verify(dest2, NULL, NULL, NULL));
    /* js_verify(dest) is not asserted here: see
     * verify_accepts_online_copy_of_growing_database (engine bug). */
}

/* While the job is in its copy-database phase (the file size already
 * read), the database grows and a checkpoint writes the new meta page and
 * extends the file: the copy's meta page then names more pages than the
 * copy holds.  That is a normal fuzzy online copy: restore replays the
 * full page images of the new pages. */
typedef struct grow_ctx {
    js_instance *inst;
    int done;
} grow_ctx;

static int grow_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    grow_ctx *g = ctx;
    if (snt == JS_SNT_PROGRESS && !g->done && p->phase && !strcmp(p->phase, "copy-database")) {
        g->done = 1;
        fill(g->inst, "grow", 0, 2000, 900);
        OK(js_checkpoint(g->inst));
    }
    return 0;
}

static void online_copy_of_growing_database(int check_verify)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 200, 300);
    grow_ctx g = { .inst = inst };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, grow_cb, &g));
    cr_assert(g.done);
    assert_set_sums(dest);
    kvdump live, d;
    dump_inst(inst, &live);
    OK(js_close(inst));
    restore_ok(dest, tp("r"), NULL, 0);
    dump_dir(tp("r"), &d);
    ASSERT_DUMP_EQ(&d, &live, "restore of a copy taken while the database grew");
    dump_free(&d);
    dump_free(&live);
    if (check_verify) {
        js_check_report rep;
        memset(&rep, 0, sizeof rep);
        JET_ERR e = js_verify(dest, &rep, NULL, NULL);
        cr_assert_eq(e, JET_errSuccess, "js_verify of a set that restores: %s (%d): %s [%s]", js_errname(e), e,
                     js_errdetail(), rep.first_error);
    }
}

Test(backup, online_copy_of_growing_database_restores, .timeout = 120)
{
    online_copy_of_growing_database(0);
}

/* Regression (fixed; core/check.c, check_db, used by js_check and js_verify): a
 * full backup copies the database fuzzily (pages changed or added during the
 * copy are put right by replay at restore), but check_db treats the copy
 * like a consistent database: pages below the copied meta page's high-water
 * mark that are still zero ("page N ...: page was never written"), or a
 * high-water mark beyond the copied file ("N pages in use but the file holds
 * M"), fail with JET_errReadVerifyFailure.  So js_verify / `jetsnap verify`
 * rejects a set that restores correctly (SPEC: verify exits 0 only if the
 * set would restore... and here it would).  Seen intermittently with a
 * concurrent writer (online_full_under_monotonic_writer: "page 1549 of
 * .../jetsnap.edb: page was never written"); made deterministic here by
 * growing the database and checkpointing inside the copy-database phase. */
Test(backup, verify_accepts_online_copy_of_growing_database, .timeout = 120)
{
    online_copy_of_growing_database(1);
}

/* ================================================================== */
/* 2. Full + three incrementals, roll-forward, until_gen                 */
/* ================================================================== */
static void full_plus_incrementals(unsigned atomic)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    kvdump at_inc3, at_roll, at_close, d;

    fill(inst, "a", 0, 400, 300);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR | atomic);
    binfo b0;
    read_binfo(set_of(dest, atomic), &b0);
    cr_assert_str_eq(b0.type, "full");

    fill(inst, "b", 0, 300, 500);
    del_some(inst, "a", 0, 400, 7);
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);
    binfo b1;
    read_binfo(set_of(dest, atomic), &b1);
    cr_assert_str_eq(b1.type, "incremental");
    cr_assert_eq(b1.gen_low, b0.gen_low, "an incremental set still starts at the full backup's gen_low");
    cr_assert_gt(b1.gen_high, b0.gen_high);

    fill(inst, "a", 0, 200, 700);   /* overwrites */
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);

    fill(inst, "c", 0, 500, 200);
    del_some(inst, "b", 0, 300, 3);
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);
    dump_inst(inst, &at_inc3);
    binfo b3;
    read_binfo(set_of(dest, atomic), &b3);
    cr_assert_eq(b3.gen_low, b0.gen_low);
    cr_assert_eq(b3.full_gen_high, b0.gen_high);
    for (uint32_t g = b3.gen_low; g <= b3.gen_high; g++) {
        char gp[PATH_MAX];
        gen_path(gp, set_of(dest, atomic), g);
        cr_assert(exists(gp), "the set lacks edb%08X.log", g);
    }

    /* After the last incremental: two batches separated by a roll. */
    fill(inst, "d", 0, 300, 400);
    del_some(inst, "c", 0, 500, 5);
    dump_inst(inst, &at_roll);
    uint32_t rolled = 0;
    OK(js_log_roll(inst, &rolled));
    cr_assert_gt(rolled, b3.gen_high);
    fill(inst, "e", 0, 300, 400);
    put_str(inst, "last", "commit");
    dump_inst(inst, &at_close);
    OK(js_close(inst));

    js_info si;
    OK(js_info_read(dest, &si));
    cr_assert(si.is_backup_set);
    cr_assert_str_eq(si.backup_type, "incremental");

    restore_ok(dest, tp("r_set"), NULL, 0);
    dump_dir(tp("r_set"), &d);
    ASSERT_DUMP_EQ(&d, &at_inc3, "restore of the set vs the state at the last incremental");
    dump_free(&d);

    restore_ok(dest, tp("r_logs"), inst_dir, 0);
    dump_dir(tp("r_logs"), &d);
    ASSERT_DUMP_EQ(&d, &at_close, "restore --logs live dir vs the last commit before close");
    dump_free(&d);

    restore_ok(dest, tp("r_until"), inst_dir, rolled);
    dump_dir(tp("r_until"), &d);
    ASSERT_DUMP_EQ(&d, &at_roll, "restore --logs --until-gen vs the state at the roll");
    dump_free(&d);

    /* until_gen below what the database copy needs. */
    if (b3.full_gen_high > 1)
        FAILS_WITH(js_restore(dest, tp("r_low"), inst_dir, b3.full_gen_high - 1, NULL, NULL),
                   JET_errEndingRestoreLogTooLow);
    cr_assert(!exists(tp("r_low")));

    /* The restored instances are live instances: they take writes and
     * backups of their own. */
    js_instance *r = reopen(tp("r_logs"));
    put_str(r, "after", "restore");
    backup_ok(r, tp("bk_of_restored"), JS_BACKUP_CREATE_DIR);
    OK(js_close(r));
    OK(js_verify(dest, NULL, NULL, NULL));
    assert_set_sums(set_of(dest, atomic));

    dump_free(&at_inc3);
    dump_free(&at_roll);
    dump_free(&at_close);
}

Test(backup, full_and_three_incrementals_atomic, .timeout = 120)
{
    full_plus_incrementals(JS_BACKUP_ATOMIC);
}

Test(backup, full_and_three_incrementals_plain, .timeout = 120)
{
    full_plus_incrementals(0);
}

/* Regression (fixed; core/restore.c, js_restore): until_gen is applied only to the
 * roll-forward from logs_dir; the set's own generations are always all
 * replayed (redo_run(..., info.gen_high, ...)), so a restore "until" a
 * generation inside the set silently returns the state at the end of the
 * set.  jetsnap.h documents until_gen as "last generation replayed".
 * Either honouring it or refusing it would be right; this accepts both. */
Test(backup, until_gen_inside_set_is_honoured_or_refused, .timeout = 120)
{
    js_params p = test_params();
    js_instance *inst = create_open(tp("inst"), &p);
    fill(inst, "a", 0, 300, 300);
    backup_ok(inst, tp("bk"), JS_BACKUP_CREATE_DIR);
    fill(inst, "b", 0, 300, 300);
    backup_ok(inst, tp("bk"), JS_BACKUP_INCREMENTAL);
    binfo b1;
    read_binfo(tp("bk"), &b1);
    kvdump at1, d;
    dump_inst(inst, &at1);
    fill(inst, "c", 0, 300, 300);
    backup_ok(inst, tp("bk"), JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    JET_ERR e = js_restore(tp("bk"), tp("r"), NULL, b1.gen_high, NULL, NULL);
    if (e == JET_errSuccess) {
        dump_dir(tp("r"), &d);
        ASSERT_DUMP_EQ(&d, &at1, "restore with until_gen = the first incremental's gen_high");
        dump_free(&d);
    } else {
        cr_assert(!exists(tp("r")), "a refused restore left its target");
    }
    dump_free(&at1);
}

/* ================================================================== */
/* 3. Fault injection at every write, fsync and rename of a backup      */
/* ================================================================== */
enum fkind { F_FULL_ATOMIC, F_FULL_PLAIN, F_INC_ATOMIC, F_INC_PLAIN };
static const char *op_name[] = { "write", "fsync", "rename" };

/* Restore the instance and DEST from their templates. */
static void from_template(const char *inst_dir, const char *dest)
{
    cr_assert_eq(sh("rm -rf '%s' '%s' && cp -a '%s.tpl' '%s' && { [ ! -e '%s.tpl' ] || cp -a '%s.tpl' '%s'; }",
                    inst_dir, dest, inst_dir, inst_dir, dest, dest, dest),
                 0);
}

/* Records how many operations of one kind the job had made when it entered
 * its publish phase. */
typedef struct phase_mark {
    int op;
    uint64_t at_publish;
    int seen;
} phase_mark;

static int phase_mark_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    (void)snt;
    phase_mark *m = ctx;
    if (!m->seen && p->phase && !strcmp(p->phase, "publish")) {
        m->seen = 1;
        m->at_publish = js_fault_count(m->op);
    }
    return 0;
}

/* Fail, one at a time, every write / fsync / rename the backup makes under
 * DEST (first counted in a clean run).  which: 0 = the points before the
 * publish phase (copies, manifests in the work directory), 1 = the points
 * of the publish phase (moving the new files into place). */
static void fault_sweep(int kind, int which)
{
    const char *inst_dir = tp("inst"), *dest = tp("dest");
    unsigned flags = (kind == F_FULL_ATOMIC || kind == F_INC_ATOMIC) ? JS_BACKUP_ATOMIC : 0;
    if (kind == F_INC_ATOMIC || kind == F_INC_PLAIN)
        flags |= JS_BACKUP_INCREMENTAL;
    else
        flags |= JS_BACKUP_CREATE_DIR;
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 300, 200);
    if (kind != F_FULL_PLAIN) {
        /* The previous complete set the failures must leave alone. */
        backup_ok(inst, dest, JS_BACKUP_CREATE_DIR | (flags & JS_BACKUP_ATOMIC));
        fill(inst, "m", 0, 300, 300);   /* a few generations for the incremental */
    }
    OK(js_close(inst));
    kvdump expect;
    dump_dir(inst_dir, &expect);
    cr_assert_eq(sh("cp -a '%s' '%s.tpl' && { [ ! -e '%s' ] || cp -a '%s' '%s.tpl'; }", inst_dir, inst_dir, dest,
                    dest, dest),
                 0);

    struct { int op, err; long tear; } cases[] = {
        { JS_FAULT_WRITE, EIO, -1 },  { JS_FAULT_WRITE, ENOSPC, -1 }, { JS_FAULT_WRITE, EIO, 100 },
        { JS_FAULT_FSYNC, EIO, -1 },  { JS_FAULT_FSYNC, ENOSPC, -1 }, { JS_FAULT_RENAME, EIO, -1 },
        { JS_FAULT_RENAME, ENOSPC, -1 },
    };
    genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    int problems = 0, points = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int op = cases[c].op, err = cases[c].err;
        /* A clean run counts the backup's own operations of this kind. */
        from_template(inst_dir, dest);
        inst = reopen(inst_dir);
        js_fault_reset();
        js_fault_arm(op, 0, 0, -1, dest);
        phase_mark mark = { .op = op };
        OK(js_backup(inst, dest, flags, phase_mark_cb, &mark));
        uint64_t count = js_fault_count(op);
        js_fault_reset();
        assert_set_sums(set_of(dest, flags));
        OK(js_close(inst));
        cr_assert_gt(count, 0, "a clean backup made no %s under %s", op_name[op], dest);
        cr_assert(mark.seen, "no publish phase reported");
        uint64_t lo = which == 0 ? 1 : mark.at_publish + 1, hi = which == 0 ? mark.at_publish : count;

        for (uint64_t n = lo; n <= hi; n++) {
            char what[160];
            snprintf(what, sizeof what, "%s #%llu of %llu (publish starts after #%llu) failing with %s%s",
                     op_name[op], (unsigned long long)n, (unsigned long long)count,
                     (unsigned long long)mark.at_publish, err == EIO ? "EIO" : "ENOSPC",
                     cases[c].tear >= 0 ? " (torn)" : "");
            points++;
            from_template(inst_dir, dest);
            char *snap_before = tree_snapshot(dest);
            list_gens(inst_dir, before);
            inst = reopen(inst_dir);
            js_fault_reset();
            js_fault_arm(op, n, err, cases[c].tear, dest);
            JET_ERR r = js_backup(inst, dest, flags, NULL, NULL);
            char detail[512];
            snprintf(detail, sizeof detail, "%s", js_errdetail());
            int fired = js_fault_count(op) >= n;
            js_fault_reset();

            cr_expect(fired, "%s: the fault did not fire (the run is not deterministic)", what);
            cr_expect_neq(r, JET_errSuccess, "%s: the backup succeeded", what);
            int wrong_err = 0;
            if (r != JET_errSuccess) {
                JET_ERR want = err == ENOSPC ? JET_errDiskFull : JET_errDiskIO;
                wrong_err = r != want;
                cr_expect_eq(r, want, "%s: %s (%d) [%s], expected %s", what, js_errname(r), r, detail,
                             js_errname(want));
            }
            char *snap_after = tree_snapshot(dest);
            int same = !strcmp(snap_before, snap_after);
            cr_expect(same, "%s: DEST changed (%s):\nbefore:\n%s\nafter:\n%s", what, js_errname(r), snap_before,
                      snap_after);
            list_gens(inst_dir, after);
            const char *lost = gens_kept(before, after);
            cr_expect_null(lost, "%s: %s", what, lost ? lost : "");

            /* The live instance still works and holds all its data. */
            kvdump now;
            dump_inst(inst, &now);
            const char *why = dump_diff(&now, &expect);
            cr_expect_null(why, "%s: live data differs: %s", what, why ? why : "");
            dump_free(&now);
            put_str(inst, "probe", what);
            cr_expect(has_str(inst, "probe", what), "%s: the live instance lost a write", what);
            OK(js_close(inst));
            if (!same || lost || why || wrong_err || r == JET_errSuccess)
                problems++;
            free(snap_before);
            free(snap_after);
            if (problems > 20)
                break;
        }
    }
    cr_assert_gt(points, 0, "no fault point in this range");
    cr_assert_eq(problems, 0, "%d of %d fault points broke the backup contract (see the messages above)", problems,
                 points);
    free(before);
    free(after);
    dump_free(&expect);
}

Test(backup, faults_full_atomic, .timeout = 120)
{
    fault_sweep(F_FULL_ATOMIC, 0);
}

/* Regression (fixed; core/backup.c, bk_publish_full): when the fsync of DEST after
 * the renames temp -> new (or the one after removing DEST/old) fails, the
 * job returns JET_errDiskIO / JET_errDiskFull but the new set is already
 * published as DEST/new (and DEST/old is left behind): a failed atomic
 * backup did not leave the previous set as it was (SPEC section 4). */
Test(backup, faults_full_atomic_publish, .timeout = 120)
{
    fault_sweep(F_FULL_ATOMIC, 1);
}

Test(backup, faults_full_plain, .timeout = 120)
{
    fault_sweep(F_FULL_PLAIN, 0);
}

Test(backup, faults_full_plain_publish, .timeout = 120)
{
    fault_sweep(F_FULL_PLAIN, 1);
}

Test(backup, faults_incremental_atomic, .timeout = 120)
{
    fault_sweep(F_INC_ATOMIC, 0);
}

/* Regression (fixed; core/backup.c, bk_publish_incremental): an incremental
 * (atomic: into DEST/new; plain: into DEST) publishes by renaming each new
 * generation into the set, then rewriting backup.info, then SHA256SUMS.  A
 * failure after the first rename leaves this job's generations in the set;
 * a failure between the two manifests (write/fsync/rename of SHA256SUMS)
 * leaves a new backup.info with the old SHA256SUMS, so `sha256sum -c` fails
 * and js_restore of the previous set fails with
 * JET_errRestoreOfNonBackupDatabase: the failed job broke the previous set. */
Test(backup, faults_incremental_atomic_publish, .timeout = 120)
{
    fault_sweep(F_INC_ATOMIC, 1);
}

/* Minimal reproduction of the bk_publish_incremental bug: fail only the
 * rename that installs the new SHA256SUMS.  The incremental fails (as it
 * should), but the previous set no longer passes sha256sum -c (backup.info
 * was already replaced) and no longer restores. */
Test(backup, failed_incremental_keeps_previous_set_restorable, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *dest = tp("dest");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 300, 200);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    kvdump at_full;
    dump_inst(inst, &at_full);
    fill(inst, "m", 0, 300, 300);
    char sums[PATH_MAX];
    snprintf(sums, sizeof sums, "%s/SHA256SUMS", dest);
    js_fault_arm(JS_FAULT_RENAME, 1, EIO, -1, sums);
    FAILS_WITH(js_backup(inst, dest, JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errDiskIO);
    js_fault_reset();
    OK(js_close(inst));
    cr_expect_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1", dest), 0,
                 "the previous set fails sha256sum -c after a failed incremental");
    OK(js_restore(dest, tp("r"), NULL, 0, NULL, NULL));
    kvdump d;
    dump_dir(tp("r"), &d);
    ASSERT_DUMP_EQ(&d, &at_full, "the previous set after a failed incremental");
    dump_free(&d);
    dump_free(&at_full);
}

Test(backup, faults_incremental_plain, .timeout = 120)
{
    fault_sweep(F_INC_PLAIN, 0);
}

/* Regression (fixed): the same as faults_incremental_atomic_publish. */
Test(backup, faults_incremental_plain_publish, .timeout = 120)
{
    fault_sweep(F_INC_PLAIN, 1);
}

/* ================================================================== */
/* 4. SIGKILL of a process in the middle of a backup / a restore         */
/* ================================================================== */
typedef struct killctx {
    int sigfd;
    int signalled;
    const char *phase;      /* signal only in this phase (NULL: any) */
    uint64_t at_percent;
} killctx;

static int kill_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    killctx *k = ctx;
    if (snt == JS_SNT_PROGRESS && !k->signalled && p->units_done >= k->at_percent &&
        (!k->phase || (p->phase && !strcmp(p->phase, k->phase)))) {
        k->signalled = 1;
        if (write(k->sigfd, "K", 1) != 1)
            _exit(5);
        for (;;)
            pause();   /* the parent kills us here */
    }
    return 0;
}

/* Wait up to ms for one byte on fd; 1 when it came. */
static int wait_byte(int fd, int ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, ms) != 1)
        return 0;
    char c;
    return read(fd, &c, 1) == 1;
}

static void sigkill_during_backup(unsigned atomic)
{
    const char *inst_dir = tp("inst"), *dest = tp("dest");
    js_params p = test_params();
    p.checkpoint_ms = 50;
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "pre", 0, 4000, 1000);
    kvdump prev;
    if (atomic) {
        backup_ok(inst, dest, JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
        dump_inst(inst, &prev);
    }
    OK(js_close(inst));
    genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    list_gens(inst_dir, before);

    int sigp[2], ackp[2];
    cr_assert_eq(pipe(sigp), 0);
    cr_assert_eq(pipe(ackp), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sigp[0]);
        close(ackp[0]);
        js_params cp = test_params();
        cp.commit_mode = JS_COMMIT_DURABLE;
        cp.checkpoint_ms = 50;
        js_instance *ci = NULL;
        if (js_open(inst_dir, &cp, &ci))
            _exit(2);
        mwriter w;
        memset(&w, 0, sizeof w);
        w.inst = ci;
        w.limit = UINT64_MAX;
        w.durable = 1;
        w.ackfd = ackp[1];
        if (pthread_create(&w.th, NULL, mwriter_main, &w))
            _exit(3);
        while (atomic_load(&w.acked) < 100)
            usleep(1000);
        killctx k = { .sigfd = sigp[1], .at_percent = 30 };
        js_backup(ci, dest, JS_BACKUP_CREATE_DIR | atomic, kill_cb, &k);
        _exit(4);   /* the backup ended before it was killed */
    }
    close(sigp[1]);
    close(ackp[1]);
    int got = wait_byte(sigp[0], 60000);
    kill(pid, SIGKILL);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(got, "the child never reached 30%% of its backup (exit status %d)",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t acked = 0, v;
    while (read(ackp[0], &v, sizeof v) == (ssize_t)sizeof v)
        acked = v;
    close(sigp[0]);
    close(ackp[0]);
    cr_assert_gt(acked, 0);

    /* DEST: the previous set, or nothing a restore would take. */
    if (atomic) {
        restore_ok(dest, tp("r_prev"), NULL, 0);
        kvdump d;
        dump_dir(tp("r_prev"), &d);
        ASSERT_DUMP_EQ(&d, &prev, "restore of DEST after a killed atomic backup vs the previous set");
        dump_free(&d);
        dump_free(&prev);
        assert_set_sums(tp("dest/new"));
    } else {
        JET_ERR r = js_restore(dest, tp("r_none"), NULL, 0, NULL, NULL);
        cr_assert_neq(r, JET_errSuccess, "a half-written plain backup restored");
        cr_assert(!exists(tp("r_none")), "a failed restore left its target behind");
    }

    /* The instance reopens (recovery) with every acknowledged commit. */
    list_gens(inst_dir, after);
    const char *lost = gens_kept(before, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    inst = reopen(inst_dir);
    uint64_t m = check_monotonic(inst, 4000);
    cr_assert_geq(m, acked, "after the kill: counter %llu below %llu acknowledged durable commits",
                  (unsigned long long)m, (unsigned long long)acked);
    list_gens(inst_dir, after);
    for (size_t i = 1; i < after->n; i++)
        cr_assert_eq(after->g[i], after->g[i - 1] + 1, "the live chain has a hole after edb%08X.log", after->g[i - 1]);

    /* The next backup into the same DEST works and restores to the live data. */
    if (!atomic)
        cr_assert_eq(sh("rm -rf '%s'", dest), 0);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR | atomic);
    kvdump live, d2;
    dump_inst(inst, &live);
    OK(js_close(inst));
    restore_ok(dest, tp("r_next"), NULL, 0);
    dump_dir(tp("r_next"), &d2);
    ASSERT_DUMP_EQ(&d2, &live, "backup after the kill vs the live data");
    dump_free(&live);
    dump_free(&d2);
    free(before);
    free(after);
}

Test(backup, sigkill_during_atomic_backup, .timeout = 120)
{
    sigkill_during_backup(JS_BACKUP_ATOMIC);
}

Test(backup, sigkill_during_plain_backup, .timeout = 120)
{
    sigkill_during_backup(0);
}

/* Kill a process running js_restore when it reports 'phase' (at or after
 * at_percent), then check TARGET is recognisably unusable. */
static void sigkill_during_restore(const char *phase, uint64_t at_percent, int strict)
{
    const char *inst_dir = tp("inst"), *dest = tp("dest"), *target = tp("target");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 6000, 900);   /* several MB: the copy reports progress */
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    fill(inst, "l", 0, 1000, 500);
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));

    int sigp[2];
    cr_assert_eq(pipe(sigp), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sigp[0]);
        killctx k = { .sigfd = sigp[1], .phase = phase, .at_percent = at_percent };
        js_restore(dest, target, NULL, 0, kill_cb, &k);
        _exit(4);
    }
    close(sigp[1]);
    int got = wait_byte(sigp[0], 60000);
    kill(pid, SIGKILL);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(sigp[0]);
    cr_assert(got, "the restore never reported phase %s (exit %d)", phase,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    js_instance *bad = NULL;
    if (strict) {
        js_info info;
        OK(js_info_read(target, &info));
        cr_assert_eq(info.state, JS_DB_BEING_RESTORED, "state %d after a restore interrupted in %s", info.state,
                     phase);
        FAILS_WITH(js_open(target, &p, &bad), JET_errRestoreInProgress);
        cr_assert_null(bad);
        FAILS_WITH(js_instance_new(target, &p, &bad), JET_errRestoreInProgress);
    } else {
        /* At least never a half database that opens. */
        JET_ERR e = js_open(target, &p, &bad);
        cr_assert_neq(e, JET_errSuccess, "a half-restored database opened");
        cr_assert_null(bad);
    }
    /* A restore into it is refused too (not empty); a fresh one works. */
    FAILS_WITH(js_restore(dest, target, NULL, 0, NULL, NULL), JET_errInvalidPath);
    restore_ok(dest, tp("target2"), NULL, 0);
    kvdump a, b;
    dump_dir(inst_dir, &a);
    dump_dir(tp("target2"), &b);
    ASSERT_DUMP_EQ(&a, &b, "restore after an interrupted restore");
    dump_free(&a);
    dump_free(&b);
}

Test(backup, sigkill_during_restore_replay_leaves_being_restored, .timeout = 120)
{
    /* The database copy is in TARGET and replay has run. */
    sigkill_during_restore("replay", 0, 1);
}

Test(backup, sigkill_during_restore_copy_never_opens, .timeout = 120)
{
    sigkill_during_restore("copy-database", 0, 0);
}

/* Regression (fixed; core/restore.c, js_restore / rs_copy_db): the database is
 * copied into TARGET with the set's own header (state dirty-shutdown, raw
 * backup copy) and only marked being-restored by rs_write_state after the
 * whole copy.  Killed during the copy, TARGET holds a half database whose
 * header says dirty-shutdown: js_open refuses it only as a raw backup copy
 * (JET_errSoftRecoveryOnBackupDatabase) and `jetsnap info` does not show
 * being-restored, unlike SPEC section 4 ("Interrupted, it leaves TARGET
 * recognisably unusable (state being-restored)").  Writing the
 * being-restored header before the data (or copying under a temporary
 * name) would fix it. */
Test(backup, sigkill_during_restore_copy_leaves_being_restored, .timeout = 120)
{
    sigkill_during_restore("copy-database", 0, 1);
}

/* ================================================================== */
/* 5. Corruption: a database page, a log generation                      */
/* ================================================================== */
static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s", path);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

Test(backup, flipped_page_fails_read_verify, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *atomic_dest = tp("bk_atomic"), *plain_dest = tp("bk_plain");
    js_params p = test_params();
    p.cache_size = 64 << 10;
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 2000, 300);
    backup_ok(inst, atomic_dest, JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    OK(js_close(inst));

    js_info info;
    OK(js_info_read(inst_dir, &info));
    cr_assert_eq(info.page_size, 4096);
    cr_assert_gt(info.pages, 10);
    uint32_t pg = 3 + (uint32_t)(info.pages - 3) / 2;
    /* A used page: not all zero on disk. */
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", inst_dir);
    int fd = open(db, O_RDONLY);
    cr_assert_geq(fd, 0);
    unsigned char page[4096];
    cr_assert_eq(pread(fd, page, sizeof page, (off_t)pg * 4096), (ssize_t)sizeof page);
    close(fd);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof page; i++)
        nonzero |= page[i];
    cr_assert(nonzero, "page %u is not used", pg);
    flip_byte(db, (off_t)pg * 4096 + 100);

    char *snap = tree_snapshot(atomic_dest);
    genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    inst = reopen(inst_dir);   /* a fresh, empty cache: the page is read from disk */
    list_gens(inst_dir, before);
    char want[64];
    snprintf(want, sizeof want, "page %u", pg);

    FAILS_WITH(js_backup(inst, atomic_dest, JS_BACKUP_ATOMIC, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name %s", js_errdetail(), want);
    char *snap2 = tree_snapshot(atomic_dest);
    cr_assert_str_eq(snap, snap2, "a failed atomic backup changed the previous set");
    free(snap2);

    cr_assert_eq(mkdir(plain_dest, 0700), 0);
    FAILS_WITH(js_backup(inst, plain_dest, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name %s", js_errdetail(), want);
    cr_assert_eq(dir_entries(plain_dest), 0, "a failed backup left files in DEST");

    FAILS_WITH(js_backup(inst, tp("bk_created"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert(!exists(tp("bk_created")), "a failed backup left the DEST it created");

    list_gens(inst_dir, after);
    const char *lost = gens_kept(before, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    OK(js_close(inst));
    /* The offline check sees the same page. */
    js_check_report rep;
    FAILS_WITH(js_check(inst_dir, &rep), JET_errReadVerifyFailure);
    cr_assert_eq(rep.first_bad_page, pg);
    free(snap);
    free(before);
    free(after);
}

Test(backup, flipped_log_byte_fails_log_read_verify, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 500, 300);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    binfo bi;
    read_binfo(dest, &bi);
    fill(inst, "l", 0, 1200, 300);   /* several 64 KiB generations */
    OK(js_log_roll(inst, NULL));
    genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    list_gens(inst_dir, before);
    uint32_t g = bi.gen_high + 2;
    cr_assert(gen_has(before, g) && gen_has(before, g + 1), "edb%08X.log should be a closed generation", g);
    char gp[PATH_MAX];
    gen_path(gp, inst_dir, g);
    flip_byte(gp, 600);

    char *snap = tree_snapshot(dest);
    FAILS_WITH(js_backup(inst, dest, JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errLogReadVerifyFailure);
    char want[16];
    snprintf(want, sizeof want, "%08X", g);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name generation %s", js_errdetail(),
                       want);
    char *snap2 = tree_snapshot(dest);
    cr_assert_str_eq(snap, snap2, "a failed incremental changed the set");
    list_gens(inst_dir, after);
    const char *lost = gens_kept(before, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    /* The set is still the full backup, and restores. */
    assert_set_sums(dest);
    /* The same for an atomic set. */
    OK(js_close(inst));
    free(snap);
    free(snap2);
    free(before);
    free(after);
    restore_ok(dest, tp("r"), NULL, 0);
}

Test(backup, flipped_log_byte_in_set_fails_restore, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 500, 300);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    fill(inst, "l", 0, 800, 300);
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    binfo bi;
    read_binfo(dest, &bi);
    cr_assert_geq(bi.gen_high, bi.gen_low + 2);
    char gp[PATH_MAX];
    gen_path(gp, dest, bi.gen_low + 1);
    flip_byte(gp, 600);
    /* Unchanged SHA256SUMS: the hash check finds it. */
    FAILS_WITH(js_restore(dest, tp("r1"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);
    cr_assert(!exists(tp("r1")));
    /* Fixed SHA256SUMS: the block checksum finds it. */
    regen_sums(dest);
    FAILS_WITH(js_restore(dest, tp("r2"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);
    char want[16];
    snprintf(want, sizeof want, "%08X", bi.gen_low + 1);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    cr_assert(!exists(tp("r2")));
    cr_assert_neq(js_verify(dest, NULL, NULL, NULL), JET_errSuccess);
}

/* The database copy is hashed while restore copies it: a damaged copy is
 * caught there, the restore fails, and TARGET is left as it was found. */
Test(backup, flipped_db_byte_in_set_fails_restore, .timeout = 120)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 2000, 300);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dest);
    flip_byte(db, 3 * 4096 + 777);
    FAILS_WITH(js_restore(dest, tp("r1"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), "jetsnap.edb"), "detail '%s'", js_errdetail());
    cr_assert(!exists(tp("r1")), "a failed restore left its target behind");
    cr_assert_eq(mkdir(tp("r2"), 0700), 0);
    FAILS_WITH(js_restore(dest, tp("r2"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert(exists(tp("r2")), "a failed restore removed a target it did not create");
    cr_assert_eq(sh("[ -z \"$(ls -A '%s')\" ]", tp("r2")), 0, "a failed restore left files in its target");
    cr_assert_neq(js_verify(dest, NULL, NULL, NULL), JET_errSuccess);
}

/* ================================================================== */
/* 6. Truncation and header stamps                                       */
/* ================================================================== */
/* After a job that truncated below 'below': every generation of 'before'
 * below it is gone, every one at or above it is still there, and nothing
 * below it exists. */
static void assert_truncated_below(const genlist *before, const genlist *after, uint32_t below)
{
    for (size_t i = 0; i < before->n; i++) {
        uint32_t g = before->g[i];
        if (g < below)
            cr_assert(!gen_has(after, g), "edb%08X.log survived truncation below %08X", g, below);
        else
            cr_assert(gen_has(after, g), "edb%08X.log was deleted though truncation was below %08X", g, below);
    }
    for (size_t i = 0; i < after->n; i++)
        cr_assert_geq(after->g[i], below, "edb%08X.log is below the truncation point %08X", after->g[i], below);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static void assert_stamp(const js_backup_stamp *st, uint32_t lo, uint32_t hi, const char *what)
{
    cr_assert_eq(st->gen_low, lo, "%s: gen_low %08X, expected %08X", what, st->gen_low, lo);
    cr_assert_eq(st->gen_high, hi, "%s: gen_high %08X, expected %08X", what, st->gen_high, hi);
    if (lo) {
        int64_t now = (int64_t)time(NULL);
        cr_assert(st->time <= now && st->time > now - 120, "%s: time %lld", what, (long long)st->time);
    }
}

static void truncation_and_stamps(unsigned atomic)
{
    const char *inst_dir = tp("inst"), *dest = tp("bk");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    genlist *g0 = malloc(sizeof *g0), *g1 = malloc(sizeof *g1);
    js_info info;
    binfo bf, bi;
    char expect_trunc[64];

    OK(js_info_read(inst_dir, &info));
    assert_stamp(&info.last_full, 0, 0, "new instance last_full");
    assert_stamp(&info.last_incremental, 0, 0, "new instance last_incremental");

    fill(inst, "a", 0, 1500, 300);   /* several closed generations */
    list_gens(inst_dir, g0);
    cr_assert_geq(g0->n, 3, "only %zu closed generations", g0->n);

    cbrec rec = { .monotonic_units = 1 };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR | atomic, record_cb, &rec));
    assert_set_sums(set_of(dest, atomic));
    read_binfo(set_of(dest, atomic), &bf);
    OK(js_info_read(inst_dir, &info));
    assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "after full: last_full");
    assert_stamp(&info.last_incremental, 0, 0, "after full: last_incremental");
    cr_assert(rec.monotonic_units, "units_done went backwards in a quiet backup");
    cr_assert_eq(rec.completes, 1);
    cr_assert_eq(rec.last_units, 100);
    cr_assert_eq(rec.gen_low, bf.gen_low);
    cr_assert_eq(rec.gen_high, bf.gen_high);
    uint32_t below = min_u32(info.checkpoint_gen, bf.gen_high + 1);
    cr_assert_gt(below, g0->g[0], "nothing to truncate: the test proves nothing");
    list_gens(inst_dir, g1);
    assert_truncated_below(g0, g1, below);
    snprintf(expect_trunc, sizeof expect_trunc, "edb%08X.log-edb%08X.log", g0->g[0], below - 1);
    cr_assert_str_eq(rec.truncated, expect_trunc);
    cr_assert(info.log_gen_min == (g1->n ? g1->g[0] : 0));

    /* Two incrementals. */
    uint32_t prev_high = bf.gen_high;
    for (int round = 0; round < 2; round++) {
        fill(inst, round ? "c" : "b", 0, 800, 300);
        list_gens(inst_dir, g0);
        memset(&rec, 0, sizeof rec);
        rec.monotonic_units = 1;
        /* An incremental does not force a checkpoint (ESE's does not
         * either): it truncates below the checkpoint the instance has. */
        OK(js_checkpoint(inst));
        OK(js_backup(inst, dest, JS_BACKUP_INCREMENTAL | atomic, record_cb, &rec));
        assert_set_sums(set_of(dest, atomic));
        read_binfo(set_of(dest, atomic), &bi);
        cr_assert_str_eq(bi.type, "incremental");
        cr_assert_eq(bi.gen_low, bf.gen_low);
        OK(js_info_read(inst_dir, &info));
        assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "after incremental: last_full");
        assert_stamp(&info.last_incremental, prev_high + 1, bi.gen_high, "after incremental: last_incremental");
        cr_assert_eq(rec.gen_low, prev_high + 1);
        cr_assert_eq(rec.gen_high, bi.gen_high);
        below = min_u32(info.checkpoint_gen, bi.gen_high + 1);
        list_gens(inst_dir, g1);
        assert_truncated_below(g0, g1, below);
        cr_assert_gt(below, g0->g[0], "the incremental truncated nothing");
        prev_high = bi.gen_high;
    }

    /* A new full backup resets last_incremental. */
    fill(inst, "d", 0, 300, 300);
    const char *dest2 = tp("bk2");
    backup_ok(inst, dest2, JS_BACKUP_CREATE_DIR | atomic);
    read_binfo(set_of(dest2, atomic), &bf);
    OK(js_info_read(inst_dir, &info));
    assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "second full: last_full");
    assert_stamp(&info.last_incremental, 0, 0, "second full: last_incremental");

    /* Truncate-only (dest NULL): below the checkpoint; stamps unchanged. */
    fill(inst, "e", 0, 1200, 300);
    list_gens(inst_dir, g0);
    cr_assert_geq(g0->n, 3);
    memset(&rec, 0, sizeof rec);
    rec.monotonic_units = 1;
    OK(js_backup(inst, NULL, 0, record_cb, &rec));
    cr_assert_eq(rec.completes, 1);
    OK(js_info_read(inst_dir, &info));
    list_gens(inst_dir, g1);
    assert_truncated_below(g0, g1, info.checkpoint_gen);
    cr_assert_gt(info.checkpoint_gen, g0->g[g0->n - 1], "the truncate-only job's checkpoint is not at the end");
    cr_assert_eq(g1->n, 0, "closed generations left below the checkpoint");
    assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "truncate-only: last_full");
    assert_stamp(&info.last_incremental, 0, 0, "truncate-only: last_incremental");
    /* The instance still recovers and holds everything. */
    kvdump a, b;
    dump_inst(inst, &a);
    OK(js_close(inst));
    dump_dir(inst_dir, &b);
    ASSERT_DUMP_EQ(&a, &b, "reopen after truncation");
    dump_free(&a);
    dump_free(&b);
    /* With the generations since the set truncated, an incremental is
     * impossible now. */
    inst = reopen(inst_dir);
    FAILS_WITH(js_backup(inst, dest2, JS_BACKUP_INCREMENTAL | atomic, NULL, NULL), JET_errMissingFileToBackup);
    OK(js_close(inst));
    free(g0);
    free(g1);
}

Test(backup, truncation_and_stamps_plain, .timeout = 120)
{
    truncation_and_stamps(0);
}

Test(backup, truncation_and_stamps_atomic, .timeout = 120)
{
    truncation_and_stamps(JS_BACKUP_ATOMIC);
}

/* ================================================================== */
/* 7. Every backup error of SPEC section 6                               */
/* ================================================================== */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, release;
    int block_snt;              /* block at the first call of this kind */
    const char *block_phase;    /* ... in this phase (NULL: any) */
    js_instance *inst;
    const char *dest;
    unsigned flags;
    JET_ERR result;
    cbrec rec;
} gate;

static int gate_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    gate *g = ctx;
    record_cb(&g->rec, snp, snt, p);
    if (snt == g->block_snt && (!g->block_phase || (p->phase && !strcmp(p->phase, g->block_phase)))) {
        pthread_mutex_lock(&g->mu);
        if (!g->entered) {
            g->entered = 1;
            pthread_cond_broadcast(&g->cv);
            while (!g->release)
                pthread_cond_wait(&g->cv, &g->mu);
        }
        pthread_mutex_unlock(&g->mu);
    }
    return 0;
}

static void *gate_backup_main(void *arg)
{
    gate *g = arg;
    g->result = js_backup(g->inst, g->dest, g->flags, gate_cb, g);
    return NULL;
}

static void gate_init(gate *g, js_instance *inst, const char *dest, unsigned flags, int snt, const char *phase)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->inst = inst;
    g->dest = dest;
    g->flags = flags;
    g->block_snt = snt;
    g->block_phase = phase;
    g->rec.monotonic_units = 1;
}

static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->release = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

Test(backup, err_backup_in_progress, .timeout = 120)
{
    js_params p = test_params();
    js_instance *inst = create_open(tp("inst"), &p);
    fill(inst, "k", 0, 500, 300);
    gate g;
    gate_init(&g, inst, tp("bk1"), JS_BACKUP_CREATE_DIR, JS_SNT_PROGRESS, "copy-database");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, gate_backup_main, &g), 0);
    gate_wait_entered(&g);
    FAILS_WITH(js_backup(inst, tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupInProgress);
    cr_assert(!exists(tp("bk2")), "a refused backup made its DEST");
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errBackupInProgress);
    FAILS_WITH(js_backup(inst, tp("bk1"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errBackupInProgress);
    /* Writers are not blocked while the job is paused. */
    fill(inst, "during", 0, 50, 100);
    gate_release(&g);
    pthread_join(th, NULL);
    cr_assert_eq(g.result, JET_errSuccess, "%s", js_errname(g.result));
    assert_set_sums(tp("bk1"));
    /* Once it ended, the next job runs. */
    backup_ok(inst, tp("bk3"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
}

Test(backup, err_not_allowed_yet_and_not_initialized, .timeout = 120)
{
    js_params p = test_params();
    OK(js_create(tp("inst"), &p));
    js_instance *inst = NULL;
    OK(js_instance_new(tp("inst"), &p, &inst));
    cr_assert_eq(js_instance_state(inst), JS_INST_STARTING);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupNotAllowedYet);
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errBackupNotAllowedYet);
    cr_assert(!exists(tp("bk")));
    OK(js_instance_start(inst));
    backup_ok(inst, tp("bk"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    FAILS_WITH(js_backup(NULL, tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errNotInitialized);
}

Test(backup, err_logging_disabled, .timeout = 120)
{
    js_params p = test_params();
    OK(js_create(tp("inst"), &p));
    p.no_log = 1;
    js_instance *inst = NULL;
    OK(js_open(tp("inst"), &p, &inst));
    put_str(inst, "k", "v");
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errLoggingDisabled);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errLoggingDisabled);
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errLoggingDisabled);
    cr_assert(!exists(tp("bk")));
    OK(js_close(inst));
}

Test(backup, err_invalid_backup_under_circular_log, .timeout = 120)
{
    js_params p = test_params();
    p.circular_log = 1;
    js_instance *inst = create_open(tp("inst"), &p);
    fill(inst, "k", 0, 300, 300);
    backup_ok(inst, tp("bk"), JS_BACKUP_CREATE_DIR);   /* full backups are allowed */
    fill(inst, "l", 0, 300, 300);
    char *snap = tree_snapshot(tp("bk"));
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errInvalidBackup);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidBackup);
    char *snap2 = tree_snapshot(tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap);
    free(snap2);
    OK(js_close(inst));
    restore_ok(tp("bk"), tp("r"), NULL, 0);
}

Test(backup, err_missing_full_backup, .timeout = 120)
{
    js_params p = test_params();
    js_instance *inst = create_open(tp("inst"), &p);
    fill(inst, "k", 0, 300, 300);
    cr_assert_eq(mkdir(tp("bk"), 0700), 0);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    cr_assert_eq(dir_entries(tp("bk")), 0);
    /* A full backup elsewhere does not make an empty DEST a set. */
    backup_ok(inst, tp("full"), JS_BACKUP_CREATE_DIR);
    fill(inst, "l", 0, 100, 300);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    cr_assert_eq(dir_entries(tp("bk")), 0);
    /* Nor is an atomic incremental into a plain set (no DEST/new). */
    FAILS_WITH(js_backup(inst, tp("full"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    /* A set of another database. */
    js_instance *other = create_open(tp("other"), &p);
    put_str(other, "x", "y");
    backup_ok(other, tp("other_bk"), JS_BACKUP_CREATE_DIR);
    OK(js_close(other));
    char *snap = tree_snapshot(tp("other_bk"));
    FAILS_WITH(js_backup(inst, tp("other_bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    char *snap2 = tree_snapshot(tp("other_bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap);
    free(snap2);
    backup_ok(inst, tp("full"), JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
}

Test(backup, err_missing_file_to_backup, .timeout = 120)
{
    const char *inst_dir = tp("inst");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 300, 300);
    backup_ok(inst, tp("bk"), JS_BACKUP_CREATE_DIR);
    binfo bi;
    read_binfo(tp("bk"), &bi);
    fill(inst, "l", 0, 1000, 300);
    OK(js_log_roll(inst, NULL));
    genlist *gl = malloc(sizeof *gl), *after = malloc(sizeof *after);
    list_gens(inst_dir, gl);
    uint32_t first = bi.gen_high + 1;
    cr_assert(gen_has(gl, first) && gen_has(gl, first + 1) && gen_has(gl, first + 2));
    char *snap = tree_snapshot(tp("bk"));
    char gp[PATH_MAX], aside[PATH_MAX];

    /* A generation in the middle of the range is gone. */
    gen_path(gp, inst_dir, first + 1);
    snprintf(aside, sizeof aside, "%s/aside.log", T);
    cr_assert_eq(rename(gp, aside), 0);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFileToBackup);
    char want[16];
    snprintf(want, sizeof want, "%08X", first + 1);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    char *snap2 = tree_snapshot(tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap2);
    cr_assert_eq(rename(aside, gp), 0);

    /* The first generation after the set is gone. */
    gen_path(gp, inst_dir, first);
    cr_assert_eq(unlink(gp), 0);
    list_gens(inst_dir, gl);
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFileToBackup);
    snprintf(want, sizeof want, "%08X", first);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    FAILS_WITH(js_backup(inst, tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    snap2 = tree_snapshot(tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap2);
    list_gens(inst_dir, after);
    const char *lost = gens_kept(gl, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    /* A new full backup is possible. */
    backup_ok(inst, tp("bk_new"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    free(snap);
    free(gl);
    free(after);
}

Test(backup, err_paths_flags_and_directory_not_empty, .timeout = 120)
{
    const char *inst_dir = tp("inst");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 100, 100);

    /* Not empty. */
    cr_assert_eq(mkdir(tp("full"), 0700), 0);
    cr_assert_eq(sh("echo keep > '%s/keep.txt'", tp("full")), 0);
    FAILS_WITH(js_backup(inst, tp("full"), 0, NULL, NULL), JET_errBackupDirectoryNotEmpty);
    FAILS_WITH(js_backup(inst, tp("full"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupDirectoryNotEmpty);
    cr_assert_eq(dir_entries(tp("full")), 1);
    /* ... but an atomic full backup into it is fine. */
    backup_ok(inst, tp("full"), JS_BACKUP_ATOMIC);
    cr_assert(exists(tp("full/keep.txt")));
    /* A plain full backup into a set is refused too. */
    FAILS_WITH(js_backup(inst, tp("full/new"), 0, NULL, NULL), JET_errBackupDirectoryNotEmpty);

    /* create, but the parent is missing: the directory cannot be made. */
    FAILS_WITH(js_backup(inst, tp("no/such/parent"), JS_BACKUP_CREATE_DIR, NULL, NULL),
               JET_errMakeBackupDirectoryFail);
    cr_assert(!exists(tp("no")));

    /* Missing without create. */
    FAILS_WITH(js_backup(inst, tp("missing"), 0, NULL, NULL), JET_errInvalidPath);
    FAILS_WITH(js_backup(inst, tp("missing"), JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidPath);
    cr_assert(!exists(tp("missing")));
    cr_assert_neq(js_errdetail()[0], '\0');
    /* A regular file. */
    cr_assert_eq(sh("echo x > '%s'", tp("file")), 0);
    FAILS_WITH(js_backup(inst, tp("file"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidPath);
    /* Inside the instance directory (or the directory itself). */
    cr_assert_eq(mkdir(tp("inst/sub"), 0700), 0);
    FAILS_WITH(js_backup(inst, tp("inst/sub"), 0, NULL, NULL), JET_errInvalidPath);
    FAILS_WITH(js_backup(inst, inst_dir, JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidPath);
    cr_assert_eq(dir_entries(tp("inst/sub")), 0);
    /* ... also through a symlink from outside. */
    cr_assert_eq(symlink(tp("inst/sub"), tp("link")), 0);
    FAILS_WITH(js_backup(inst, tp("link"), 0, NULL, NULL), JET_errInvalidPath);

    /* A relative path, an empty path, a newline. */
    FAILS_WITH(js_backup(inst, "relative/bk", JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    FAILS_WITH(js_backup(inst, "", JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    FAILS_WITH(js_backup(inst, tp("new\nline"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    cr_assert(!exists("relative"));

    /* Unknown or contradictory flags. */
    FAILS_WITH(js_backup(inst, tp("g"), JS_BACKUP_CREATE_DIR | 0x100u, NULL, NULL), JET_errInvalidGrbit);
    FAILS_WITH(js_backup(inst, NULL, JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errInvalidGrbit);
    FAILS_WITH(js_backup(inst, NULL, JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidGrbit);
    cr_assert(!exists(tp("g")));

    /* No job: cancel has nothing to stop. */
    FAILS_WITH(js_backup_cancel(inst), JET_errInvalidParameter);

    /* After all the refusals, a backup still runs. */
    backup_ok(inst, tp("ok"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
}

/* Cancel from the status callback's own thread. */
typedef struct cancel_ctx {
    js_instance *inst;
    int mode;               /* 0: js_backup_cancel, 1: return non-zero */
    const char *phase;
    int fired;
    cbrec rec;
} cancel_ctx;

static int cancel_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    cancel_ctx *c = ctx;
    record_cb(&c->rec, snp, snt, p);
    if (snt == JS_SNT_PROGRESS && !c->fired && p->phase && !strcmp(p->phase, c->phase)) {
        c->fired = 1;
        if (c->mode == 0) {
            cr_assert_eq(js_backup_cancel(c->inst), JET_errSuccess);
            return 0;
        }
        return 1;
    }
    return 0;
}

Test(backup, err_abort_by_server, .timeout = 120)
{
    const char *inst_dir = tp("inst");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 2000, 500);
    backup_ok(inst, tp("atomic"), JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    fill(inst, "l", 0, 300, 500);
    char *snap = tree_snapshot(tp("atomic"));
    genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    const char *phases[] = { "copy-database", "copy-logs" };
    for (int mode = 0; mode < 2; mode++)
        for (int ph = 0; ph < 2; ph++) {
            list_gens(inst_dir, before);
            cancel_ctx c = { .inst = inst, .mode = mode, .phase = phases[ph], .rec = { .monotonic_units = 1 } };
            FAILS_WITH(js_backup(inst, tp("plain"), JS_BACKUP_CREATE_DIR, cancel_cb, &c), JET_errBackupAbortByServer);
            cr_assert(c.fired);
            cr_assert_eq(c.rec.fails, 1, "no JS_SNT_FAIL report");
            cr_assert_eq(c.rec.fail_err, JET_errBackupAbortByServer);
            cr_assert_eq(c.rec.completes, 0);
            cr_assert(!exists(tp("plain")), "a cancelled backup left the DEST it created");

            cancel_ctx c2 = { .inst = inst, .mode = mode, .phase = phases[ph], .rec = { .monotonic_units = 1 } };
            FAILS_WITH(js_backup(inst, tp("atomic"), JS_BACKUP_ATOMIC, cancel_cb, &c2), JET_errBackupAbortByServer);
            char *snap2 = tree_snapshot(tp("atomic"));
            cr_assert_str_eq(snap, snap2, "a cancelled atomic backup changed the previous set");
            free(snap2);

            if (ph == 1) {
                cancel_ctx c3 = { .inst = inst, .mode = mode, .phase = "copy-logs", .rec = { .monotonic_units = 1 } };
                FAILS_WITH(js_backup(inst, tp("atomic"), JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL, cancel_cb, &c3),
                           JET_errBackupAbortByServer);
                snap2 = tree_snapshot(tp("atomic"));
                cr_assert_str_eq(snap, snap2, "a cancelled atomic incremental changed the previous set");
                free(snap2);
            }
            list_gens(inst_dir, after);
            const char *lost = gens_kept(before, after);
            cr_assert_null(lost, "a cancelled backup truncated: %s", lost ? lost : "");
        }
    /* No job is left marked running. */
    FAILS_WITH(js_backup_cancel(inst), JET_errInvalidParameter);
    backup_ok(inst, tp("atomic"), JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    free(snap);
    free(before);
    free(after);
}

static void *close_main(void *arg)
{
    js_instance *inst = arg;
    return (void *)(intptr_t)js_close(inst);
}

Test(backup, err_close_stops_running_backup, .timeout = 120)
{
    const char *inst_dir = tp("inst");
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 2000, 500);
    kvdump live;
    dump_inst(inst, &live);
    gate g;
    gate_init(&g, inst, tp("bk"), JS_BACKUP_CREATE_DIR, JS_SNT_PROGRESS, "copy-database");
    pthread_t bth, cth;
    cr_assert_eq(pthread_create(&bth, NULL, gate_backup_main, &g), 0);
    gate_wait_entered(&g);
    cr_assert_eq(pthread_create(&cth, NULL, close_main, inst), 0);
    /* js_close waits for the job, so the instance is still there: poll
     * until a new job is refused because the instance is stopping. */
    JET_ERR r;
    for (int i = 0;; i++) {
        r = js_backup(inst, NULL, 0, NULL, NULL);
        if (r == JET_errTermInProgress)
            break;
        cr_assert_eq(r, JET_errBackupInProgress, "%s", js_errname(r));
        cr_assert_lt(i, 10000, "js_close never began");
        usleep(1000);
    }
    gate_release(&g);
    pthread_join(bth, NULL);
    void *cres;
    pthread_join(cth, &cres);
    cr_assert_eq(g.result, JET_errClientRequestToStopJetService, "backup ended with %s", js_errname(g.result));
    cr_assert_eq((JET_ERR)(intptr_t)cres, JET_errSuccess);
    cr_assert_eq(g.rec.fails, 1);
    cr_assert_eq(g.rec.fail_err, JET_errClientRequestToStopJetService);
    cr_assert(!exists(tp("bk")), "a stopped backup left its DEST");
    kvdump d;
    dump_dir(inst_dir, &d);
    ASSERT_DUMP_EQ(&d, &live, "reopen after a close that stopped a backup");
    js_info info;
    OK(js_info_read(inst_dir, &info));
    assert_stamp(&info.last_full, 0, 0, "a stopped backup stamped last_full");
    dump_free(&d);
    dump_free(&live);
}

/* ================================================================== */
/* 8. Restore errors                                                     */
/* ================================================================== */
/* A status callback that writes while the database is copied, so the full
 * backup's own range gen_low..gen_high spans several generations. */
typedef struct writing_ctx {
    js_instance *inst;
    int done;
} writing_ctx;

static int writing_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    writing_ctx *w = ctx;
    if (snt == JS_SNT_PROGRESS && !w->done && p->phase && !strcmp(p->phase, "copy-database")) {
        w->done = 1;
        fill(w->inst, "during", 0, 600, 300);
    }
    return 0;
}

/* A set with several generations: full + incremental. */
static void make_set(const char *inst_dir, const char *dest, binfo *bi)
{
    js_params p = test_params();
    js_instance *inst = create_open(inst_dir, &p);
    fill(inst, "k", 0, 500, 300);
    backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    fill(inst, "l", 0, 800, 300);
    backup_ok(inst, dest, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    read_binfo(dest, bi);
    cr_assert_geq(bi->gen_high, bi->gen_low + 3, "the set has too few generations");
}

Test(backup, restore_err_not_contiguous, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    char a[PATH_MAX], b[PATH_MAX];
    /* A middle generation replaced by another generation of the same set. */
    gen_path(a, set, bi.gen_low + 1);
    gen_path(b, set, bi.gen_low + 2);
    cr_assert_eq(sh("cp '%s' '%s'", b, a), 0);
    FAILS_WITH(js_restore(set, tp("r0"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);   /* SHA256SUMS */
    regen_sums(set);
    assert_set_sums(set);
    FAILS_WITH(js_restore(set, tp("r1"), NULL, 0, NULL, NULL), JET_errGivenLogFileIsNotContiguous);
    cr_assert(!exists(tp("r1")));
    cr_assert_neq(js_verify(set, NULL, NULL, NULL), JET_errSuccess);
}

Test(backup, restore_err_not_contiguous_other_timeline, .timeout = 120)
{
    /* Same generation number and log stream, but from another history:
     * a restored copy that went on writing. */
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    restore_ok(set, tp("fork"), NULL, 0);
    js_instance *f = reopen(tp("fork"));
    fill(f, "fork", 0, 600, 300);
    OK(js_log_roll(f, NULL));
    OK(js_close(f));
    /* The original goes on too, and its next incremental covers the same
     * generation numbers. */
    js_instance *inst = reopen(tp("inst"));
    fill(inst, "orig", 0, 600, 300);
    backup_ok(inst, set, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    binfo b2;
    read_binfo(set, &b2);
    uint32_t g = bi.gen_high + 2;
    cr_assert_lt(g, b2.gen_high);
    char mine[PATH_MAX], theirs[PATH_MAX];
    gen_path(mine, set, g);
    gen_path(theirs, tp("fork"), g);
    cr_assert(exists(theirs), "the fork has no edb%08X.log", g);
    cr_assert_eq(sh("cp '%s' '%s'", theirs, mine), 0);
    regen_sums(set);
    FAILS_WITH(js_restore(set, tp("r"), NULL, 0, NULL, NULL), JET_errGivenLogFileIsNotContiguous);
    cr_assert(!exists(tp("r")));
}

Test(backup, restore_err_missing_log_files, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    char gp[PATH_MAX];
    gen_path(gp, set, bi.gen_low + 1);
    cr_assert_eq(unlink(gp), 0);
    FAILS_WITH(js_restore(set, tp("r1"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!exists(tp("r1")));
    regen_sums(set);   /* no longer listed either */
    FAILS_WITH(js_restore(set, tp("r2"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!exists(tp("r2")));
    /* The last generation gone. */
    make_set(tp("inst2"), tp("bk2"), &bi);
    gen_path(gp, tp("bk2"), bi.gen_high);
    cr_assert_eq(unlink(gp), 0);
    regen_sums(tp("bk2"));
    FAILS_WITH(js_restore(tp("bk2"), tp("r3"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!exists(tp("r3")));
}

Test(backup, restore_err_log_range, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    js_params p = test_params();
    js_instance *inst = create_open(tp("inst"), &p);
    fill(inst, "k", 0, 500, 300);
    writing_ctx wc = { .inst = inst };
    OK(js_backup(inst, set, JS_BACKUP_CREATE_DIR, writing_cb, &wc));
    assert_set_sums(set);
    read_binfo(set, &bi);
    cr_assert_eq(bi.full_gen_high, bi.gen_high);
    cr_assert_geq(bi.full_gen_high, bi.gen_low + 2, "the full backup spans only %08X-%08X", bi.gen_low,
                  bi.gen_high);
    fill(inst, "l", 0, 300, 300);
    backup_ok(inst, set, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    read_binfo(set, &bi);
    cr_assert_gt(bi.gen_high, bi.full_gen_high);
    char v[16];
    cr_assert_eq(sh("cp -a '%s' '%s'", set, tp("bk_orig")), 0);
    restore_ok(set, tp("r0"), NULL, 0);

    /* The set claims to start after what the database copy needs. */
    snprintf(v, sizeof v, "%08X", bi.gen_low + 1);
    edit_binfo(set, "gen_low", v);
    regen_sums(set);
    assert_set_sums(set);
    FAILS_WITH(js_restore(set, tp("r1"), NULL, 0, NULL, NULL), JET_errStartingRestoreLogTooHigh);
    cr_assert(!exists(tp("r1")));

    /* The set claims to end before what the database copy needs. */
    cr_assert_eq(sh("rm -rf '%s' && cp -a '%s' '%s'", set, tp("bk_orig"), set), 0);
    snprintf(v, sizeof v, "%08X", bi.gen_high + 1);
    edit_binfo(set, "full_gen_high", v);
    regen_sums(set);
    FAILS_WITH(js_restore(set, tp("r2"), NULL, 0, NULL, NULL), JET_errEndingRestoreLogTooLow);
    cr_assert(!exists(tp("r2")));

    /* gen_high lowered below full_gen_high. */
    cr_assert_eq(sh("rm -rf '%s' && cp -a '%s' '%s'", set, tp("bk_orig"), set), 0);
    cr_assert_gt(bi.full_gen_high, bi.gen_low);
    snprintf(v, sizeof v, "%08X", bi.full_gen_high - 1);
    edit_binfo(set, "gen_high", v);
    regen_sums(set);
    FAILS_WITH(js_restore(set, tp("r3"), NULL, 0, NULL, NULL), JET_errEndingRestoreLogTooLow);
    cr_assert(!exists(tp("r3")));

    /* until_gen below what the copy needs. */
    FAILS_WITH(js_restore(tp("bk_orig"), tp("r4"), NULL, bi.full_gen_high - 1, NULL, NULL),
               JET_errEndingRestoreLogTooLow);
    cr_assert(!exists(tp("r4")));
    restore_ok(tp("bk_orig"), tp("r5"), NULL, 0);
}

Test(backup, restore_err_bad_log_signature, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi, bo;
    make_set(tp("inst"), set, &bi);
    make_set(tp("other"), tp("bk_other"), &bo);
    cr_assert_str_neq(bi.log_signature, bo.log_signature);
    uint32_t g = bi.gen_low + 1;
    cr_assert(g >= bo.gen_low && g <= bo.gen_high, "the other set has no generation %08X", g);
    char mine[PATH_MAX], theirs[PATH_MAX];
    gen_path(mine, set, g);
    gen_path(theirs, tp("bk_other"), g);
    cr_assert_eq(sh("cp -a '%s' '%s.orig' && cp '%s' '%s'", mine, mine, theirs, mine), 0);
    regen_sums(set);
    FAILS_WITH(js_restore(set, tp("r1"), NULL, 0, NULL, NULL), JET_errBadLogSignature);
    cr_assert(!exists(tp("r1")));

    /* backup.info of another log stream. */
    cr_assert_eq(sh("mv '%s.orig' '%s'", mine, mine), 0);
    edit_binfo(set, "log_signature", bo.log_signature);
    regen_sums(set);
    FAILS_WITH(js_restore(set, tp("r2"), NULL, 0, NULL, NULL), JET_errBadLogSignature);
    cr_assert(!exists(tp("r2")));
}

Test(backup, restore_err_target_not_empty_and_bad_paths, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    cr_assert_eq(mkdir(tp("t"), 0700), 0);
    cr_assert_eq(sh("echo x > '%s/junk'", tp("t")), 0);
    FAILS_WITH(js_restore(set, tp("t"), NULL, 0, NULL, NULL), JET_errInvalidPath);
    cr_assert_eq(dir_entries(tp("t")), 1, "a refused restore touched its target");
    /* An existing empty target is fine, and stays a directory. */
    cr_assert_eq(mkdir(tp("empty"), 0700), 0);
    restore_ok(set, tp("empty"), NULL, 0);
    /* A restored instance cannot be restored over. */
    FAILS_WITH(js_restore(set, tp("empty"), NULL, 0, NULL, NULL), JET_errInvalidPath);
    /* No set there. */
    cr_assert_neq(js_restore(tp("t"), tp("r"), NULL, 0, NULL, NULL), JET_errSuccess);
    cr_assert_neq(js_restore(tp("nothing"), tp("r"), NULL, 0, NULL, NULL), JET_errSuccess);
    cr_assert(!exists(tp("r")));
    /* --logs that is not a directory. */
    FAILS_WITH(js_restore(set, tp("r"), tp("nothing"), 0, NULL, NULL), JET_errInvalidPath);
    cr_assert(!exists(tp("r")));
}

/* Regression (fixed; core/instance.c, inst_new_common): js_open / js_instance_new
 * of a backup set creates jetsnap.lock in the set before it reads the
 * header and refuses the raw copy (JET_errSoftRecoveryOnBackupDatabase), and
 * leaves it there: the set then holds a file SHA256SUMS does not list
 * (SPEC section 4: a set holds jetsnap.edb, the generations, backup.info
 * and SHA256SUMS, nothing else). */
Test(backup, refused_open_of_set_leaves_it_untouched, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    char *snap = tree_snapshot(set);
    js_params p = test_params();
    js_instance *bad = NULL;
    FAILS_WITH(js_open(set, &p, &bad), JET_errSoftRecoveryOnBackupDatabase);
    char *snap2 = tree_snapshot(set);
    cr_assert_str_eq(snap, snap2, "a refused open changed the backup set");
    assert_set_sums(set);
    free(snap);
    free(snap2);
}

Test(backup, refused_open_of_set, .timeout = 120)
{
    const char *set = tp("bk");
    binfo bi;
    make_set(tp("inst"), set, &bi);
    js_params p = test_params();
    js_instance *bad = NULL;
    FAILS_WITH(js_open(set, &p, &bad), JET_errSoftRecoveryOnBackupDatabase);
    cr_assert_null(bad);
    cr_assert_eq(sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1", set), 0);
    restore_ok(set, tp("r"), NULL, 0);
}

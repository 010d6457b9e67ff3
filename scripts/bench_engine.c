/*
 * bench_engine.c - jetsnap engine benchmark, side by side with references.
 *
 * Built and run by scripts/bench.sh:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icore scripts/bench_engine.c \
 *      $BUILD/libjetsnap.a -lsqlite3 -lcrypto -pthread -o $BUILD/bench_engine
 *   $BUILD/bench_engine WORKDIR
 *
 * Measures, in one run, and prints a table of ratios (jetsnap / reference):
 *   a. durable commits/s, 1 and 16 writer threads, vs SQLite WAL
 *      synchronous=FULL (one connection per thread);
 *   b. lazy commits/s, 1 thread, vs SQLite WAL synchronous=NORMAL;
 *   c. random point reads/s over 200k keys, 1 and 2 reader threads, vs SQLite;
 *   d. on an instance of BENCH_DB_MB MiB (default 1024): full backup vs
 *      `cp -r` + `sync`, incremental (1% of keys changed) vs full, restore vs
 *      `cp -r` of the set, js_verify throughput vs `sha256sum -c`, and the
 *      longest commit of one durable writer while a full backup runs (during
 *      its checkpoint and log roll, and over the whole backup) vs the longest
 *      with no backup over a window as long; for comparison it also prints
 *      the longest commit while plain `cp -r` + `sync` copies the instance.
 *   Each backup/restore/verify prints its wall time per phase (from the
 *   status callback).  The copy comparisons of d time each side from a
 *   dropped page cache (sync, then /proc/sys/vm/drop_caches; as root), so
 *   neither side reads what the other left cached.
 *
 * Environment: BENCH_SECS (seconds per throughput measurement, default 2.5),
 * BENCH_DB_MB (size of the backup instance, default 1024), BENCH_READ_KEYS
 * (default 200000), BENCH_REPS (interleaved repetitions of each comparison,
 * the best of each side is kept, default 3), BENCH_ONLY (a subset of the
 * letters "abcde", default all; e needs d's instance, which it builds),
 * BENCH_BACKUP_MAX_RATE (MiB/s, backup_max_rate of every instance; default
 * none: to tell a backup's fixed costs from its copy's).
 * Timings never make the program fail: it exits non-zero
 * only when an operation fails.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bench_util.h"

#define KEY_LEN 16
#define VAL_LEN 100
#define MAX_THREADS 16

static double g_secs = 2.5;
static int g_reps = 3;
static char g_work[4096];

/* ------------------------------------------------------------------ */
static void die(const char *what, JET_ERR err)
{
    fprintf(stderr, "bench_engine: %s: %s (%d): %s\n", what, js_errname(err), err, js_errdetail());
    exit(1);
}

static void die_sql(const char *what, sqlite3 *db, int rc)
{
    fprintf(stderr, "bench_engine: %s: sqlite rc %d: %s\n", what, rc, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    exit(1);
}

static void run_cmd(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "bench_engine: command failed (%d): %s\n", rc, cmd);
        exit(1);
    }
}

static void rmtree(const char *path)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    run_cmd(cmd);
}

static void path_in_work(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_work, name);
}

/* Total size of the regular files under dir (one level deep is enough for
 * instance directories and backup sets). */
static uint64_t dir_bytes(const char *dir)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[8400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0) {
            if (S_ISREG(st.st_mode))
                total += (uint64_t)st.st_size;
            else if (S_ISDIR(st.st_mode))
                total += dir_bytes(p);
        }
    }
    closedir(d);
    return total;
}

static double env_double(const char *name, double def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    double d = strtod(v, &end);
    return (end != v && d > 0) ? d : def;
}

/* ------------------------------------------------------------------ */
/* results table                                                        */
/* ------------------------------------------------------------------ */
enum goal_kind { GOAL_NONE, GOAL_RATIO_GE, GOAL_RATIO_LE, GOAL_ADDED_LT, GOAL_ADDED_NONE, GOAL_INFO };

typedef struct row {
    char metric[64];
    char unit[16];
    double js, ref;
    int kind;
    double goal;
} row;

static row g_rows[48];
static int g_nrows;

static void add_row(const char *metric, const char *unit, double js, double ref, int kind, double goal)
{
    row *r = &g_rows[g_nrows++];
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    r->js = js;
    r->ref = ref;
    r->kind = kind;
    r->goal = goal;
    printf("  -> %s: jetsnap %.4g %s, reference %.4g %s\n", metric, js, unit, ref, unit);
    fflush(stdout);
}

static void fmt_num(char *out, size_t cap, double v, const char *unit)
{
    if (v >= 1e9)
        snprintf(out, cap, "%.2fG %s", v / 1e9, unit);
    else if (v >= 1e6)
        snprintf(out, cap, "%.2fM %s", v / 1e6, unit);
    else if (v >= 1e4)
        snprintf(out, cap, "%.1fk %s", v / 1e3, unit);
    else
        snprintf(out, cap, "%.3g %s", v, unit);
}

static void print_table(void)
{
    printf("\n%-44s | %-16s | %-16s | %-10s | %-14s | %s\n", "metric", "jetsnap", "reference", "ratio", "goal", "met");
    printf("%.*s\n", 120, "------------------------------------------------------------------------------------------"
                          "------------------------------------------");
    for (int i = 0; i < g_nrows; i++) {
        row *r = &g_rows[i];
        char js[32], ref[32], ratio[32], goal[32];
        const char *met = "-";
        fmt_num(js, sizeof js, r->js, r->unit);
        fmt_num(ref, sizeof ref, r->ref, r->unit);
        double q = r->ref > 0 ? r->js / r->ref : 0;
        switch (r->kind) {
        case GOAL_INFO:
            snprintf(ref, sizeof ref, "-");
            snprintf(ratio, sizeof ratio, "-");
            snprintf(goal, sizeof goal, "-");
            break;
        case GOAL_ADDED_NONE:
            snprintf(ratio, sizeof ratio, "%+.1f ms", r->js - r->ref);
            snprintf(goal, sizeof goal, "-");
            break;
        case GOAL_ADDED_LT:
            snprintf(ratio, sizeof ratio, "%+.1f ms", r->js - r->ref);
            snprintf(goal, sizeof goal, "< %g ms added", r->goal);
            met = (r->js - r->ref) < r->goal ? "yes" : "NO";
            break;
        case GOAL_RATIO_GE:
            snprintf(ratio, sizeof ratio, "%.3fx", q);
            snprintf(goal, sizeof goal, ">= %gx", r->goal);
            met = q >= r->goal ? "yes" : "NO";
            break;
        case GOAL_RATIO_LE:
            snprintf(ratio, sizeof ratio, "%.3fx", q);
            snprintf(goal, sizeof goal, "<= %gx", r->goal);
            met = q <= r->goal ? "yes" : "NO";
            break;
        default:
            snprintf(ratio, sizeof ratio, "%.3fx", q);
            snprintf(goal, sizeof goal, "-");
            break;
        }
        printf("%-44s | %-16s | %-16s | %-10s | %-14s | %s\n", r->metric, js, ref, ratio, goal, met);
    }
}

/* ------------------------------------------------------------------ */
/* jetsnap instance helpers                                             */
/* ------------------------------------------------------------------ */
static js_instance *js_fresh(const char *name, int commit_mode, char *dir, size_t cap)
{
    path_in_work(dir, cap, name);
    rmtree(dir);
    js_params p;
    js_params_default(&p);
    p.commit_mode = commit_mode;
    p.backup_max_rate = (uint64_t)(env_double("BENCH_BACKUP_MAX_RATE", 0) * 1048576.0);
    JET_ERR err = js_create(dir, &p);
    if (err)
        die("js_create", err);
    js_instance *inst = NULL;
    err = js_open(dir, &p, &inst);
    if (err)
        die("js_open", err);
    return inst;
}

static sqlite3 *sql_open(const char *path, const char *sync_mode)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        die_sql("sqlite3_open", db, rc);
    sqlite3_busy_timeout(db, 30000);
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync_mode);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        die_sql("sqlite pragmas", db, rc);
    return db;
}

static void sql_fresh(const char *name, char *path, size_t cap)
{
    char dir[4200];
    path_in_work(dir, sizeof dir, name);
    rmtree(dir);
    if (mkdir(dir, 0700) != 0) {
        perror("mkdir");
        exit(1);
    }
    snprintf(path, cap, "%s/kv.db", dir);
    sqlite3 *db = sql_open(path, "FULL");
    int rc = sqlite3_exec(db, "CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        die_sql("create table", db, rc);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------ */
/* a, b: commit throughput                                              */
/* ------------------------------------------------------------------ */
typedef struct wctx {
    int engine;                 /* 0 jetsnap, 1 sqlite */
    unsigned id;
    js_instance *inst;
    const char *sql_path;
    const char *sql_sync;
    atomic_int *stop;
    pthread_barrier_t *bar;
    uint64_t ops;
} wctx;

static void *writer_thread(void *arg)
{
    wctx *w = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (w->id + 1);
    char key[KEY_LEN];
    uint8_t val[VAL_LEN];
    js_session *s = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (w->engine == 0) {
        JET_ERR err = js_session_open(w->inst, &s);
        if (err)
            die("js_session_open", err);
    } else {
        db = sql_open(w->sql_path, w->sql_sync);
        int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", -1, &st, NULL);
        if (rc != SQLITE_OK)
            die_sql("prepare insert", db, rc);
    }
    pthread_barrier_wait(w->bar);
    uint64_t n = 0;
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        make_key(key, 'w', w->id, n);
        fill_random(val, sizeof val, &seed);
        if (w->engine == 0) {
            JET_ERR err = put_one(s, key, val, VAL_LEN);
            if (err)
                die("durable/lazy put", err);
        } else {
            sqlite3_bind_blob(st, 1, key, KEY_LEN, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, val, VAL_LEN, SQLITE_STATIC);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                continue;   /* busy_timeout ran out: try again */
            if (rc != SQLITE_DONE)
                die_sql("insert", db, rc);
        }
        n++;
    }
    w->ops = n;
    if (s)
        js_session_close(s);
    if (st)
        sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    return NULL;
}

/* Runs nthreads writers for g_secs; returns commits per second. */
static double run_writers(int engine, int nthreads, js_instance *inst, const char *sql_path, const char *sql_sync)
{
    pthread_t th[MAX_THREADS];
    wctx w[MAX_THREADS];
    atomic_int stop;
    atomic_init(&stop, 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (wctx){ .engine = engine, .id = (unsigned)i, .inst = inst, .sql_path = sql_path,
                       .sql_sync = sql_sync, .stop = &stop, .bar = &bar };
        if (pthread_create(&th[i], NULL, writer_thread, &w[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    pthread_barrier_wait(&bar);
    double t0 = now_s();
    sleep_s(g_secs);
    atomic_store(&stop, 1);
    uint64_t total = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ops;
    }
    double el = now_s() - t0;
    pthread_barrier_destroy(&bar);
    return (double)total / el;
}

static double bench_js_commits(int nthreads, int commit_mode)
{
    char dir[4200];
    js_instance *inst = js_fresh("js-commit", commit_mode, dir, sizeof dir);
    double r = run_writers(0, nthreads, inst, NULL, NULL);
    JET_ERR err = js_close(inst);
    if (err)
        die("js_close", err);
    rmtree(dir);
    return r;
}

static double bench_sql_commits(int nthreads, const char *sync_mode)
{
    char path[4300];
    sql_fresh("sql-commit", path, sizeof path);
    double r = run_writers(1, nthreads, NULL, path, sync_mode);
    char dir[4200];
    path_in_work(dir, sizeof dir, "sql-commit");
    rmtree(dir);
    return r;
}

/* ------------------------------------------------------------------ */
/* c: point reads                                                       */
/* ------------------------------------------------------------------ */
typedef struct rctx {
    int engine;
    unsigned id;
    uint64_t nkeys;
    js_instance *inst;
    const char *sql_path;
    atomic_int *stop;
    pthread_barrier_t *bar;
    uint64_t ops, misses;
} rctx;

static void *reader_thread(void *arg)
{
    rctx *r = arg;
    uint64_t seed = 0x2545f4914f6cdd1dull * (r->id + 7);
    char key[KEY_LEN];
    js_session *s = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (r->engine == 0) {
        JET_ERR err = js_session_open(r->inst, &s);
        if (err)
            die("js_session_open", err);
    } else {
        db = sql_open(r->sql_path, "FULL");
        int rc = sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?", -1, &st, NULL);
        if (rc != SQLITE_OK)
            die_sql("prepare select", db, rc);
    }
    pthread_barrier_wait(r->bar);
    uint64_t n = 0, miss = 0;
    while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
        make_key(key, 'r', 0, xorshift(&seed) % r->nkeys);
        if (r->engine == 0) {
            void *v = NULL;
            size_t vlen = 0;
            JET_ERR err = js_get(s, key, KEY_LEN, &v, &vlen);
            if (err == JET_errRecordNotFound)
                miss++;
            else if (err)
                die("js_get", err);
            else if (vlen != VAL_LEN)
                miss++;
            free(v);
        } else {
            sqlite3_bind_blob(st, 1, key, KEY_LEN, SQLITE_STATIC);
            int rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                const void *v = sqlite3_column_blob(st, 0);
                if (!v || sqlite3_column_bytes(st, 0) != VAL_LEN)
                    miss++;
            } else if (rc == SQLITE_DONE) {
                miss++;
            } else {
                die_sql("select", db, rc);
            }
            sqlite3_reset(st);
        }
        n++;
    }
    r->ops = n;
    r->misses = miss;
    if (s)
        js_session_close(s);
    if (st)
        sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    return NULL;
}

static double run_readers(int engine, int nthreads, uint64_t nkeys, js_instance *inst, const char *sql_path)
{
    pthread_t th[MAX_THREADS];
    rctx r[MAX_THREADS];
    atomic_int stop;
    atomic_init(&stop, 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        r[i] = (rctx){ .engine = engine, .id = (unsigned)i, .nkeys = nkeys, .inst = inst, .sql_path = sql_path,
                       .stop = &stop, .bar = &bar };
        if (pthread_create(&th[i], NULL, reader_thread, &r[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    pthread_barrier_wait(&bar);
    double t0 = now_s();
    sleep_s(g_secs);
    atomic_store(&stop, 1);
    uint64_t total = 0, miss = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += r[i].ops;
        miss += r[i].misses;
    }
    double el = now_s() - t0;
    pthread_barrier_destroy(&bar);
    if (miss) {
        fprintf(stderr, "bench_engine: %s reads: %llu of %llu keys missing or wrong\n", engine ? "sqlite" : "jetsnap",
                (unsigned long long)miss, (unsigned long long)total);
        exit(1);
    }
    return (double)total / el;
}

static void bench_reads(uint64_t nkeys)
{
    uint64_t seed = 42;
    uint8_t val[VAL_LEN];
    char key[KEY_LEN];

    /* jetsnap: load in transactions of 10000 puts, lazy commits. */
    char jdir[4200];
    js_instance *inst = js_fresh("js-read", JS_COMMIT_DURABLE, jdir, sizeof jdir);
    js_session *s = NULL;
    JET_ERR err = js_session_open(inst, &s);
    if (err)
        die("js_session_open", err);
    double t0 = now_s();
    for (uint64_t i = 0; i < nkeys;) {
        err = js_txn_begin(s, 0);
        for (uint64_t k = 0; k < 10000 && i < nkeys && !err; k++, i++) {
            make_key(key, 'r', 0, i);
            fill_random(val, sizeof val, &seed);
            err = js_put(s, key, KEY_LEN, val, VAL_LEN);
        }
        if (!err)
            err = js_txn_commit(s, JS_COMMIT_FLAG_LAZY);
        if (err)
            die("read load", err);
    }
    js_session_close(s);
    err = js_checkpoint(inst);
    if (err)
        die("js_checkpoint", err);
    double tj = now_s() - t0;

    /* SQLite: one transaction. */
    char spath[4300];
    sql_fresh("sql-read", spath, sizeof spath);
    t0 = now_s();
    sqlite3 *db = sql_open(spath, "NORMAL");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", -1, &st, NULL);
    for (uint64_t i = 0; i < nkeys && rc == SQLITE_OK; i++) {
        make_key(key, 'r', 0, i);
        fill_random(val, sizeof val, &seed);
        sqlite3_bind_blob(st, 1, key, KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, val, VAL_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        die_sql("sqlite read load", db, rc);
    sqlite3_close(db);
    double ts = now_s() - t0;
    printf("  loaded %llu keys: jetsnap %.2f s, sqlite %.2f s\n", (unsigned long long)nkeys, tj, ts);

    for (int nt = 1; nt <= 2; nt++) {
        double j = 0, q = 0;
        for (int rep = 0; rep < g_reps; rep++) {
            double x = run_readers(0, nt, nkeys, inst, NULL);
            double y = run_readers(1, nt, nkeys, NULL, spath);
            printf("  %d thread%s: jetsnap %.0f/s, sqlite %.0f/s\n", nt, nt > 1 ? "s" : "", x, y);
            j = x > j ? x : j;
            q = y > q ? y : q;
        }
        char m[64];
        snprintf(m, sizeof m, "c. point reads/s, %d reader thread%s", nt, nt > 1 ? "s" : "");
        add_row(m, "/s", j, q, GOAL_RATIO_GE, 1.0);
    }
    err = js_close(inst);
    if (err)
        die("js_close", err);
    rmtree(jdir);
    char sdir[4200];
    path_in_work(sdir, sizeof sdir, "sql-read");
    rmtree(sdir);
}

/* ------------------------------------------------------------------ */
/* d: backup, restore, verify                                           */
/* ------------------------------------------------------------------ */
#define BIG_VAL 8000u     /* one overflow page each with 8 KiB pages */
#define BIG_TXN 128u      /* puts per build transaction (~1 MiB) */

static void load_big(js_instance *inst, uint64_t first, uint64_t count, uint64_t stride, uint64_t nkeys,
                     uint64_t *seed)
{
    js_session *s = NULL;
    JET_ERR err = js_session_open(inst, &s);
    if (err)
        die("js_session_open", err);
    uint8_t *val = malloc(BIG_VAL);
    if (!val) {
        fprintf(stderr, "bench_engine: out of memory\n");
        exit(1);
    }
    char key[KEY_LEN];
    for (uint64_t i = 0; i < count;) {
        err = js_txn_begin(s, 0);
        for (unsigned k = 0; k < BIG_TXN && i < count && !err; k++, i++) {
            make_key(key, 'b', 0, (first + i * stride) % nkeys);
            fill_random(val, BIG_VAL, seed);
            err = js_put(s, key, KEY_LEN, val, BIG_VAL);
        }
        if (!err)
            err = js_txn_commit(s, JS_COMMIT_FLAG_LAZY);
        if (err)
            die("bulk load", err);
    }
    free(val);
    js_session_close(s);
}

/* Phase tracking through the status callback: wall time spent per phase of
 * a backup or restore, and the current phase for latency attribution. */
#define NPHASES 16
#define PH_IDLE 0
#define PH_AFTER (NPHASES - 1)
typedef struct ptrack {
    char names[NPHASES][24];
    double dur[NPHASES];
    int n, cur;
    double t_last;
} ptrack;
static ptrack g_pt;
static pthread_mutex_t g_pt_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_phase;

static void pt_start(void)
{
    pthread_mutex_lock(&g_pt_lock);
    memset(&g_pt, 0, sizeof g_pt);
    snprintf(g_pt.names[PH_IDLE], sizeof g_pt.names[0], "idle");
    snprintf(g_pt.names[PH_AFTER], sizeof g_pt.names[0], "after");
    g_pt.n = 1;
    g_pt.cur = PH_IDLE;
    g_pt.t_last = now_s();
    pthread_mutex_unlock(&g_pt_lock);
    atomic_store(&g_phase, PH_IDLE);
}

static void pt_switch_locked(int idx)
{
    double t = now_s();
    g_pt.dur[g_pt.cur] += t - g_pt.t_last;
    g_pt.t_last = t;
    g_pt.cur = idx;
    atomic_store(&g_phase, idx);
}

static int phase_status(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)ctx;
    (void)snp;
    (void)snt;
    if (!p || !p->phase)
        return 0;
    pthread_mutex_lock(&g_pt_lock);
    int idx = -1;
    for (int i = 1; i < g_pt.n; i++)
        if (!strcmp(g_pt.names[i], p->phase))
            idx = i;
    if (idx < 0 && g_pt.n < PH_AFTER) {
        idx = g_pt.n++;
        snprintf(g_pt.names[idx], sizeof g_pt.names[0], "%s", p->phase);
    }
    if (idx >= 0 && idx != g_pt.cur)
        pt_switch_locked(idx);
    pthread_mutex_unlock(&g_pt_lock);
    return 0;
}

/* Ends tracking (the time after the last phase change goes to "after") and
 * prints the wall time per phase. */
static void pt_end(const char *what)
{
    pthread_mutex_lock(&g_pt_lock);
    pt_switch_locked(PH_AFTER);
    printf("    %s phases (s):", what);
    if (g_pt.dur[PH_IDLE] >= 0.001)
        printf(" (before the first report) %.3f", g_pt.dur[PH_IDLE]);
    for (int i = 1; i < g_pt.n; i++)
        printf(" %s %.3f", g_pt.names[i], g_pt.dur[i]);
    printf("\n");
    pthread_mutex_unlock(&g_pt_lock);
}

/* Wall time of the named phase in the last tracking (0 when not seen). */
static double pt_phase(const char *name)
{
    double d = 0;
    pthread_mutex_lock(&g_pt_lock);
    for (int i = 1; i < g_pt.n; i++)
        if (!strcmp(g_pt.names[i], name))
            d = g_pt.dur[i];
    pthread_mutex_unlock(&g_pt_lock);
    return d;
}

/* A durable writer that records its longest commit latency, overall and
 * per backup phase. */
typedef struct lctx {
    js_instance *inst;
    atomic_int stop;
    uint64_t ops;
    double max_ms;
    double phase_max[NPHASES];
} lctx;

static void *latency_writer(void *arg)
{
    lctx *l = arg;
    js_session *s = NULL;
    JET_ERR err = js_session_open(l->inst, &s);
    if (err)
        die("js_session_open", err);
    uint64_t seed = 777;
    char key[KEY_LEN];
    uint8_t val[VAL_LEN];
    static atomic_uint stream;   /* distinct keys across runs */
    unsigned id = atomic_fetch_add(&stream, 1) % 100;
    while (!atomic_load(&l->stop)) {
        make_key(key, 'l', id, l->ops);
        fill_random(val, sizeof val, &seed);
        int ph = atomic_load(&g_phase);
        double t0 = now_s();
        err = put_one(s, key, val, VAL_LEN);
        double ms = (now_s() - t0) * 1e3;
        if (err)
            die("latency writer", err);
        if (ms > l->max_ms)
            l->max_ms = ms;
        if (ms > l->phase_max[ph])
            l->phase_max[ph] = ms;
        l->ops++;
    }
    js_session_close(s);
    return NULL;
}

static void start_latency(lctx *l, js_instance *inst, pthread_t *th)
{
    memset(l, 0, sizeof *l);
    l->inst = inst;
    atomic_init(&l->stop, 0);
    if (pthread_create(th, NULL, latency_writer, l) != 0) {
        perror("pthread_create");
        exit(1);
    }
}

static void stop_latency(lctx *l, pthread_t th)
{
    atomic_store(&l->stop, 1);
    pthread_join(th, NULL);
}

static double timed_cmd(const char *cmd)
{
    double t0 = now_s();
    run_cmd(cmd);
    return now_s() - t0;
}

static double min2(double a, double b) { return a < b ? a : b; }

/* "median (min-max)" of n values, for the noise of a comparison. */
static void spread(char *out, size_t cap, const double *v, int n, const char *unit)
{
    double lo = 1e30, hi = 0, c[64];
    for (int i = 0; i < n && i < 64; i++) {
        c[i] = v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    snprintf(out, cap, "%.3g %s (%.3g-%.3g)", median(c, n < 64 ? n : 64), unit, lo, hi);
}

/* Settle before a timed side of a comparison: the previous side's dirty
 * data written, a moment for the disk's queue to drain. */
static void settle(void)
{
    sync();
    sleep_s(0.5);
}

/* Before each timed side of a copy comparison (d): settle, then drop the
 * page cache (root only), so both sides read their source from the disk
 * alike, whatever the previous side left cached.  Returns 0 when the cache
 * could not be dropped (then both sides only settle). */
static int cold(void)
{
    settle();
    FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
    if (!f)
        return 0;
    int ok = fputs("3\n", f) >= 0;
    ok &= fclose(f) == 0;
    sleep_s(0.2);
    return ok;
}

/* Many durable writers (in-process stand-in for redis-benchmark -t set
 * -c 50 against commit=durable): commits/s and p99 commit latency alone and
 * while full backups run back to back, alternated, medians. */
#define TP_THREADS 16
#define TP_BUCKET_US 50.0
#define TP_BUCKETS 40000   /* up to 2 s; the last bucket holds the rest */

typedef struct tpctx {
    js_instance *inst;
    unsigned id;
    atomic_int *stop;
    uint64_t ops;
    uint32_t *hist;
} tpctx;

static void *tp_writer(void *arg)
{
    tpctx *t = arg;
    js_session *s = NULL;
    JET_ERR err = js_session_open(t->inst, &s);
    if (err)
        die("js_session_open", err);
    uint64_t seed = 0x51ed27ull * (t->id + 1);
    char key[KEY_LEN];
    uint8_t val[VAL_LEN];
    while (!atomic_load(t->stop)) {
        make_key(key, 't', t->id, xorshift(&seed) % 100000);
        fill_random(val, sizeof val, &seed);
        double t0 = now_s();
        err = put_one(s, key, val, VAL_LEN);
        if (err)
            die("throughput writer", err);
        double b = (now_s() - t0) * 1e6 / TP_BUCKET_US;
        t->hist[b < TP_BUCKETS - 1 ? (size_t)b : TP_BUCKETS - 1]++;
        t->ops++;
    }
    js_session_close(s);
    return NULL;
}

typedef struct bkloop {
    js_instance *inst;
    const char *dir;
    atomic_int stop;
    int started;
    int reports, held;          /* progress reports, those with the pacer holding */
} bkloop;

static int bkloop_status(void *ctx, int snp, int snt, const js_progress *p)
{
    bkloop *b = ctx;
    (void)snp;
    if (snt == JS_SNT_PROGRESS) {
        b->reports++;
        b->held += p->pacer_holding != 0;
    }
    return 0;
}

/* Full backups back to back, so one is running for the whole window. */
static void *backup_loop(void *arg)
{
    bkloop *b = arg;
    char path[4400];
    while (!atomic_load(&b->stop)) {
        snprintf(path, sizeof path, "%s/b%d", b->dir, b->started++);
        JET_ERR err = js_backup(b->inst, path, JS_BACKUP_CREATE_DIR, bkloop_status, b);
        if (err && err != JET_errBackupAbortByServer)
            die("backup loop", err);
        rmtree(path);
    }
    return NULL;
}

/* One window of TP_THREADS durable writers: commits/s, p99 in ms. */
static void tp_window(js_instance *inst, double secs, double *rate, double *p99)
{
    static uint32_t hist[TP_THREADS][TP_BUCKETS];
    pthread_t th[TP_THREADS];
    tpctx t[TP_THREADS];
    atomic_int stop;
    atomic_init(&stop, 0);
    memset(hist, 0, sizeof hist);
    for (unsigned i = 0; i < TP_THREADS; i++) {
        t[i] = (tpctx){ .inst = inst, .id = i, .stop = &stop, .hist = hist[i] };
        if (pthread_create(&th[i], NULL, tp_writer, &t[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    double t0 = now_s();
    sleep_s(secs);
    atomic_store(&stop, 1);
    uint64_t ops = 0;
    for (unsigned i = 0; i < TP_THREADS; i++) {
        pthread_join(th[i], NULL);
        ops += t[i].ops;
    }
    double el = now_s() - t0;
    uint64_t want = ops - ops / 100, seen = 0;
    size_t b = 0;
    for (; b < TP_BUCKETS; b++) {
        for (unsigned i = 0; i < TP_THREADS; i++)
            seen += hist[i][b];
        if (seen >= want)
            break;
    }
    *rate = (double)ops / el;
    *p99 = (double)(b + 1) * TP_BUCKET_US / 1000.0;
}

static void bench_load_during_backup(js_instance *inst, const char *dir, int reps, double t_full)
{
    double secs = g_secs > 2 * t_full ? g_secs : 2 * t_full;
    double ra[64], rb[64], pa[64], pb[64];
    printf("e. %d durable writers (one put of %d+%d bytes per commit), %.1f s windows, alone vs during back-to-back "
           "full backups\n", TP_THREADS, KEY_LEN, VAL_LEN, secs);
    for (int rep = 0; rep < reps; rep++) {
        settle();
        tp_window(inst, secs, &ra[rep], &pa[rep]);
        settle();
        bkloop b = { .inst = inst, .dir = dir };
        atomic_init(&b.stop, 0);
        mkdir(dir, 0700);
        pthread_t bt;
        if (pthread_create(&bt, NULL, backup_loop, &b) != 0) {
            perror("pthread_create");
            exit(1);
        }
        sleep_s(0.2);   /* past the first backup's checkpoint */
        tp_window(inst, secs, &rb[rep], &pb[rep]);
        atomic_store(&b.stop, 1);
        (void)js_backup_cancel(inst);
        pthread_join(bt, NULL);
        rmtree(dir);
        printf("  alone: %.0f commits/s, p99 %.2f ms; during backups (%d started, pacer holding in %d of %d "
               "reports): %.0f commits/s, p99 %.2f ms\n",
               ra[rep], pa[rep], b.started, b.held, b.reports, rb[rep], pb[rep]);
    }
    char s1[64], s2[64];
    spread(s1, sizeof s1, ra, reps, "/s");
    spread(s2, sizeof s2, rb, reps, "/s");
    printf("  noise: alone %s, during backups %s\n", s1, s2);
    add_row("e. durable commits/s during full backup", "/s", median(rb, reps), median(ra, reps), GOAL_RATIO_GE, 0.8);
    add_row("e. p99 commit latency during full backup", "ms", median(pb, reps), median(pa, reps), GOAL_RATIO_LE, 3.0);
}

static void bench_backup(double db_mb, int run_d, int run_e)
{
    uint64_t nkeys = (uint64_t)(db_mb * 1048576.0 / 8192.0);
    if (nkeys < 1000)
        nkeys = 1000;
    char idir[4200], full[4200], cpdir[4200], rdir[4200], lat[4200], cmd[17000];
    path_in_work(full, sizeof full, "bk-full");
    path_in_work(cpdir, sizeof cpdir, "bk-cp");
    path_in_work(rdir, sizeof rdir, "bk-restore");
    path_in_work(lat, sizeof lat, "bk-latency");
    js_instance *inst = js_fresh("bk-inst", JS_COMMIT_DURABLE, idir, sizeof idir);

    /* Build: BIG_VAL-byte values (one overflow page each) in ~1 MiB
     * transactions, lazy commits. */
    uint64_t seed = 99;
    double t0 = now_s();
    load_big(inst, 0, nkeys, 1, nkeys, &seed);
    JET_ERR err = js_checkpoint(inst);
    if (err)
        die("js_checkpoint", err);
    double tb = now_s() - t0;
    /* Truncate the build's logs (ESE's backup without a destination) so the
     * directory holds what a backup copies. */
    err = js_backup(inst, NULL, 0, NULL, NULL);
    if (err)
        die("truncate-only backup", err);
    sync();
    uint64_t ibytes = dir_bytes(idir);
    printf("  built instance: %llu keys of %u bytes, %.1f MiB on disk, in %.1f s (%.0f MiB/s of values)\n",
           (unsigned long long)nkeys, BIG_VAL, (double)ibytes / 1048576.0, tb,
           (double)nkeys * BIG_VAL / 1048576.0 / tb);

    int reps = g_reps < 3 ? 3 : g_reps > 64 ? 64 : g_reps;
    double t_full = 1.0;
    if (run_d) {
    /* Full backup vs cp -r + sync, and restore vs cp -r of the set + sync,
     * alternated, each side timed after the previous one's data is written
     * and the page cache dropped (cold: both read from the disk), medians
     * of g_reps (at least 3).  The restore includes its verification; its
     * replay of the set's few logs is in its time, a longer roll-forward
     * is timed apart below. */
    double v_cp[64], v_full[64], v_cpset[64], v_rest[64], v_copy[64], v_cat[64];
    uint64_t sbytes = 0;
    int dropped = 1;
    for (int rep = 0; rep < reps; rep++) {
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && sync", idir, cpdir);
        dropped &= cold();
        double c = timed_cmd(cmd);
        rmtree(cpdir);
        rmtree(full);
        dropped &= cold();
        pt_start();
        t0 = now_s();
        err = js_backup(inst, full, JS_BACKUP_CREATE_DIR, phase_status, NULL);
        if (err)
            die("full backup", err);
        double f = now_s() - t0;
        pt_end("full backup");
        v_copy[rep] = pt_phase("copy-database");
        sbytes = dir_bytes(full);
        printf("  full backup %.1f MiB: %.2f s (%.0f MiB/s); cp -r + sync of %.1f MiB: %.2f s\n",
               (double)sbytes / 1048576.0, f, (double)sbytes / 1048576.0 / f, (double)ibytes / 1048576.0, c);
        v_cp[rep] = c;
        v_full[rep] = f;
        /* The copy's read throughput against a plain cold read. */
        snprintf(cmd, sizeof cmd, "cat '%s/%s' > /dev/null", idir, JS_DB_FILE);
        dropped &= cold();
        v_cat[rep] = timed_cmd(cmd);

        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && sync", full, cpdir);
        dropped &= cold();
        c = timed_cmd(cmd);
        rmtree(cpdir);
        dropped &= cold();
        pt_start();
        t0 = now_s();
        err = js_restore(full, rdir, NULL, 0, phase_status, NULL);
        if (err)
            die("restore", err);
        double r = now_s() - t0;
        pt_end("restore");
        rmtree(rdir);
        if (!rep)
            printf("  each side above timed from a %s page cache\n",
                   dropped ? "dropped (cold)" : "settled, not dropped (not root: drop_caches refused)");
        printf("  restore: %.2f s; cp -r + sync of the set: %.2f s\n", r, c);
        v_cpset[rep] = c;
        v_rest[rep] = r;
    }
    char sp1[64], sp2[64];
    spread(sp1, sizeof sp1, v_full, reps, "s");
    spread(sp2, sizeof sp2, v_cp, reps, "s");
    printf("  noise: full backup %s, cp -r + sync %s\n", sp1, sp2);
    {
        struct stat dst;
        snprintf(cmd, sizeof cmd, "%s/%s", idir, JS_DB_FILE);
        double dbmb = stat(cmd, &dst) == 0 ? (double)dst.st_size / 1048576.0 : 0;
        double tc = median(v_copy, reps), tt = median(v_cat, reps);
        printf("  reading the database cold (medians): the backup's copy-database phase %.3f s (%.0f MiB/s), "
               "cat %s > /dev/null %.3f s (%.0f MiB/s)\n",
               tc, tc > 0 ? dbmb / tc : 0, JS_DB_FILE, tt, tt > 0 ? dbmb / tt : 0);
    }
    spread(sp1, sizeof sp1, v_rest, reps, "s");
    spread(sp2, sizeof sp2, v_cpset, reps, "s");
    printf("  noise: restore %s, cp -r + sync of the set %s\n", sp1, sp2);
    t_full = median(v_full, reps);
    double t_cp = median(v_cp, reps);
    add_row("d. full backup time (vs cp -r + sync)", "s", t_full, t_cp, GOAL_RATIO_LE, 1.0);
    add_row("d. restore time (vs cp -r of the set + sync)", "s", median(v_rest, reps), median(v_cpset, reps),
            GOAL_RATIO_LE, 1.2);

    /* Verify throughput vs sha256sum -c of the set (both one core). */
    double t_ver = 1e30, t_sha = 1e30;
    for (int rep = 0; rep < g_reps; rep++) {
        js_check_report rep_;
        memset(&rep_, 0, sizeof rep_);
        pt_start();
        t0 = now_s();
        err = js_verify(full, &rep_, phase_status, NULL);
        if (err)
            die("verify", err);
        double v = now_s() - t0;
        pt_end("verify");
        sync();
        snprintf(cmd, sizeof cmd, "cd '%s' && sha256sum --quiet -c SHA256SUMS", full);
        double h = timed_cmd(cmd);
        printf("  verify: %.2f s (%llu pages, %llu log records); sha256sum -c: %.2f s\n", v,
               (unsigned long long)rep_.pages_checked, (unsigned long long)rep_.log_records_checked, h);
        t_ver = min2(t_ver, v);
        t_sha = min2(t_sha, h);
    }
    add_row("d. verify bytes/s/core (vs sha256sum -c)", "B/s", (double)sbytes / t_ver, (double)sbytes / t_sha,
            GOAL_NONE, 0);

    /* Incremental after changing 1% of the keys vs the full backup. */
    uint64_t nchg = nkeys / 100 ? nkeys / 100 : 1;
    double t_inc = 1e30;
    for (int rep = 0; rep < g_reps; rep++) {
        load_big(inst, 12345 + (uint64_t)rep * 7919, nchg, 97, nkeys, &seed);
        uint64_t before = dir_bytes(full);
        pt_start();
        t0 = now_s();
        err = js_backup(inst, full, JS_BACKUP_INCREMENTAL, phase_status, NULL);
        if (err)
            die("incremental backup", err);
        double i = now_s() - t0;
        pt_end("incremental backup");
        printf("  incremental backup after %llu of %llu keys changed: %.3f s, %.1f MiB added\n",
               (unsigned long long)nchg, (unsigned long long)nkeys, i,
               (double)(dir_bytes(full) - before) / 1048576.0);
        t_inc = min2(t_inc, i);
    }
    add_row("d. incremental backup, 1% changed (vs full)", "s", t_inc, t_full, GOAL_RATIO_LE, 0.05);

    /* Roll-forward: restore the set, which now carries the incrementals'
     * logs, and time its replay phase apart from the copy. */
    {
        js_check_report vr;
        memset(&vr, 0, sizeof vr);
        err = js_verify(full, &vr, NULL, NULL);
        if (err)
            die("verify before replay", err);
        double v_rp[64];
        for (int rep = 0; rep < reps; rep++) {
            settle();
            pt_start();
            err = js_restore(full, rdir, NULL, 0, phase_status, NULL);
            if (err)
                die("restore with logs", err);
            pt_end("restore with logs");
            double t_rp = 0;
            for (int i = 1; i < g_pt.n; i++)
                if (!strcmp(g_pt.names[i], "replay"))
                    t_rp = g_pt.dur[i];
            v_rp[rep] = t_rp > 0 ? (double)vr.log_records_checked / t_rp : 0;
            rmtree(rdir);
        }
        printf("  replay: %llu log records in the set\n", (unsigned long long)vr.log_records_checked);
        add_row("d. restore roll-forward, log records/s", "rec/s", median(v_rp, reps), 0, GOAL_INFO, 0);
    }
    rmtree(full);
    sync();

    /* Longest durable commit latency of one writer: alone, then while a
     * full backup runs (checkpoint, copy, log roll, copy logs, truncate). */
    lctx l;
    pthread_t th;
    double window = t_full + 1.0;
    if (window < g_secs)
        window = g_secs;
    double v_base[64], v_with[64], v_start[64];
    for (int rep = 0; rep < reps; rep++) {
        settle();
        pt_start();
        start_latency(&l, inst, &th);
        sleep_s(window);
        stop_latency(&l, th);
        double bm = l.max_ms, brate = (double)l.ops / window;

        settle();
        pt_start();
        start_latency(&l, inst, &th);
        sleep_s(0.5);
        pt_start();
        err = js_backup(inst, lat, JS_BACKUP_CREATE_DIR, phase_status, NULL);
        pt_end("full backup under load");
        sleep_s(0.5);
        stop_latency(&l, th);
        if (err)
            die("backup under load", err);
        printf("  durable writer alone: %.0f commits/s, longest %.2f ms; from 0.5 s before a full backup to 0.5 s "
               "after it: longest %.2f ms\n", brate, bm, l.max_ms);
        printf("    longest commit per phase (ms):");
        for (int i = 0; i < g_pt.n; i++)
            printf(" %s %.2f", g_pt.names[i], l.phase_max[i]);
        printf(" after %.2f\n", l.phase_max[PH_AFTER]);
        double wm = l.phase_max[PH_AFTER];   /* from the backup's start on */
        for (int i = 1; i < g_pt.n; i++)
            wm = l.phase_max[i] > wm ? l.phase_max[i] : wm;
        v_with[rep] = wm;
        double sm = 0;
        for (int i = 1; i < g_pt.n; i++)
            if ((!strcmp(g_pt.names[i], "checkpoint") || !strcmp(g_pt.names[i], "roll-log")) && l.phase_max[i] > sm)
                sm = l.phase_max[i];
        v_start[rep] = sm;
        /* The same writer while plain `cp -r` + `sync` copies the instance:
         * what the I/O alone (no engine lock) does to commit latency. */
        pt_start();
        start_latency(&l, inst, &th);
        sleep_s(0.5);
        /* The live log may rename edbtmp.log under cp's feet: a file cp
         * could not copy does not matter to this comparison. */
        snprintf(cmd, sizeof cmd, "{ cp -r '%s' '%s' 2>/dev/null || true; } && sync", idir, cpdir);
        double c = timed_cmd(cmd);
        sleep_s(0.5);
        stop_latency(&l, th);
        rmtree(cpdir);
        printf("    for comparison, during cp -r + sync of the instance (%.2f s): longest %.2f ms\n", c, l.max_ms);
        v_base[rep] = bm;
        rmtree(lat);
    }
    double base_max = median(v_base, reps);
    add_row("d. longest commit, backup ckpt+log roll", "ms", median(v_start, reps), base_max, GOAL_ADDED_LT, 10.0);
    add_row("d. longest commit, whole full backup", "ms", median(v_with, reps), base_max, GOAL_ADDED_NONE, 0);

    }
    if (run_e)
        bench_load_during_backup(inst, lat, reps, t_full);

    err = js_close(inst);
    if (err)
        die("js_close", err);
    rmtree(idir);
}

/* "some avg10" of /proc/pressure/io: the share of time some task waited
 * for I/O over the last 10 s (-1 when unavailable). */
static double io_pressure(void)
{
    FILE *f = fopen("/proc/pressure/io", "r");
    double v = -1;
    if (f) {
        if (fscanf(f, "some avg10=%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* ------------------------------------------------------------------ */
int main(int argc, char **argv)
{
    const char *work = argc > 1 ? argv[1] : ".";
    if (!realpath(work, g_work)) {
        perror(work);
        return 1;
    }
    g_secs = env_double("BENCH_SECS", 2.5);
    g_reps = (int)env_double("BENCH_REPS", 3);
    double db_mb = env_double("BENCH_DB_MB", 1024);
    uint64_t read_keys = (uint64_t)env_double("BENCH_READ_KEYS", 200000);
    const char *only = getenv("BENCH_ONLY");
    if (!only || !*only)
        only = "abcde";
    setvbuf(stdout, NULL, _IOLBF, 0);

    js_params p;
    js_params_default(&p);
    double load[3] = { 0, 0, 0 };
    if (getloadavg(load, 3) < 1)
        load[0] = -1;
    printf("bench_engine: nproc %ld, load average %.2f and I/O pressure %.0f%% at start; jetsnap page size %u, log generation %llu KiB, "
           "cache %llu MiB; sqlite %s, page size 4096 (default); %.1f s per throughput run, best of %d "
           "interleaved runs; backup instance %.0f MiB; work dir %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), load[0], io_pressure(), p.page_size, (unsigned long long)(p.log_file_size / 1024),
           (unsigned long long)(p.cache_size >> 20), sqlite3_libversion(), g_secs, g_reps, db_mb, g_work);

    if (strchr(only, 'a')) {
        printf("a. durable commits (one put of %d+%d bytes each; sqlite WAL synchronous=FULL)\n", KEY_LEN, VAL_LEN);
        int threads[2] = { 1, 16 };
        for (int i = 0; i < 2; i++) {
            int nt = threads[i];
            double j = 0, q = 0;
            for (int rep = 0; rep < g_reps; rep++) {
                double x = bench_js_commits(nt, JS_COMMIT_DURABLE);
                double y = bench_sql_commits(nt, "FULL");
                printf("  %d thread%s: jetsnap %.0f/s, sqlite %.0f/s\n", nt, nt > 1 ? "s" : "", x, y);
                j = x > j ? x : j;
                q = y > q ? y : q;
            }
            char m[64];
            snprintf(m, sizeof m, "a. durable commits/s, %d writer thread%s", nt, nt > 1 ? "s" : "");
            add_row(m, "/s", j, q, nt == 16 ? GOAL_RATIO_GE : GOAL_NONE, 2.0);
        }
    }
    if (strchr(only, 'b')) {
        printf("b. lazy commits (jetsnap lazy vs sqlite WAL synchronous=NORMAL)\n");
        double j = 0, q = 0;
        for (int rep = 0; rep < g_reps; rep++) {
            double x = bench_js_commits(1, JS_COMMIT_LAZY);
            double y = bench_sql_commits(1, "NORMAL");
            printf("  1 thread: jetsnap %.0f/s, sqlite %.0f/s\n", x, y);
            j = x > j ? x : j;
            q = y > q ? y : q;
        }
        add_row("b. lazy commits/s, 1 writer thread", "/s", j, q, GOAL_NONE, 0);
    }
    if (strchr(only, 'c')) {
        printf("c. random point reads (%llu keys)\n", (unsigned long long)read_keys);
        bench_reads(read_keys);
    }
    if (strchr(only, 'd') || strchr(only, 'e')) {
        printf("d. backup, restore, verify (instance of %.0f MiB)\n", db_mb);
        bench_backup(db_mb, strchr(only, 'd') != NULL, strchr(only, 'e') != NULL);
    }

    print_table();
    if (getloadavg(load, 3) >= 1)
        printf("load average %.2f and I/O pressure %.0f%% at end (other processes on the machine skew every "
               "number; latencies most)\n", load[0], io_pressure());
    return 0;
}

/*
 * bench_snap.c - the engine half of the snapshot benchmark (issue 10).
 *
 * Built and run by scripts/bench_snap.sh:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icore scripts/bench_snap.c \
 *      $BUILD/libjetsnap.a -lsqlite3 -lcrypto -pthread -o $BUILD/bench_snap
 *   $BUILD/bench_snap engine WORKDIR   the three engine comparisons
 *   $BUILD/bench_snap load DIR MB      create DIR and fill it with MB MiB
 *                                      (the mount half's instance)
 *
 * "engine" measures, each side alternated BENCH_REPS times (default 3), the
 * median of each side kept, and prints one line per figure with its goal:
 *   a. time of js_snapshot_take on a BENCH_SNAP_MB MiB instance (default
 *      1024) against a 64 MiB one, both under an overwriting durable writer
 *      (the median of TAKES takes per side and round);
 *   b. the longest durable commit of a small-commit writer over a window in
 *      which a snapshot is taken, against the same window with none;
 *   c. durable commits/s of a writer overwriting random existing pages with
 *      one snapshot held (taken just before, so every first overwrite of a
 *      page saves it), against with none, both sides checkpointing every
 *      0.5 s (bench_held: each side twice per round, A B B A).
 * BENCH_SNAP_ONLY (a list of take, lat, held) runs only those.
 * Every side starts from a checkpointed, settled instance (never right after
 * a load).  Timings never make it fail: it exits non-zero only when an
 * operation fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jetsnap.h"
#include "bench_util.h"

#define KEY_LEN 16
#define BIG_VAL 8000u     /* one overflow page each with 8 KiB pages */
#define BIG_TXN 128u      /* puts per load transaction (~1 MiB) */
#define SMALL_VAL 100u
#define MAX_REPS 15

static int g_reps = 3;
static double g_secs = 2.0;

static void die(const char *what, JET_ERR err)
{
    fprintf(stderr, "bench_snap: %s: %s (%d): %s\n", what, js_errname(err), err, js_errdetail());
    exit(1);
}

/* Checkpoint and let the background writes finish: no side starts right
 * after loading or after the other side's load. */
static void settle(js_instance *inst)
{
    JET_ERR err = js_checkpoint(inst);
    if (err)
        die("js_checkpoint", err);
    sleep_s(0.5);
}

static js_instance *open_loaded(const char *dir, uint64_t mb, int close_after)
{
    js_params p;
    js_params_default(&p);
    JET_ERR err = js_create(dir, &p);
    if (err)
        die("js_create", err);
    js_instance *inst = NULL;
    err = js_open(dir, &p, &inst);
    if (err)
        die("js_open", err);
    js_session *s = NULL;
    err = js_session_open(inst, &s);
    if (err)
        die("js_session_open", err);
    uint8_t val[BIG_VAL];
    char key[KEY_LEN];
    uint64_t seed = 42, count = mb * 1024 * 1024 / 8192;
    for (uint64_t i = 0; i < count;) {
        err = js_txn_begin(s, 0);
        for (unsigned k = 0; k < BIG_TXN && i < count && !err; k++, i++) {
            make_key(key, 'b', 0, i);
            fill_random(val, BIG_VAL, &seed);
            err = js_put(s, key, KEY_LEN, val, BIG_VAL);
        }
        if (!err)
            err = js_txn_commit(s, JS_COMMIT_FLAG_LAZY);
        if (err)
            die("load", err);
    }
    js_session_close(s);
    settle(inst);
    if (close_after) {
        err = js_close(inst);
        if (err)
            die("js_close", err);
        return NULL;
    }
    return inst;
}

/* One writer thread: either overwrites random existing big keys (so the
 * checkpoint writes over pages a snapshot needs) or appends small records;
 * every commit durable.  Counts commits and keeps the longest. */
typedef struct load {
    js_instance *inst;
    uint64_t nkeys;     /* 0: small appends */
    atomic_int stop;
    uint64_t ops;
    double max_ms;
    pthread_t th;
} load;

static void *load_thread(void *arg)
{
    load *l = arg;
    js_session *s = NULL;
    JET_ERR err = js_session_open(l->inst, &s);
    if (err)
        die("js_session_open", err);
    static atomic_uint runs;
    uint64_t seed = 1000 + atomic_fetch_add(&runs, 1);
    uint8_t val[BIG_VAL];
    char key[KEY_LEN];
    while (!atomic_load(&l->stop)) {
        size_t vlen = l->nkeys ? BIG_VAL : SMALL_VAL;
        if (l->nkeys)
            make_key(key, 'b', 0, xorshift(&seed) % l->nkeys);
        else
            make_key(key, 's', 0, xorshift(&seed) % 1000000);
        fill_random(val, vlen, &seed);
        double t0 = now_s();
        err = put_one(s, key, val, vlen);
        double ms = (now_s() - t0) * 1e3;
        if (err)
            die("writer", err);
        if (ms > l->max_ms)
            l->max_ms = ms;
        l->ops++;
    }
    js_session_close(s);
    return NULL;
}

static void load_start(load *l, js_instance *inst, uint64_t nkeys)
{
    memset(l, 0, sizeof *l);
    l->inst = inst;
    l->nkeys = nkeys;
    atomic_init(&l->stop, 0);
    if (pthread_create(&l->th, NULL, load_thread, l) != 0) {
        perror("pthread_create");
        exit(1);
    }
}

static void load_stop(load *l)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->th, NULL);
}

static double take_ms(js_instance *inst, const char *name)
{
    double t0 = now_s();
    JET_ERR err = js_snapshot_take(inst, name, NULL);
    double ms = (now_s() - t0) * 1e3;
    if (err)
        die("js_snapshot_take", err);
    return ms;
}

static void drop(js_instance *inst, const char *name)
{
    JET_ERR err = js_snapshot_delete(inst, name);
    if (err)
        die("js_snapshot_delete", err);
}

/* a: snapshot time, big against small, each under an overwriting writer
 * that has run for a while (dirty pages in the cache). */
#define TAKES 3   /* per side and round: a take is 1-2 ms, one fsync's noise */

static void bench_take(js_instance *big, uint64_t big_keys, js_instance *small, uint64_t small_keys, uint64_t mb)
{
    double b[MAX_REPS * TAKES], s[MAX_REPS * TAKES];
    for (int r = 0; r < g_reps; r++) {
        for (int side = 0; side < 2; side++) {
            js_instance *inst = ((r + side) % 2) ? small : big;
            for (int t = 0; t < TAKES; t++) {
                load l;
                settle(inst);
                load_start(&l, inst, inst == big ? big_keys : small_keys);
                sleep_s(0.7);
                double ms = take_ms(inst, "bench-take");
                load_stop(&l);
                drop(inst, "bench-take");
                (inst == big ? b : s)[r * TAKES + t] = ms;
            }
        }
    }
    double mb_ = median(b, g_reps * TAKES), ms_ = median(s, g_reps * TAKES);
    printf("snapshot_take_ms: %" PRIu64 " MiB %.2f, 64 MiB %.2f\n", mb, mb_, ms_);
    printf("ratio_snapshot_take_big_vs_64MiB: %.2f   (goal <= 1.5; absolute %.2f ms, goal well under 50)\n",
           mb_ / (ms_ > 0 ? ms_ : 1e-9), mb_);
}

/* b: longest small durable commit over a window of 0.4 s + take + 0.4 s,
 * against the same length with no snapshot; an overwriting writer runs too
 * so the cache holds committed unwritten pages. */
static void bench_latency(js_instance *inst, uint64_t nkeys)
{
    double with[MAX_REPS], none[MAX_REPS], took[MAX_REPS];
    for (int r = 0; r < g_reps; r++) {
        for (int side = 0; side < 2; side++) {
            int snap = (r + side) % 2 == 0;
            load bg, lat;
            settle(inst);
            load_start(&bg, inst, nkeys);
            sleep_s(0.5);
            load_start(&lat, inst, 0);
            sleep_s(0.4);
            double ms = snap ? take_ms(inst, "bench-lat") : (r > 0 ? took[r - 1] : 20.0);
            if (!snap)
                sleep_s(ms / 1e3);
            sleep_s(0.4);
            load_stop(&lat);
            load_stop(&bg);
            if (snap) {
                took[r] = ms;
                with[r] = lat.max_ms;
                drop(inst, "bench-lat");
            } else {
                none[r] = lat.max_ms;
            }
        }
    }
    double w = median(with, g_reps), n = median(none, g_reps);
    printf("longest_commit_ms: snapshot taken %.2f, none %.2f\n", w, n);
    printf("added_longest_commit_ms: %.2f   (goal < 10)\n", w - n);
}

/* c: commits/s of the overwriting writer, one snapshot held against none.
 * A window of a few seconds holds no checkpoint of the instance's own (it
 * waits for checkpoint_depth of log or 30 s), so nothing would be saved:
 * both sides checkpoint every CKPT_EVERY_S, as a longer run would, and the
 * held side pays its copy-on-write saves inside the window. */
#define CKPT_EVERY_S 0.5

/* Returns the mean time of one checkpoint (ms): what the saves cost the
 * checkpoint, beside what they cost the commits. */
static double checkpoint_during(js_instance *inst, double secs)
{
    double sum = 0;
    int n = 0;
    for (double t = 0; t + CKPT_EVERY_S <= secs + 1e-9; t += CKPT_EVERY_S, n++) {
        sleep_s(CKPT_EVERY_S);
        double t0 = now_s();
        JET_ERR err = js_checkpoint(inst);
        if (err)
            die("js_checkpoint", err);
        sum += (now_s() - t0) * 1e3;
    }
    return n ? sum / n : 0;
}

/* One window of the overwriting writer, a snapshot held or not: its
 * commits/s; *ck the mean checkpoint time in it. */
static double held_window(js_instance *inst, uint64_t nkeys, int snap, double *ck)
{
    load l;
    settle(inst);
    if (snap)
        take_ms(inst, "bench-held");
    load_start(&l, inst, nkeys);
    double t0 = now_s();
    *ck = checkpoint_during(inst, g_secs);
    double secs = now_s() - t0;
    load_stop(&l);
    if (snap)
        drop(inst, "bench-held");
    return (double)l.ops / secs;
}

/* A round runs each side twice, A B B A (the order alternating between
 * rounds), and its ratio is that of the two sides' mean rates: a drift of
 * the shared machine within the round weighs on both sides alike. */
static void bench_held(js_instance *inst, uint64_t nkeys)
{
    double with[2 * MAX_REPS], none[2 * MAX_REPS], ck_with[2 * MAX_REPS], ck_none[2 * MAX_REPS];
    double pr[MAX_REPS];
    for (int r = 0; r < g_reps; r++) {
        double w = 0, n = 0;
        for (int k = 0; k < 4; k++) {
            int snap = (r % 2 == 0) == (k == 0 || k == 3);
            int slot = 2 * r + (k >= 2);
            if (snap)
                w += with[slot] = held_window(inst, nkeys, 1, &ck_with[slot]);
            else
                n += none[slot] = held_window(inst, nkeys, 0, &ck_none[slot]);
        }
        pr[r] = w / (n > 0 ? n : 1e-9);
    }
    int nw = 2 * g_reps;
    double w = median(with, nw), n = median(none, nw);
    printf("overwrite_commits_per_s: snapshot held %.0f, none %.0f (medians of %d windows of %.1f s)\n", w, n, nw,
           g_secs);
    printf("ratio_commits_snapshot_held_vs_none: %.2f   (goal >= 0.9)\n", w / (n > 0 ? n : 1e-9));
    double sorted[MAX_REPS];
    memcpy(sorted, pr, sizeof pr);
    printf("ratio_commits_snapshot_held_vs_none_per_round_median: %.2f (rounds:", median(sorted, g_reps));
    for (int r = 0; r < g_reps; r++)
        printf(" %.2f", pr[r]);
    printf(")\n");
    printf("checkpoint_ms_during_it: snapshot held %.1f, none %.1f\n", median(ck_with, nw), median(ck_none, nw));
}

int main(int argc, char **argv)
{
    const char *e;
    if (argc == 4 && !strcmp(argv[1], "load")) {
        open_loaded(argv[2], strtoull(argv[3], NULL, 10), 1);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "engine")) {
        fprintf(stderr, "usage: bench_snap engine WORKDIR | bench_snap load DIR MB\n");
        return 2;
    }
    if ((e = getenv("BENCH_REPS")) && atoi(e) > 0)
        g_reps = atoi(e) > MAX_REPS ? MAX_REPS : atoi(e);
    if ((e = getenv("BENCH_SECS")) && atof(e) > 0)
        g_secs = atof(e);
    uint64_t mb = 1024;
    if ((e = getenv("BENCH_SNAP_MB")) && atoi(e) >= 64)
        mb = (uint64_t)atoi(e);
    char big_dir[4200], small_dir[4200];
    snprintf(big_dir, sizeof big_dir, "%s/big", argv[2]);
    snprintf(small_dir, sizeof small_dir, "%s/small", argv[2]);
    double t0 = now_s();
    js_instance *big = open_loaded(big_dir, mb, 0);
    js_instance *small = open_loaded(small_dir, 64, 0);
    printf("loaded %" PRIu64 " MiB and 64 MiB instances in %.1f s\n", mb, now_s() - t0);
    fflush(stdout);
    uint64_t big_keys = mb * 1024 * 1024 / 8192, small_keys = 64 * 1024 * 1024 / 8192;
    const char *only = getenv("BENCH_SNAP_ONLY");   /* e.g. "held" or "take,lat" */
    if (!only || strstr(only, "take"))
        bench_take(big, big_keys, small, small_keys, mb);
    fflush(stdout);
    JET_ERR err = js_close(small);
    if (err)
        die("js_close", err);
    if (!only || strstr(only, "lat"))
        bench_latency(big, big_keys);
    fflush(stdout);
    if (!only || strstr(only, "held"))
        bench_held(big, big_keys);
    err = js_close(big);
    if (err)
        die("js_close", err);
    return 0;
}

/*
 * bench_util.h - the helpers the benchmark programs share (bench_engine.c,
 * bench_snap.c): a monotonic clock in seconds, a sleep, a fast PRNG for
 * keys and values, the keys they write, one timed write, and the median of
 * repeated runs.
 * Header-only: each program is built from one source file.
 */
#ifndef JS_BENCH_UTIL_H
#define JS_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jetsnap.h"

/* ------------------------------------------------------------------ */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* helpers                                                              */
static inline void sleep_s(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static inline void fill_random(uint8_t *buf, size_t len, uint64_t *seed)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = xorshift(seed);
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(buf + i, &r, n);
    }
}

/* A 16-byte key: a one-letter prefix, a 2-digit stream number, a dash and a
 * 12-digit counter ("w03-000000001234").  Formatted by hand: snprintf cost
 * more than a jetsnap point read. */
static inline void make_key(char *key, char prefix, unsigned stream, uint64_t n)
{
    key[0] = prefix;
    key[1] = (char)('0' + stream / 10 % 10);
    key[2] = (char)('0' + stream % 10);
    key[3] = '-';
    for (int i = 15; i >= 4; i--) {
        key[i] = (char)('0' + n % 10);
        n /= 10;
    }
}

/* One key written in its own transaction with the instance's commit mode:
 * the unit every writer thread of the benchmarks times. */
static inline JET_ERR put_one(js_session *s, const char *key, const uint8_t *val, size_t vlen)
{
    JET_ERR err = js_txn_begin(s, 0);
    if (!err)
        err = js_put(s, key, 16, val, vlen);
    if (!err)
        err = js_txn_commit(s, 0);
    return err;
}

/* Median of the n values in v (sorted in place). */
static inline double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
            double t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif

/*
 * status.c - state of the running or last backup job, fed by the job
 * thread (fs/control.c) from js_backup's status callback, read by the
 * `status` file and by INFO.
 */
#include "status.h"
#include "events.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum st_state { ST_IDLE = 0, ST_RUNNING, ST_SUCCEEDED, ST_FAILED, ST_CANCELLED };

struct st_status {
    pthread_mutex_t lock;       /* guards every field below */
    int recovering;
    enum st_state state;
    uint64_t job;               /* 0: no job yet */
    char operation[16];
    char path[PATH_MAX];
    char flags[128];
    char phase[24];
    uint64_t percent, bytes_done, bytes_total, pages_verified, log_records_verified;
    int64_t started_ms, finished_ms;
    uint32_t gen_low, gen_high;
    char truncated[64];
    JET_ERR result;
    char message[1024];
};

struct st_status *st_new(void)
{
    struct st_status *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    pthread_mutex_init(&st->lock, NULL);
    st->recovering = 1;
    return st;
}

void st_free(struct st_status *st)
{
    if (st == NULL)
        return;
    pthread_mutex_destroy(&st->lock);
    free(st);
}

void st_set_recovering(struct st_status *st, int recovering)
{
    pthread_mutex_lock(&st->lock);
    st->recovering = recovering;
    pthread_mutex_unlock(&st->lock);
}

uint64_t st_job_begin(struct st_status *st, const char *operation, const char *path,
                      const char *flags)
{
    uint64_t job;

    pthread_mutex_lock(&st->lock);
    job = ++st->job;
    st->state = ST_RUNNING;
    snprintf(st->operation, sizeof(st->operation), "%s", operation);
    snprintf(st->path, sizeof(st->path), "%s", path);
    snprintf(st->flags, sizeof(st->flags), "%s", flags);
    snprintf(st->phase, sizeof(st->phase), "checkpoint");
    st->percent = st->bytes_done = st->bytes_total = 0;
    st->pages_verified = st->log_records_verified = 0;
    st->started_ms = ev_now_ms();
    st->finished_ms = 0;
    st->gen_low = st->gen_high = 0;
    st->truncated[0] = '\0';
    st->result = 0;
    st->message[0] = '\0';
    pthread_mutex_unlock(&st->lock);
    return job;
}

void st_job_progress(struct st_status *st, const js_progress *p)
{
    pthread_mutex_lock(&st->lock);
    if (p->units_total > 0)
        st->percent = p->units_done * 100 / p->units_total;
    st->bytes_done = p->bytes_done;
    st->bytes_total = p->bytes_total;
    st->pages_verified = p->pages_verified;
    st->log_records_verified = p->log_records_verified;
    if (p->phase != NULL && p->phase[0] != '\0')
        snprintf(st->phase, sizeof(st->phase), "%s", p->phase);
    if (p->gen_low != 0)
        st->gen_low = p->gen_low;
    if (p->gen_high != 0)
        st->gen_high = p->gen_high;
    pthread_mutex_unlock(&st->lock);
}

void st_job_end(struct st_status *st, JET_ERR err, const char *message, const char *truncated)
{
    pthread_mutex_lock(&st->lock);
    st->finished_ms = ev_now_ms();
    st->result = err;
    st->state = err == JET_errSuccess ? ST_SUCCEEDED
              : err == JET_errBackupAbortByServer ? ST_CANCELLED : ST_FAILED;
    if (err == JET_errSuccess) {
        snprintf(st->phase, sizeof(st->phase), "done");
        st->percent = 100;
    }
    snprintf(st->message, sizeof(st->message), "%s", message != NULL ? message : "");
    snprintf(st->truncated, sizeof(st->truncated), "%s", truncated != NULL ? truncated : "none");
    pthread_mutex_unlock(&st->lock);
}

struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->len + 1 >= o->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

static const char *state_name(const struct st_status *st)
{
    switch (st->state) {
    case ST_RUNNING: return "running";
    case ST_SUCCEEDED: return "succeeded";
    case ST_FAILED: return "failed";
    case ST_CANCELLED: return "cancelled";
    default: return st->recovering ? "recovering" : "idle";
    }
}

/* The message is one line: newlines from an engine detail become spaces. */
static void put_line_value(struct out *o, const char *key, const char *v)
{
    size_t i, start = o->len;

    put(o, "%s: %s", key, v[0] != '\0' ? v : "-");
    for (i = start + strlen(key) + 2; i < o->len; i++)
        if ((unsigned char)o->buf[i] < 0x20)
            o->buf[i] = ' ';
    put(o, "\n");
}

size_t st_render(struct st_status *st, char *buf, size_t cap)
{
    struct out o = { buf, cap, 0 };
    char tbuf[40];
    int64_t now = ev_now_ms(), elapsed;
    uint64_t rate = 0;

    if (cap == 0)
        return 0;
    buf[0] = '\0';
    pthread_mutex_lock(&st->lock);
    put(&o, "state: %s\n", state_name(st));
    if (st->job == 0) {
        static const char *const rest[] = {
            "job", "operation", "path", "flags", "phase", "progress_percent",
            "bytes_done", "bytes_total", "pages_verified", "log_records_verified",
            "rate_bytes_per_s", "eta_s", "started", "finished", "gen_low", "gen_high",
            "truncated", "result", "message" };
        size_t i;
        for (i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
            put(&o, "%s: -\n", rest[i]);
        goto out_unlock;
    }
    put(&o, "job: %llu\n", (unsigned long long)st->job);
    put(&o, "operation: %s\n", st->operation);
    put_line_value(&o, "path", st->path);
    put_line_value(&o, "flags", st->flags);
    put(&o, "phase: %s\n", st->phase);
    put(&o, "progress_percent: %llu\n", (unsigned long long)st->percent);
    put(&o, "bytes_done: %llu\n", (unsigned long long)st->bytes_done);
    put(&o, "bytes_total: %llu\n", (unsigned long long)st->bytes_total);
    put(&o, "pages_verified: %llu\n", (unsigned long long)st->pages_verified);
    put(&o, "log_records_verified: %llu\n", (unsigned long long)st->log_records_verified);
    elapsed = (st->state == ST_RUNNING ? now : st->finished_ms) - st->started_ms;
    if (elapsed > 0)
        rate = st->bytes_done * 1000 / (uint64_t)elapsed;
    put(&o, "rate_bytes_per_s: %llu\n", (unsigned long long)rate);
    if (st->state != ST_RUNNING)
        put(&o, "eta_s: 0\n");
    else if (rate > 0 && st->bytes_total >= st->bytes_done)
        put(&o, "eta_s: %llu\n", (unsigned long long)((st->bytes_total - st->bytes_done) / rate));
    else
        put(&o, "eta_s: -\n");
    ev_format_time(st->started_ms, tbuf, sizeof(tbuf));
    put(&o, "started: %s\n", tbuf);
    if (st->state == ST_RUNNING) {
        put(&o, "finished: -\n");
    } else {
        ev_format_time(st->finished_ms, tbuf, sizeof(tbuf));
        put(&o, "finished: %s\n", tbuf);
    }
    if (st->gen_low != 0)
        put(&o, "gen_low: %08X\n", st->gen_low);
    else
        put(&o, "gen_low: -\n");
    if (st->gen_high != 0)
        put(&o, "gen_high: %08X\n", st->gen_high);
    else
        put(&o, "gen_high: -\n");
    put(&o, "truncated: %s\n", st->state == ST_RUNNING ? "-" : st->truncated);
    if (st->state == ST_RUNNING)
        put(&o, "result: -\n");
    else
        put(&o, "result: %d %s\n", st->result, js_errname(st->result));
    put_line_value(&o, "message", st->message);
out_unlock:
    pthread_mutex_unlock(&st->lock);
    return o.len;
}

/*
 * status.c - state of the running or last backup job, fed by the job
 * thread (control.c) from js_backup's status callback, read by the
 * `status` file and by INFO.
 */
#include "status.h"
#include "archive.h"
#include "events.h"
#include "proto/proto.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum st_state { ST_IDLE = 0, ST_RUNNING, ST_SUCCEEDED, ST_FAILED, ST_CANCELLED };

struct st_status {
    pthread_rwlock_t inst_lock; /* guards inst; taken without lock held */
    js_instance *inst;          /* for the snapshot lines, NULL once closing */
    struct arc *arc;            /* the archiver, NULL: none (guarded by inst_lock) */
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
    int pacer_holding;          /* the backup's pacer is slowing the copy */
    JET_ERR result;
    char message[1024];
};

struct st_status *st_new(void)
{
    struct st_status *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    pthread_mutex_init(&st->lock, NULL);
    pthread_rwlock_init(&st->inst_lock, NULL);
    st->recovering = 1;
    return st;
}

void st_free(struct st_status *st)
{
    if (st == NULL)
        return;
    pthread_mutex_destroy(&st->lock);
    pthread_rwlock_destroy(&st->inst_lock);
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
    st->started_ms = js_time_ms();
    st->finished_ms = 0;
    st->gen_low = st->gen_high = 0;
    st->truncated[0] = '\0';
    st->pacer_holding = 0;
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
    st->pacer_holding = p->pacer_holding;
    pthread_mutex_unlock(&st->lock);
}

void st_job_end(struct st_status *st, JET_ERR err, const char *message, const char *truncated)
{
    pthread_mutex_lock(&st->lock);
    st->finished_ms = js_time_ms();
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

/* The values of a job, one per key of fs/proto's table; num holds the
 * numbers' text.  Called with st->lock held. */
static void job_values(const struct st_status *st, int64_t now, char num[PST_NKEYS][64],
                       const char *val[PST_NKEYS])
{
    int running = st->state == ST_RUNNING;
    int64_t elapsed = (running ? now : st->finished_ms) - st->started_ms;
    uint64_t rate = elapsed > 0 ? st->bytes_done * 1000 / (uint64_t)elapsed : 0;
    static const int nums[] = { PST_JOB, PST_PROGRESS_PERCENT, PST_BYTES_DONE, PST_BYTES_TOTAL,
                                PST_PAGES_VERIFIED, PST_LOG_RECORDS_VERIFIED,
                                PST_RATE_BYTES_PER_S };
    const uint64_t numv[] = { st->job, st->percent, st->bytes_done, st->bytes_total,
                              st->pages_verified, st->log_records_verified, rate };

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        snprintf(num[nums[i]], 64, "%llu", (unsigned long long)numv[i]);
        val[nums[i]] = num[nums[i]];
    }
    val[PST_OPERATION] = st->operation;
    val[PST_PATH] = st->path;
    val[PST_FLAGS] = st->flags;
    val[PST_PHASE] = st->phase;
    if (!running)
        val[PST_ETA_S] = "0";
    else if (rate > 0 && st->bytes_total >= st->bytes_done) {
        snprintf(num[PST_ETA_S], 64, "%llu",
                 (unsigned long long)((st->bytes_total - st->bytes_done) / rate));
        val[PST_ETA_S] = num[PST_ETA_S];
    }
    ev_format_time(st->started_ms, num[PST_STARTED], 64);
    val[PST_STARTED] = num[PST_STARTED];
    if (!running) {
        ev_format_time(st->finished_ms, num[PST_FINISHED], 64);
        val[PST_FINISHED] = num[PST_FINISHED];
    }
    if (st->gen_low != 0) {
        snprintf(num[PST_GEN_LOW], 64, "%08X", st->gen_low);
        val[PST_GEN_LOW] = num[PST_GEN_LOW];
    }
    if (st->gen_high != 0) {
        snprintf(num[PST_GEN_HIGH], 64, "%08X", st->gen_high);
        val[PST_GEN_HIGH] = num[PST_GEN_HIGH];
    }
    if (!running) {
        val[PST_TRUNCATED] = st->truncated;
        snprintf(num[PST_RESULT], 64, "%d %s", st->result, js_errname(st->result));
        val[PST_RESULT] = num[PST_RESULT];
    }
    val[PST_MESSAGE] = st->message;
    val[PST_PACER] = running && st->pacer_holding ? "holding" : "off";
}

void st_set_instance(struct st_status *st, js_instance *inst)
{
    pthread_rwlock_wrlock(&st->inst_lock);
    st->inst = inst;
    pthread_rwlock_unlock(&st->inst_lock);
}

void st_set_archiver(struct st_status *st, struct arc *arc)
{
    pthread_rwlock_wrlock(&st->inst_lock);
    st->arc = arc;
    pthread_rwlock_unlock(&st->inst_lock);
}

/* The archiver's keys, when there is one. */
static void archive_values(struct st_status *st, char num[PST_NKEYS][64], char *errbuf, size_t errcap,
                           const char *val[PST_NKEYS])
{
    struct arc_status as;
    pthread_rwlock_rdlock(&st->inst_lock);
    struct arc *arc = st->arc;
    if (arc != NULL)
        arc_get_status(arc, &as);
    pthread_rwlock_unlock(&st->inst_lock);
    if (arc == NULL)
        return;
    if (as.last_gen) {
        snprintf(num[PST_ARCHIVE_LAST_GEN], 64, "%08X", as.last_gen);
        val[PST_ARCHIVE_LAST_GEN] = num[PST_ARCHIVE_LAST_GEN];
    }
    snprintf(num[PST_ARCHIVE_PENDING], 64, "%llu", (unsigned long long)as.pending);
    val[PST_ARCHIVE_PENDING] = num[PST_ARCHIVE_PENDING];
    /* Seconds, as the key says, to the millisecond: a loss window of 1 or
     * 2 s needs the fraction, and a reader of whole seconds still reads
     * the leading integer. */
    snprintf(num[PST_ARCHIVE_LAG_S], 64, "%llu.%03llu", (unsigned long long)(as.lag_ms / 1000),
             (unsigned long long)(as.lag_ms % 1000));
    val[PST_ARCHIVE_LAG_S] = num[PST_ARCHIVE_LAG_S];
    snprintf(errbuf, errcap, "%s", as.last_error);
    val[PST_ARCHIVE_LAST_ERROR] = errbuf;
}

/* After the job's keys (a reader ignores keys it does not know): the
 * snapshots (SPEC 7), the space the store holds and each one's share. */
static size_t render_snapshots(struct st_status *st, char *buf, size_t cap, size_t len)
{
    js_snapshot_info *all = NULL;
    size_t n = 0;
    uint64_t space = 0;
    int have = 0;
    pthread_rwlock_rdlock(&st->inst_lock);
    if (st->inst != NULL && js_snapshot_list(st->inst, &all, &n) == JET_errSuccess) {
        space = js_snapshot_space(st->inst);
        have = 1;
    }
    pthread_rwlock_unlock(&st->inst_lock);
    if (!have)
        return len;     /* no instance (yet, or any more): the job's keys alone */
    int w = snprintf(buf + len, cap - len, "snapshots: %zu\nsnapshot_space_bytes: %llu\n", n,
                     (unsigned long long)space);
    for (size_t i = 0; i < n && w >= 0 && len + (size_t)w < cap; i++) {
        len += (size_t)w;
        w = snprintf(buf + len, cap - len, "snapshot.%s: bytes_held=%llu pages=%u valid=%s\n", all[i].name,
                     (unsigned long long)all[i].bytes_held, all[i].pages, all[i].valid ? "yes" : "no");
    }
    free(all);
    if (w >= 0 && len + (size_t)w < cap)
        len += (size_t)w;
    buf[len] = '\0';
    return len;
}

size_t st_render(struct st_status *st, char *buf, size_t cap)
{
    char num[PST_NKEYS][64];
    const char *val[PST_NKEYS] = { NULL };
    int64_t now = js_time_ms();
    size_t len;
    char arc_err[512];

    archive_values(st, num, arc_err, sizeof arc_err, val);
    pthread_mutex_lock(&st->lock);
    val[PST_STATE] = state_name(st);
    if (st->job != 0)
        job_values(st, now, num, val);
    /* Under the lock: the values point into st. */
    len = proto_status_write(buf, cap, val);
    pthread_mutex_unlock(&st->lock);
    return len + 1 < cap ? render_snapshots(st, buf, cap, len) : len;
}

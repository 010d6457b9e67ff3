/*
 * events.c - ring of the last EV_KEEP events for the `events` file, fed by
 * the engine's event sink (js_set_event_sink) and by the daemon itself.
 *
 * The sink runs in whatever engine thread raises the event and must not call
 * back into the instance; it only copies the event under ev_log.lock.
 * Messages are made single-line (control characters become spaces) so one
 * event is always one line of the file.
 */
#include "events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

struct ev_entry {
    int64_t time_ms;
    int id;
    int level;
    char msg[EV_MSG_MAX];
};

struct ev_log {
    pthread_mutex_t lock;       /* guards ring, head, count */
    struct ev_entry *ring;      /* EV_KEEP slots */
    size_t head;                /* next slot to write */
    size_t count;               /* slots in use, <= EV_KEEP */
    int use_syslog;             /* immutable */
};

static const char *level_name(int level)
{
    switch (level) {
    case JS_EV_WARNING: return "warning";
    case JS_EV_ERROR: return "error";
    default: return "info";
    }
}

void ev_format_time(int64_t time_ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(time_ms / 1000);
    int ms = (int)(time_ms % 1000);
    struct tm tm;

    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

struct ev_log *ev_new(int use_syslog)
{
    struct ev_log *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->ring = calloc(EV_KEEP, sizeof(*l->ring));
    if (l->ring == NULL) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    l->use_syslog = use_syslog;
    return l;
}

void ev_free(struct ev_log *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->ring);
    free(l);
}

static void add(struct ev_log *l, int64_t time_ms, int id, int level, const char *msg)
{
    struct ev_entry *e;
    size_t i;

    pthread_mutex_lock(&l->lock);
    e = &l->ring[l->head];
    e->time_ms = time_ms;
    e->id = id;
    e->level = level;
    snprintf(e->msg, sizeof(e->msg), "%s", msg != NULL ? msg : "");
    for (i = 0; e->msg[i] != '\0'; i++)
        if ((unsigned char)e->msg[i] < 0x20 || e->msg[i] == 0x7f)
            e->msg[i] = ' ';
    l->head = (l->head + 1) % EV_KEEP;
    if (l->count < EV_KEEP)
        l->count++;
    if (l->use_syslog)
        syslog(level == JS_EV_ERROR ? LOG_ERR : level == JS_EV_WARNING ? LOG_WARNING : LOG_INFO,
               "%d %s", id, e->msg);
    pthread_mutex_unlock(&l->lock);
}

void ev_sink(void *ctx, const js_event *ev)
{
    add(ctx, ev->time_ms, ev->id, ev->level, ev->message);
}

void ev_add(struct ev_log *l, int id, int level, const char *fmt, ...)
{
    char msg[EV_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add(l, js_time_ms(), id, level, msg);
}

char *ev_render(struct ev_log *l, size_t *len)
{
    /* Upper bound of one line: time, id, level, message, separators. */
    const size_t line_max = 32 + 16 + 8 + EV_MSG_MAX + 4;
    char *buf, tbuf[40];
    size_t i, n = 0, cap;

    pthread_mutex_lock(&l->lock);
    cap = l->count * line_max + 1;
    buf = malloc(cap);
    if (buf != NULL) {
        for (i = 0; i < l->count; i++) {
            const struct ev_entry *e = &l->ring[(l->head + EV_KEEP - l->count + i) % EV_KEEP];
            ev_format_time(e->time_ms, tbuf, sizeof(tbuf));
            n += (size_t)snprintf(buf + n, cap - n, "%s %d %s %s\n", tbuf, e->id,
                                  level_name(e->level), e->msg);
        }
        buf[n] = '\0';
        *len = n;
    }
    pthread_mutex_unlock(&l->lock);
    return buf;
}

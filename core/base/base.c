/*
 * base.c - the clock, the sticky-fatal state and the thread tag of the
 * lock wrappers (base.h).
 */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>

#ifndef NDEBUG
_Thread_local char js_thread_tag;
#endif

int64_t js_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t js_time_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t js_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec js_deadline_ms(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    return ts;
}

void health_init(js_health *h, void (*on_fatal)(void *, JET_ERR),
                 void (*on_event)(void *, int, int, const char *), void *ctx)
{
    atomic_store(&h->fatal, 0);
    h->on_fatal = on_fatal;
    h->on_event = on_event;
    h->ctx = ctx;
}

JET_ERR health_set_fatal(js_health *h, JET_ERR err)
{
    JET_ERR want = err ? err : JET_errInstanceUnavailable, none = 0;
    if (atomic_compare_exchange_strong(&h->fatal, &none, want)) {
        if (h->on_fatal)
            h->on_fatal(h->ctx, want);
        return want;
    }
    return none;   /* the error that was there first */
}

void health_event(js_health *h, int id, int level, const char *fmt, ...)
{
    if (!h->on_event)
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->on_event(h->ctx, id, level, msg);
}

int js_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

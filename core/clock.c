/*
 * clock.c - the one millisecond clock of jetsnap and its programs: wall
 * time for what is shown to people (events, status), monotonic time for
 * deadlines and rates that must not jump with the wall clock.
 */
#include "jetsnap.h"

#include <time.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t js_time_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t js_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

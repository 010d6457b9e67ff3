/*
 * events.h - the mount's `events` file: the last EV_KEEP events of the
 * instance, oldest first, one a line `TIME ID LEVEL MESSAGE` (TIME RFC 3339
 * UTC with milliseconds), each also sent to syslog (ident jetsnapfs, opened
 * by main).
 *
 * Locking: ev_log.lock guards the ring; it is a leaf lock (nothing else is
 * taken under it, syslog() excepted).
 */
#ifndef JS_FS_EVENTS_H
#define JS_FS_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

#define EV_KEEP 1000
#define EV_MSG_MAX 1024     /* longer messages are cut */

struct ev_log;

struct ev_log *ev_new(int use_syslog);
void ev_free(struct ev_log *l);

/** js_event_fn for js_set_event_sink(); ctx is the ev_log. */
void ev_sink(void *ctx, const js_event *ev);

/** Add an event of the daemon itself (same path as the engine's). */
void ev_add(struct ev_log *l, int id, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Render every kept event; returns a malloc'd NUL-terminated buffer (its
 *  length in *len) or NULL when out of memory. */
char *ev_render(struct ev_log *l, size_t *len);

/** RFC 3339 UTC with milliseconds: "2026-11-21T21:04:23.123Z"; cap >= 25. */
void ev_format_time(int64_t time_ms, char *buf, size_t cap);

#endif

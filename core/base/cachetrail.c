/*
 * cachetrail.c - a reader of a file in order that leaves the page cache as
 * it found it (cachetrail.h).
 */
#include "base/cachetrail.h"

#include "base/os.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Ask about chunks up to (not including) `to`, as far as the ring has room.
 * An unknown answer (-1) counts as cached: a chunk is dropped only when the
 * kernel said none of it was there. */
static void ask_upto(cache_trail *t, uint64_t to)
{
    to = min_u64(to, t->chunks);
    while (t->asked < to && t->asked - t->decided < CT_RING) {
        uint64_t off = t->asked * CT_CHUNK;
        t->cold[t->asked % CT_RING] = os_cache_resident(t->fd, off, CT_CHUNK) == 0;
        t->asked++;
    }
}

/* Decide the chunks below `to` (at most those asked about): drop each run
 * of cold ones with one call. */
static void decide_upto(cache_trail *t, uint64_t to)
{
    uint64_t run = UINT64_MAX;
    to = min_u64(to, t->asked);
    for (uint64_t c = t->decided; c < to; c++) {
        if (t->cold[c % CT_RING]) {
            if (run == UINT64_MAX)
                run = c;
        } else if (run != UINT64_MAX) {
            os_cache_drop(t->fd, run * CT_CHUNK, (c - run) * CT_CHUNK);
            run = UINT64_MAX;
        }
    }
    if (run != UINT64_MAX)
        os_cache_drop(t->fd, run * CT_CHUNK, (to - run) * CT_CHUNK);
    if (to > t->decided)
        t->decided = to;
}

void ct_init(cache_trail *t, int fd, uint64_t size, uint64_t ahead_bytes, uint64_t lag_bytes)
{
    uint64_t lag_chunks = (lag_bytes + CT_CHUNK - 1) / CT_CHUNK;
    t->fd = fd;
    t->chunks = (size + CT_CHUNK - 1) / CT_CHUNK;
    t->ahead = (ahead_bytes + CT_CHUNK - 1) / CT_CHUNK;
    /* Room in the ring for the chunks behind the front not yet decided
     * (lag, and the one the front is in) besides those asked ahead. */
    if (t->ahead + lag_chunks + 2 > CT_RING)
        t->ahead = lag_chunks + 2 < CT_RING ? CT_RING - lag_chunks - 2 : 1;
    t->lag = lag_bytes;
    t->front = t->asked = t->decided = 0;
    if (fd >= 0)
        ask_upto(t, t->ahead);
}

void ct_read(cache_trail *t, uint64_t off, uint64_t len)
{
    if (t->fd < 0 || len == 0)
        return;
    uint64_t first = off / CT_CHUNK;
    if (first > t->asked) {
        /* Out of order, past what was asked about: what the reader skipped
         * stays as it is, and the trail starts again here (the chunk just
         * read now looks cached, so it stays too). */
        t->asked = t->decided = first;
        t->front = off;
    }
    if (off + len > t->front)
        t->front = off + len;
    ask_upto(t, (t->front + CT_CHUNK - 1) / CT_CHUNK + t->ahead);
    if (t->front > t->lag)
        decide_upto(t, (t->front - t->lag) / CT_CHUNK);
}

void ct_finish(cache_trail *t)
{
    if (t->fd < 0)
        return;
    decide_upto(t, (t->front + CT_CHUNK - 1) / CT_CHUNK);
    t->fd = -1;
}

/*
 * cachetrail.h - a reader of a file in order that leaves the page cache as
 * it found it.
 *
 * A backup copying the database, or a snapshot's reader (tar of
 * MOUNTPOINT/snapshots/NAME), reads the whole file once.  Left alone, the
 * kernel keeps every page it read: the live instance's own cached pages
 * are pushed out by pages nobody reads again, and a snapshot read through
 * the mount holds the file twice (the database file's pages and the
 * mount's).  So the trail asks, well before the reader gets there (beyond
 * the kernel's read-ahead of the reader's own reads), whether any page of
 * each chunk of the file is cached, and once the reader is past a chunk
 * that was not, drops it.  Chunks that were cached stay cached.
 *
 * Advice only: what it does changes what is cached, never what is read.
 * A reader that leaves the order (a jump ahead of what the trail asked
 * about) starts the trail again where it landed; the chunks the trail had
 * not decided stay cached.  Not thread-safe: a reader shared by threads
 * holds its own lock around ct_read.
 */
#ifndef JS_CACHETRAIL_H
#define JS_CACHETRAIL_H

#include <stdint.h>

/** Bytes per chunk, the unit asked about and dropped: at least the largest
 *  page-cache folio expected (the kernel drops only the folios wholly
 *  inside a range, and read-ahead fills the cache with folios of up to
 *  2 MiB). */
#define CT_CHUNK (2u << 20)
/** Chunks remembered between the one asked about last and the oldest not
 *  yet decided: bounds ahead + lag to 128 MiB. */
#define CT_RING 64u

typedef struct cache_trail {
    int fd;                      /* the file read; -1: the trail does nothing */
    uint64_t chunks;             /* chunks of the file (the last may be short) */
    uint64_t ahead;              /* chunks asked about ahead of the front */
    uint64_t lag;                /* bytes behind the front never dropped */
    uint64_t front;              /* the furthest byte read, plus one */
    uint64_t asked;              /* chunks below asked have their answer in cold[] */
    uint64_t decided;            /* chunks below decided were dropped or kept */
    unsigned char cold[CT_RING]; /* chunk c's answer at c % CT_RING: 1 none of it was cached */
} cache_trail;

/** Start a trail over the size bytes of fd (not owned), and ask about the
 *  first ahead_bytes of it.  lag_bytes behind the furthest byte read are
 *  never dropped: reads still in flight there (another thread's) would
 *  have to go to the disk again. */
void ct_init(cache_trail *t, int fd, uint64_t size, uint64_t ahead_bytes, uint64_t lag_bytes);
/** The reader reads, or has read, [off, off+len): ask about the chunks now
 *  ahead_bytes ahead, and drop those more than lag_bytes behind the
 *  furthest byte that were cold.  Told before the read, the lag must cover
 *  the read itself. */
void ct_read(cache_trail *t, uint64_t off, uint64_t len);
/** The reader is done (no read in flight): drop every cold chunk it passed
 *  that is not dropped yet.  The trail does nothing more. */
void ct_finish(cache_trail *t);

#endif

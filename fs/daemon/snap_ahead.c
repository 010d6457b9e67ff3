/*
 * snap_ahead.c - a snapshot's jetsnap.edb stored into the mount's page
 * cache ahead of a reader that reads it in order (tar, cp, rsync,
 * sha256sum), when the mount has -o snapshot_store_ahead (off by default).
 *
 * Why.  On this kernel (6.18) a FUSE file's page cache holds only 4 KiB
 * folios, and a cold read fills it in the reader's own read-ahead: the
 * reader allocates and inserts every page itself, where ext4 inserts large
 * folios.  A snapshot never changes, so the daemon may put its bytes in
 * the kernel's cache before they are asked for
 * (fuse_lowlevel_notify_store): the reader then finds them cached, and the
 * inserting moves to a daemon worker, on the other CPU.
 *
 * Why optional.  Whether that pays depends on the host.  On a VM whose
 * host took 20-44% of the CPUs (steal) and made fresh memory dear, tar
 * spent 0.58-0.66 s of system time per GiB through the mount against
 * 0.37-0.46 s on ext4, and storing ahead took a cold tar of a snapshot
 * from 0.65-0.69x of a plain copy to 1.10-1.39x (scripts/bench_snap.sh).
 * On a VM of the same kind with no steal, the reader's system time was
 * the same through the mount as on ext4, and storing ahead, which copies
 * every byte twice (out of the engine, then into the cache) where a READ
 * reply is spliced, made the same tar slower: timed tar by tar, the two
 * daemons alternating, the median cold tar of 1 GiB took 1.47-1.66 s with
 * it against 1.30-1.37 s without (three sets of 4-6 rounds), 1.30 against
 * 1.00 s with the daemon's files cached.  So the kernel's own read-ahead
 * is the default, and bench_snap prints a row with this on so an
 * administrator can see which wins on a host.
 *
 * Where the reader is.  The daemon sees no read of a cached page, so the
 * first page of every AHEAD_TRIP bytes is left out ("trip wires"): the
 * reader's read-ahead asks for it, and the READ moves the goal on.  Reads
 * near the stream's front (or within what was stored) continue the stream;
 * a read elsewhere starts a new one.  The window is twice what the stream
 * has read in order, up to AHEAD_MAX, and none before AHEAD_START: a
 * reader of a few pages costs nothing.
 *
 * Bytes are copied out of the engine (js_snapshot_read, under the
 * instance's and the store's read locks, as a READ reads) and then stored
 * with no lock held: storing may wait for a page that a READ in flight has
 * locked, and that READ must find the engine free.  The READ needs a
 * worker, so at most AHEAD_PUSHERS workers of the mount store at once (the
 * loop runs up to 16).  A handle's pusher is claimed before the READ that
 * started it is answered, so its RELEASE, which the answer allows, waits
 * for the pusher (mnt_ahead_close).
 *
 * Locking: mnt.ahead_lock guards every handle's mnt_ahead and
 * mnt.ahead_pushers; a leaf lock (nothing that takes a lock or blocks
 * runs under it, but the wait on mnt.ahead_cond).
 *
 * Cost: a stream keeps up to AHEAD_MAX of page cache ahead, allocated by
 * the daemon (its memory cgroup, not the reader's), and a reader that
 * stops early has had up to twice what it read stored.
 */
#include "mount_int.h"

#include <string.h>
#include <unistd.h>

#define AHEAD_TRIP (16ull << 20)    /* a trip wire every 16 MiB (each one a READ the reader waits for) */
#define AHEAD_SLACK (8ull << 20)    /* READs of one read-ahead arrive out of order by less */
#define AHEAD_START (2ull << 20)    /* read in order before storing ahead */
#define AHEAD_MAX (128ull << 20)    /* the largest window (measured: 128 beat 32 MiB) */
#define AHEAD_PUSHERS 2

static uint64_t page_bytes(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096;
}

void mnt_ahead_open(struct mnt_fh *fh, uint64_t size)
{
    memset(&fh->ahead, 0, sizeof(fh->ahead));
    fh->ahead.size = size;
}

/* Where the stream is known to be cached up to: its front, or what was
 * stored past it. */
static uint64_t reach_of(const struct mnt_ahead *a)
{
    return a->stored > a->front ? a->stored : a->front;
}

/* The stream's state after a READ of [off, end).  Only bytes the reader
 * read count as read in order: the READ's own, and those of the gap before
 * it that were stored (the reader found them cached on its way), never
 * those of a gap nobody stored. */
static void note_read(struct mnt_ahead *a, uint64_t off, uint64_t end)
{
    if (off + AHEAD_SLACK < a->front || off > reach_of(a) + AHEAD_SLACK) {
        a->stream++;            /* elsewhere: a new stream starts here */
        a->front = end;
        a->in_order = end - off;
        a->stored = end;
        return;
    }
    if (end <= a->front) {      /* behind the front: answered late */
        a->in_order += end - off;
        return;
    }
    if (off > a->front && a->stored > a->front)
        a->in_order += (off < a->stored ? off : a->stored) - a->front;
    a->in_order += end - (off > a->front ? off : a->front);
    a->front = end;
}

/* Where storing should have reached for the stream. */
static uint64_t goal_of(const struct mnt_ahead *a)
{
    if (a->in_order < AHEAD_START)
        return 0;
    uint64_t window = a->in_order > AHEAD_MAX / 2 ? AHEAD_MAX : 2 * a->in_order;
    return a->front + window < a->size ? a->front + window : a->size;
}

int mnt_ahead_note(struct mnt *m, struct mnt_fh *fh, uint64_t off, size_t size)
{
    struct mnt_ahead *a = &fh->ahead;
    int claimed = 0;

    if (!m->store_ahead)
        return 0;
    pthread_mutex_lock(&m->ahead_lock);
    note_read(a, off, off + size);
    if (!a->pusher && !a->failed && !a->closing && m->ahead_pushers < AHEAD_PUSHERS &&
        goal_of(a) > reach_of(a)) {
        a->pusher = 1;
        m->ahead_pushers++;
        claimed = 1;
    }
    pthread_mutex_unlock(&m->ahead_lock);
    return claimed;
}

/* The next range to store, [*from, *to), and the stream it is for; 0 when
 * there is none (done, failed or closing).  ahead_lock held. */
static int next_range(const struct mnt_ahead *a, uint64_t *from, uint64_t *to, uint64_t *stream)
{
    uint64_t goal = goal_of(a), f = reach_of(a);
    if (a->failed || a->closing)
        return 0;
    if (f % AHEAD_TRIP == 0)
        f += page_bytes();      /* the trip wire: left for the reader to ask */
    if (f >= goal)
        return 0;
    uint64_t t = (f / AHEAD_TRIP + 1) * AHEAD_TRIP;
    if (t > f + MNT_MAX_READ)
        t = f + MNT_MAX_READ;
    *from = f;
    *to = t < goal ? t : goal;
    *stream = a->stream;
    return 1;
}

/* Copy [from, to) of the image into buf and store it into the kernel's
 * cache of ino; 0, or nonzero when storing ahead should stop. */
static int store_range(struct mnt *m, struct mnt_fh *fh, fuse_ino_t ino, uint64_t from, uint64_t to, char *buf)
{
    size_t got = 0;
    JET_ERR err = JET_errNotInitialized;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL)
        err = js_snapshot_read(fh->snap, from, buf, (size_t)(to - from), &got);
    pthread_rwlock_unlock(&m->inst_lock);
    if (err != JET_errSuccess || got != to - from)
        return 1;   /* the reader's own READ meets and answers the error */
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(got);
    bv.buf[0].mem = buf;
    return fuse_lowlevel_notify_store(m->se, ino, (off_t)from, &bv, 0) != 0;
}

void mnt_ahead_push(struct mnt *m, struct mnt_fh *fh, fuse_ino_t ino, char *buf)
{
    struct mnt_ahead *a = &fh->ahead;
    uint64_t from, to, stream;

    pthread_mutex_lock(&m->ahead_lock);
    while (!fuse_session_exited(m->se) && next_range(a, &from, &to, &stream)) {
        pthread_mutex_unlock(&m->ahead_lock);
        int stop = store_range(m, fh, ino, from, to, buf);
        pthread_mutex_lock(&m->ahead_lock);
        if (stop)
            a->failed = 1;
        else if (a->stream == stream && a->stored < to)
            a->stored = to;
    }
    a->pusher = 0;
    m->ahead_pushers--;
    pthread_cond_broadcast(&m->ahead_cond);
    pthread_mutex_unlock(&m->ahead_lock);
}

void mnt_ahead_close(struct mnt *m, struct mnt_fh *fh)
{
    pthread_mutex_lock(&m->ahead_lock);
    fh->ahead.closing = 1;
    while (fh->ahead.pusher)
        pthread_cond_wait(&m->ahead_cond, &m->ahead_lock);
    pthread_mutex_unlock(&m->ahead_lock);
}

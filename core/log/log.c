/*
 * log.c - the log writer: appending transactions, group commit, rolling
 * generations.  The file format is described in loggen.c.
 *
 * Group commit: appenders copy their records into the pending blocks under
 * log->lock.  A committer that needs durability becomes the leader when no
 * flush runs: it seals every pending block (the last, partial one is padded
 * and never written again), copies them to the I/O buffer, drops the lock,
 * writes and fdatasyncs, drops the blocks from the pending buffer once they
 * are durable, and wakes everyone whose records are now durable.
 * Committers arriving meanwhile append after the sealed blocks and are
 * served by the next flush: one fsync for all of them.
 *
 * Rolling (full generation, or on demand) happens under log->lock once no
 * flush runs, in this crash-safe order:
 *   1. edbtmp.log (pre-built in the background when possible): write the
 *      next header; fdatasync
 *   2. write the pending blocks and the close block in one write; fdatasync
 *   3. rename edb.log -> edbXXXXXXXX.log
 *   4. rename edbtmp.log -> edb.log; fsync the directory
 * A crash after 2 leaves a closed edb.log, after 3 no edb.log at all; open
 * (log_finish_open) completes the roll in both cases.
 *
 * Failures (the rule is in base.h and log.h):
 *  - A log write that fails for lack of space (ENOSPC, EDQUOT) is
 *    transient.  The written blocks leave the pending buffer only once they
 *    are durable, so a failed flush leaves them there: the committers it
 *    carried get JET_errLogDiskFull, log->full refuses new transactions,
 *    and the next flush (the background thread every 50 ms, or
 *    js_txn_begin) rewrites the same blocks at the same position, after
 *    the last acknowledged one.  Nothing acknowledged is ever rewritten.
 *  - A roll makes the next generation's file (the step that takes new
 *    space) before it writes anything to the current one, so a full disk
 *    leaves the current generation open.  A transaction whose records were
 *    partly appended when its roll failed is cancelled by an abort record
 *    (REC_ABORT, format in loggen.c), for which log_room() always keeps
 *    space; so is a transaction recovery found unfinished at the end of the
 *    log (log_abort_unfinished), before anything else is appended.
 *  - Any other failed write, and a failed rename, is sticky: every later
 *    append or flush fails with JET_errLogWriteFail and the instance turns
 *    fatal (through the js_health the log was given).
 */
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLK_DATA 1
#define BLK_CLOSE 2

/* Position of the next record, for callers that own lg alone (open,
 * create) or hold log->lock. */
static uint64_t position(const log_state *lg)
{
    return LSN_MAKE(lg->gen, (uint64_t)lg->blk * LOG_BLOCK + LOG_BLK_HDR + lg->used);
}

static uint64_t log_position(log_state *lg)
{
    JS_ASSERT_HELD(&lg->lock);
    return position(lg);
}

uint64_t log_position_now(log_state *lg)
{
    js_mutex_lock(&lg->lock);
    uint64_t pos = position(lg);
    js_mutex_unlock(&lg->lock);
    return pos;
}

uint64_t log_durable_now(log_state *lg)
{
    js_mutex_lock(&lg->lock);
    uint64_t flushed = lg->flushed;
    js_mutex_unlock(&lg->lock);
    return flushed;
}

/* The instance's sticky error (0: none).  health is NULL only while js_create
 * or a restore owns lg alone. */
static JET_ERR log_sticky(log_state *lg)
{
    return lg->health ? health_fatal(lg->health) : 0;
}

/* A write that cannot go on: sticky for the whole instance. */
static JET_ERR log_fatal(log_state *lg, JET_ERR cause)
{
    (void)cause;
    return lg->health ? health_set_fatal(lg->health, JET_errLogWriteFail) : JET_errLogWriteFail;
}

/* Sort a failed log write: lack of space (and of memory, which fails
 * before any write) leaves the log as it was and is retried later; any
 * other error is sticky. */
static JET_ERR log_fail(log_state *lg, JET_ERR err)
{
    if (err == JET_errDiskFull || err == JET_errLogDiskFull)
        return JET_errLogDiskFull;
    if (err == JET_errOutOfMemory)
        return err;
    return log_fatal(lg, err);
}

/* Make room in the pending buffer for block blk. */
static JET_ERR pend_reserve(log_state *lg, uint32_t blk)
{
    size_t need = (size_t)(blk - lg->pend_first + 1) * LOG_BLOCK;
    if (need <= lg->pend_cap)
        return JET_errSuccess;
    size_t cap = lg->pend_cap ? lg->pend_cap : 64 * LOG_BLOCK;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(lg->pend, cap);
    if (!p)
        return js_fail(JET_errOutOfMemory, "log buffer of %zu bytes", cap);
    memset(p + lg->pend_cap, 0, cap - lg->pend_cap);
    lg->pend = p;
    lg->pend_cap = cap;
    return JET_errSuccess;
}

/* Copy len bytes into the pending blocks.  The room is reserved first, so
 * a failure appends nothing (half a record would garble the stream). */
static JET_ERR append_bytes(log_state *lg, const void *data, size_t len)
{
    JS_ASSERT_HELD(&lg->lock);
    const uint8_t *src = data;
    JET_ERR err = pend_reserve(lg, lg->blk + (uint32_t)((lg->used + len) / LOG_PAYLOAD));
    if (err)
        return err;
    while (len) {
        uint8_t *blk = lg->pend + (size_t)(lg->blk - lg->pend_first) * LOG_BLOCK;
        size_t room = LOG_PAYLOAD - lg->used;
        size_t take = len < room ? len : room;
        memcpy(blk + LOG_BLK_HDR + lg->used, src, take);
        lg->used += (uint32_t)take;
        src += take;
        len -= take;
        if (lg->used == LOG_PAYLOAD) {
            lg->blk++;
            lg->used = 0;
        }
    }
    return JET_errSuccess;
}

/* Payload bytes still free in this generation for transaction records.
 * The last block is kept for the close block, and the one before it for
 * an abort record (append_abort), so that a transaction whose roll fails
 * halfway can always be cancelled in the generation that holds its
 * records. */
static uint64_t log_room(const log_state *lg)
{
    uint32_t last_data = lg->nblocks - 3;
    if (lg->nblocks < 4 || lg->blk > last_data)
        return 0;
    return (uint64_t)(last_data - lg->blk) * LOG_PAYLOAD + (LOG_PAYLOAD - lg->used);
}

/* Seal the blocks appended since the last seal, in order, extending the
 * digest; a partial last block is padded and never written to again.
 * Blocks sealed earlier whose write failed stay as they are (their CRC is
 * in the digest once), so a retry rewrites the very same bytes. */
static void seal_pending(log_state *lg)
{
    JS_ASSERT_HELD(&lg->lock);
    uint32_t end = lg->blk + (lg->used ? 1 : 0);
    for (uint32_t b = lg->sealed; b < end; b++) {
        uint8_t *blk = lg->pend + (size_t)(b - lg->pend_first) * LOG_BLOCK;
        uint32_t used = (b == lg->blk) ? lg->used : LOG_PAYLOAD;
        pg_put32(blk + 4, lg->gen);
        pg_put32(blk + 8, b);
        pg_put16(blk + 12, (uint16_t)used);
        blk[14] = BLK_DATA;
        blk[15] = 0;
        memset(blk + LOG_BLK_HDR + used, 0, LOG_PAYLOAD - used);
        loggen_seal_block(blk);
        uint32_t crc = pg_u32(blk);
        lg->digest = js_crc32c(lg->digest, &crc, 4);
    }
    if (end > lg->sealed)
        lg->sealed = end;
    if (lg->used) {
        lg->blk++;
        lg->used = 0;
    }
}

/* Drop the first n blocks of the pending buffer (written and durable). */
static void pend_drop(log_state *lg, uint32_t n)
{
    JS_ASSERT_HELD(&lg->lock);
    size_t cap_blocks = lg->pend_cap / LOG_BLOCK;
    size_t have = (size_t)(lg->blk - lg->pend_first) + 1;
    if (have > cap_blocks)
        have = cap_blocks;
    size_t live = have - n;
    memmove(lg->pend, lg->pend + (size_t)n * LOG_BLOCK, live * LOG_BLOCK);
    memset(lg->pend + live * LOG_BLOCK, 0, (size_t)n * LOG_BLOCK);
    lg->pend_first += n;
}

/* Under lg->lock: note a lack of space (now_full) or a successful write;
 * returns the event to raise once the lock is released (0: none), so the
 * administrator hears once when the log starts lacking space and once
 * when it is over, not at every retry. */
static int space_transition(log_state *lg, int now_full)
{
    JS_ASSERT_HELD(&lg->lock);
    if (now_full == lg->space_said)
        return 0;
    lg->space_said = now_full;
    return now_full ? 1 : -1;
}

static void space_event(log_state *lg, int ev)
{
    if (!lg->health)
        return;
    if (ev > 0)
        health_event(lg->health, 0, JS_EV_WARNING,
                     "no space for the log in %s (%s); writes are refused until space is freed", lg->dir,
                     js_errdetail());
    else if (ev < 0)
        health_event(lg->health, 0, JS_EV_INFO, "the log in %s can be written again; writes resume", lg->dir);
}

/* Only the flush leader (lg->flushing) writes these, so the update needs
 * no lock; readers see one of two consecutive values. */
static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A committer's wait for its flush (group commit included, and the time
 * to be scheduled again after it), folded into a moving average.  Many
 * threads update it without a lock: an update lost to a race only makes
 * the average a little older. */
static void note_flush_wait(log_state *lg, int64_t us)
{
    uint32_t sample = us > UINT32_MAX ? UINT32_MAX : us < 0 ? 0 : (uint32_t)us;
    uint32_t prev = atomic_load_explicit(&lg->flush_us, memory_order_relaxed);
    uint32_t next = prev ? (uint32_t)(((uint64_t)prev * 7 + sample) / 8) : sample;
    atomic_store_explicit(&lg->flush_us, next, memory_order_relaxed);
}

uint32_t log_flush_latency(log_state *lg, uint64_t *count)
{
    if (count)
        *count = atomic_load_explicit(&lg->flush_count, memory_order_relaxed);
    return atomic_load_explicit(&lg->flush_us, memory_order_relaxed);
}

JET_ERR log_flush(log_state *lg, uint64_t lsn)
{
    JET_ERR err = JET_errSuccess;
    int ev = 0;
    if (!lg->enabled)
        return JET_errSuccess;
    JS_ASSERT_NOT_HELD(&lg->lock);
    int64_t t0 = mono_us();
    js_mutex_lock(&lg->lock);
    int waits = lsn > lg->flushed;
    for (;;) {
        if ((err = log_sticky(lg)) != 0)
            break;
        if (lsn <= lg->flushed)
            break;
        if (lg->flushing) {
            /* A flush that fails for lack of space fails exactly the
             * commits it carried; a later one retries them. */
            uint64_t fails = lg->nfail;
            js_cond_wait(&lg->done, &lg->lock);
            if (lg->nfail != fails && lsn <= lg->fail_target && lsn > lg->flushed) {
                err = js_fail(JET_errLogDiskFull, "no space to write the log");
                break;
            }
            continue;
        }
        seal_pending(lg);
        uint32_t first = lg->pend_first;
        uint32_t n = lg->sealed - first;
        uint64_t target = log_position(lg);
        if (n == 0) {
            lg->flushed = target;
            break;
        }
        /* The blocks stay in the pending buffer until they are durable:
         * a failed write leaves them for the next flush, which rewrites
         * them at the same position (after the last acknowledged block). */
        size_t bytes = (size_t)n * LOG_BLOCK;
        if (lg->io_cap < bytes) {
            uint8_t *io = realloc(lg->io, bytes);
            if (!io) {
                err = js_fail(JET_errOutOfMemory, "log I/O buffer of %zu bytes", bytes);
                break;
            }
            lg->io = io;
            lg->io_cap = bytes;
        }
        memcpy(lg->io, lg->pend, bytes);
        lg->flushing = 1;
        int fd = lg->fd;
        char path[PATH_MAX];
        memcpy(path, lg->cur_path, sizeof path);
        js_mutex_unlock(&lg->lock);

        err = os_pwrite(fd, path, lg->io, bytes, (uint64_t)first * LOG_BLOCK);
        if (!err)
            err = os_fsync(fd, path);
        if (!err)
            atomic_fetch_add_explicit(&lg->flush_count, 1, memory_order_relaxed);

        js_mutex_lock(&lg->lock);
        lg->flushing = 0;
        if (!err) {
            pend_drop(lg, n);
            if (target > lg->flushed)
                lg->flushed = target;
            lg->full = 0;
            ev = space_transition(lg, 0);
        } else if ((err = log_fail(lg, err)) == JET_errLogDiskFull) {
            lg->nfail++;
            lg->fail_target = target;
            lg->full = err;
            ev = space_transition(lg, 1);
        }
        pthread_cond_broadcast(&lg->done);
        if (err)
            break;
    }
    js_mutex_unlock(&lg->lock);
    if (waits && !err)
        note_flush_wait(lg, mono_us() - t0);
    space_event(lg, ev);
    if (err)
        return js_fail(err, "log %s: write failed (%s)", lg->cur_path, js_errdetail());
    return JET_errSuccess;
}

JET_ERR log_flush_all(log_state *lg)
{
    return lg->enabled ? log_flush(lg, log_position_now(lg)) : JET_errSuccess;
}

JET_ERR log_retry_stalled(log_state *lg)
{
    if (!lg->enabled)
        return JET_errSuccess;
    js_mutex_lock(&lg->lock);
    int stalled = lg->full != 0;
    uint64_t pos = log_position(lg);
    js_mutex_unlock(&lg->lock);
    return stalled ? log_flush(lg, pos) : JET_errSuccess;
}

static void tmp_path(const log_state *lg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", lg->dir, JS_LOG_TMP_FILE);
}

/* Pre-build edbtmp.log (allocated, zero) for the next roll when there is
 * none, so a roll does not allocate a file while committers wait (log_tick,
 * without log->lock).  Its zeros are written and made durable here, off the
 * commit path: then each flush of the generation writes its data alone,
 * with no extent conversion and inode write (os_write_zeros), which
 * measured 136 -> 91 us per 4 KiB fdatasync on this machine's ext4.  The
 * written pages stay in the page cache (no drop), so a flush's partial
 * page write does not read the page back first.  The cost is the zeros'
 * own writes, which a commit's flush may queue behind: measured with 50
 * clients of 100-byte SETs, 82k -> 106-110k SETs/s and mean latency
 * 0.53 -> 0.37 ms, but p99 0.81-0.86 -> 0.94-1.0 ms (1 MiB steps: 1.0-1.05;
 * fewer zeros per tick left the spare unready and lost both).
 * Built a step at a time: spare_lock, which a roll takes holding
 * log->lock, is held for one step only, and a tick writes at most
 * SPARE_PER_TICK (lazy commits are flushed every tick; a large
 * log_file_size takes several ticks). */
#define SPARE_STEP (64u << 10)   /* a log flush queued behind one waits little */
#define SPARE_PER_TICK (8u << 20)

/* Drop a half-built edbtmp.log (spare_lock held): a failure only means the
 * next roll allocates the file itself; a partly allocated file would hold
 * space a full disk needs. */
static void prep_drop(log_state *lg, const char *tmp, int unlink_it)
{
    JS_ASSERT_HELD(&lg->spare_lock);
    os_close(lg->prep_fd);
    lg->prep_fd = -1;
    lg->prep_off = 0;
    if (unlink_it)
        (void)os_unlink(tmp, 1);
}

/* One step of building the spare (SPARE_STEP bytes of zeros): 1 when there
 * is more to do. */
static int spare_step(log_state *lg, const char *tmp)
{
    JS_ASSERT_HELD(&lg->spare_lock);
    JET_ERR err = JET_errSuccess;
    if (lg->spare_fd >= 0 || !lg->file_size)
        return 0;
    if (lg->prep_fd < 0) {
        err = os_open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600, &lg->prep_fd);
        if (!err)
            err = os_allocate(lg->prep_fd, tmp, lg->file_size);
        lg->prep_off = 0;
    }
    if (!err && lg->prep_off < lg->file_size) {
        uint64_t n = lg->file_size - lg->prep_off < SPARE_STEP ? lg->file_size - lg->prep_off : SPARE_STEP;
        err = os_write_zeros(lg->prep_fd, tmp, lg->prep_off, n);
        if (!err)   /* written back as it goes: the final fsync finds little to write */
            err = os_writeback_behind(lg->prep_fd, tmp, lg->prep_off, n, SPARE_STEP, 0);
        if (!err)
            lg->prep_off += n;
    }
    if (!err && lg->prep_off >= lg->file_size) {
        err = os_fsync(lg->prep_fd, tmp);
        if (!err) {
            lg->spare_fd = lg->prep_fd;
            lg->prep_fd = -1;
            return 0;
        }
    }
    if (err) {
        js_errclear();
        prep_drop(lg, tmp, 1);
        return 0;
    }
    return 1;
}

static void log_prepare_spare(log_state *lg)
{
    char tmp[PATH_MAX];
    tmp_path(lg, tmp, sizeof tmp);
    for (uint64_t done = 0; done < SPARE_PER_TICK; done += SPARE_STEP) {
        js_mutex_lock(&lg->spare_lock);
        int more = spare_step(lg, tmp);
        js_mutex_unlock(&lg->spare_lock);
        if (!more)
            break;
    }
}

/* edbtmp.log holding generation gen's header, durable: the pre-built spare
 * when there is one, else a new file, its zeros written when fill (no
 * committer waits: creation and open; see log_prepare_spare for why a
 * generation is written, not only reserved).  *fd_out receives the descriptor;
 * spare_lock stays held until the caller has renamed edbtmp.log away
 * (promote_next) or handed the file back (keep_spare).  On failure nothing
 * is left behind and spare_lock is released. */
static JET_ERR create_tmp_gen(log_state *lg, uint32_t gen, int64_t created, int64_t prev_created,
                              uint32_t prev_digest, uint32_t prev_blocks, int fill, int *fd_out)
{
    char tmp[PATH_MAX];
    tmp_path(lg, tmp, sizeof tmp);
    int fd = -1;
    uint8_t blk[LOG_BLOCK];
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&lg->spare_lock);
    if (lg->spare_fd >= 0) {
        fd = lg->spare_fd;
        lg->spare_fd = -1;
    } else {
        /* In a roll, reserved only, not written: writing the zeros here
         * would make the fsync below, which committers may wait for, write
         * the whole file.  A half-built spare is the same file: dropped. */
        if (lg->prep_fd >= 0)
            prep_drop(lg, tmp, 0);
        err = os_open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600, &fd);
        if (!err)
            err = os_allocate(fd, tmp, lg->file_size);
        if (!err && fill)
            err = os_write_zeros(fd, tmp, 0, lg->file_size);
    }
    if (err)
        goto fail;
    loggen_hdr h = { .gen = gen, .created = created, .prev_created = prev_created,
                     .prev_digest = prev_digest, .prev_blocks = prev_blocks,
                     .file_size = lg->file_size, .page_size = lg->page_size };
    memcpy(h.log_sig, lg->log_sig, JS_SIG_LEN);
    memcpy(h.db_sig, lg->db_sig, JS_SIG_LEN);
    loggen_encode_header(&h, blk);
    err = os_pwrite(fd, tmp, blk, LOG_BLOCK, 0);
    if (!err)
        err = os_fsync(fd, tmp);
    if (err)
        goto fail;
    *fd_out = fd;
    return JET_errSuccess;
fail:
    os_close(fd);
    (void)os_unlink(tmp, 1);   /* best effort: the roll already failed */
    js_mutex_unlock(&lg->spare_lock);
    return err;
}

/* Give a prepared edbtmp.log back as the spare (a roll that failed after
 * create_tmp_gen): the next roll rewrites its header.  Releases spare_lock. */
static void keep_spare(log_state *lg, int fd)
{
    JS_ASSERT_HELD(&lg->spare_lock);
    lg->spare_fd = fd;
    js_mutex_unlock(&lg->spare_lock);
}

/* Steps 3-4 of a roll: edbtmp.log (fd, from create_tmp_gen, spare_lock
 * held) becomes edb.log for closed_gen + 1, the current file (already
 * closed by its close block) becomes edbXXXXXXXX.log.  A failure here is
 * sticky: the current generation is closed on disk, and open finishes the
 * roll. */
static JET_ERR promote_next(log_state *lg, uint32_t closed_gen, int64_t created, int fd, int have_current)
{
    JS_ASSERT_HELD(&lg->spare_lock);
    char closed[PATH_MAX], tmp[PATH_MAX];
    JET_ERR err = JET_errSuccess;
    loggen_name(closed, sizeof closed, lg->dir, closed_gen);
    tmp_path(lg, tmp, sizeof tmp);
    if (have_current) {
        err = os_rename(lg->cur_path, closed);
        if (err)
            goto fail;
    }
    err = os_rename(tmp, lg->cur_path);
    if (err)
        goto fail;
    js_mutex_unlock(&lg->spare_lock);
    err = os_fsync_dir(lg->dir);
    if (err) {
        os_close(fd);
        return err;
    }
    os_close(lg->fd);
    lg->fd = fd;
    lg->gen = closed_gen + 1;
    lg->blk = 1;
    lg->used = 0;
    lg->pend_first = 1;
    lg->sealed = 1;
    lg->digest = 0;
    lg->created = created;
    lg->flushed = position(lg);
    return JET_errSuccess;
fail:
    os_close(fd);
    js_mutex_unlock(&lg->spare_lock);
    return err;
}

/* The close block for index lg->blk, sealed, into blk. */
static void encode_close_block(const log_state *lg, uint8_t *blk)
{
    memset(blk, 0, LOG_BLOCK);
    pg_put32(blk + 4, lg->gen);
    pg_put32(blk + 8, lg->blk);
    pg_put16(blk + 12, 16);
    blk[14] = BLK_CLOSE;
    pg_put32(blk + LOG_BLK_HDR, lg->blk);
    pg_put32(blk + LOG_BLK_HDR + 4, lg->digest);
    pg_put64(blk + LOG_BLK_HDR + 8, (uint64_t)js_time_ms());
    loggen_seal_block(blk);
}

static JET_ERR write_close_block(log_state *lg)
{
    uint8_t blk[LOG_BLOCK];
    encode_close_block(lg, blk);
    JET_ERR err = os_pwrite(lg->fd, lg->cur_path, blk, LOG_BLOCK, (uint64_t)lg->blk * LOG_BLOCK);
    if (!err)
        err = os_fsync(lg->fd, lg->cur_path);
    return err;
}

/* Wait (releasing lg->lock meanwhile) until no flush is writing.  Anything
 * read from lg before this call may have changed after it: a roll may have
 * happened while we waited. */
static void wait_no_flush(log_state *lg)
{
    JS_ASSERT_HELD(&lg->lock);
    while (lg->flushing)
        js_cond_wait(&lg->done, &lg->lock);
}

/* Step 2 of a roll: the pending blocks (sealed) and the close block after
 * them, in one write and one fdatasync.  No flush may be running.  A
 * failure leaves the blocks pending and the generation open: whatever of
 * the close block reached the file is overwritten by the next write at
 * that index (or, after a crash, closes the generation at the same place
 * with the same digest). */
static JET_ERR close_current(log_state *lg)
{
    uint32_t first = lg->pend_first;
    JET_ERR err = pend_reserve(lg, lg->blk);
    if (err)
        return err;
    uint32_t n = lg->blk - first + 1;
    uint8_t *cb = lg->pend + (size_t)(n - 1) * LOG_BLOCK;
    encode_close_block(lg, cb);
    err = os_pwrite(lg->fd, lg->cur_path, lg->pend, (size_t)n * LOG_BLOCK, (uint64_t)first * LOG_BLOCK);
    if (!err)
        err = os_fsync(lg->fd, lg->cur_path);
    if (err) {
        memset(cb, 0, LOG_BLOCK);
        return err;
    }
    memset(lg->pend, 0, (size_t)n * LOG_BLOCK);
    lg->pend_first = lg->blk;
    return JET_errSuccess;
}

/* A roll, in the order of the file comment.  The next generation's file is
 * made (the one step that needs new space) before anything is written to
 * the current one, so a full disk leaves the current generation open and
 * unchanged: JET_errLogDiskFull, retried by the next roll. */
static JET_ERR roll_locked(log_state *lg, uint32_t *closed_gen)
{
    JS_ASSERT_HELD(&lg->lock);
    wait_no_flush(lg);
    JET_ERR sticky = log_sticky(lg);
    if (sticky)
        return sticky;
    uint32_t gen = lg->gen;   /* only now: another roll may have run while we waited */
    seal_pending(lg);
    int64_t created = js_time_ms();
    int fd = -1;
    JET_ERR err = create_tmp_gen(lg, gen + 1, created, lg->created, lg->digest, lg->blk, 0, &fd);
    if (err)
        return log_fail(lg, err);
    err = close_current(lg);
    if (err) {
        keep_spare(lg, fd);
        return log_fail(lg, err);
    }
    err = promote_next(lg, gen, created, fd, 1);
    if (err)
        return log_fatal(lg, err);
    lg->full = 0;   /* every pending block is durable now */
    lg->first_commit_ms = 0;
    if (closed_gen)
        *closed_gen = gen;
    return JET_errSuccess;
}

JET_ERR log_roll(log_state *lg, uint32_t *closed_gen)
{
    if (!lg->enabled)
        return js_fail(JET_errLoggingDisabled, "the instance runs without a log (no_log)");
    js_mutex_lock(&lg->lock);
    JET_ERR err = roll_locked(lg, closed_gen);
    int ev = err == JET_errLogDiskFull ? space_transition(lg, 1) : !err ? space_transition(lg, 0) : 0;
    js_mutex_unlock(&lg->lock);
    space_event(lg, ev);
    if (err)
        return js_fail(err, "log roll in %s failed: %s", lg->dir, js_errdetail());
    return JET_errSuccess;
}

/* Append an abort record: redo drops the records of the transaction it
 * ends.  It may use the block log_room() keeps for it. */
static JET_ERR append_abort(log_state *lg, uint64_t txn_id)
{
    JS_ASSERT_HELD(&lg->lock);
    uint8_t rec[REC_HDR + 8];
    rec[0] = REC_ABORT;
    rec[1] = 0;
    pg_put16(rec + 2, 0);
    pg_put32(rec + 4, 8);
    pg_put64(rec + REC_HDR, txn_id);
    if (lg->blk + (lg->used + sizeof rec) / LOG_PAYLOAD > lg->nblocks - 2)
        return js_fail(JET_errLogWriteFail, "no room left for an abort record in generation %08X", lg->gen);
    return append_bytes(lg, rec, sizeof rec);
}

JET_ERR log_append_txn(log_state *lg, const uint8_t *recs, const uint32_t *lens, size_t nrec,
                       uint64_t txn_id, uint64_t *commit_lsn, uint64_t *end_lsn)
{
    JET_ERR err = JET_errSuccess;
    int appended = 0, rolled = 0;
    js_mutex_lock(&lg->lock);
    if ((err = log_sticky(lg)) != 0)
        goto out;
    if (lg->full) {
        /* A log write waits for space: nothing new is logged before it is
         * rewritten (js_txn_begin retries it). */
        err = js_fail(JET_errLogDiskFull, "no space to write the log in %s", lg->dir);
        goto out;
    }
    size_t off = 0;
    for (size_t i = 0; i <= nrec; i++) {
        uint8_t commit[REC_HDR + 24];
        const uint8_t *rec;
        uint32_t len;
        if (i < nrec) {
            rec = recs + off;
            len = lens[i];
            off += len;
        } else {
            commit[0] = REC_COMMIT;
            commit[1] = 0;
            pg_put16(commit + 2, 0);
            pg_put32(commit + 4, 24);
            pg_put64(commit + REC_HDR, txn_id);
            int64_t now_us = js_time_us();
            pg_put64(commit + REC_HDR + 8, (uint64_t)(now_us / 1000));
            pg_put64(commit + REC_HDR + 16, (uint64_t)now_us);
            rec = commit;
            len = sizeof commit;
        }
        if (log_room(lg) < len) {
            /* A roll on demand (a backup) may happen while we wait for a
             * running flush; roll only if there is still no room after. */
            wait_no_flush(lg);
            if (log_room(lg) < len) {
                err = roll_locked(lg, NULL);
                if (err)
                    goto out;
                rolled = 1;
            }
        }
        if (i == nrec)
            *commit_lsn = log_position(lg);
        err = append_bytes(lg, rec, len);
        if (err)
            goto out;
        appended = 1;
    }
    *end_lsn = log_position(lg);
    if (!lg->first_commit_ms)
        lg->first_commit_ms = js_time_ms();
out:
    if (err && appended && !log_sticky(lg)) {
        /* Records of this transaction may already be in the file (a flush
         * or a roll wrote them): cancel them for redo. */
        JET_ERR e2 = append_abort(lg, txn_id);
        if (e2)
            err = log_fatal(lg, e2);
    }
    int ev = err == JET_errLogDiskFull ? space_transition(lg, 1) : rolled ? space_transition(lg, 0) : 0;
    js_mutex_unlock(&lg->lock);
    space_event(lg, ev);
    return err;
}

JET_ERR log_abort_unfinished(log_state *lg)
{
    js_mutex_lock(&lg->lock);
    JET_ERR err = append_abort(lg, 0);
    uint64_t pos = log_position(lg);
    js_mutex_unlock(&lg->lock);
    return err ? err : log_flush(lg, pos);
}

/* Resume appending to edb.log (generation gen) at block resume_blk. */
static JET_ERR log_open_current(log_state *lg, uint32_t gen, uint32_t resume_blk, int64_t created, uint32_t digest)
{
    JET_ERR err = os_open(lg->cur_path, O_RDWR, 0, &lg->fd);
    if (err)
        return err;
    lg->gen = gen;
    lg->blk = resume_blk;
    lg->used = 0;
    lg->pend_first = resume_blk;
    lg->sealed = resume_blk;
    lg->digest = digest;
    lg->created = created;
    lg->flushed = position(lg);
    return JET_errSuccess;
}

JET_ERR log_create_gen(log_state *lg, uint32_t gen, int64_t prev_created, uint32_t prev_digest, uint32_t prev_blocks)
{
    /* No current file: make generation gen from scratch. */
    int64_t created = js_time_ms();
    int fd = -1;
    JET_ERR err = create_tmp_gen(lg, gen, created, prev_created, prev_digest, prev_blocks, 1, &fd);
    return err ? err : promote_next(lg, gen - 1, created, fd, 0);
}

/* Close the current generation at its scanned end (used after a torn tail
 * or a crash in the middle of a roll) and start the next one. */
static JET_ERR log_close_at(log_state *lg, uint32_t end_blk, uint32_t digest, int already_closed)
{
    lg->blk = end_blk;
    lg->used = 0;
    lg->pend_first = end_blk;
    lg->sealed = end_blk;
    lg->digest = digest;
    int64_t created = js_time_ms();
    int fd = -1;
    JET_ERR err = create_tmp_gen(lg, lg->gen + 1, created, lg->created, digest, end_blk, 1, &fd);
    if (err)
        return err;
    err = already_closed ? JET_errSuccess : write_close_block(lg);
    if (err) {
        keep_spare(lg, fd);
        return err;
    }
    return promote_next(lg, lg->gen, created, fd, 1);
}

void log_init(log_state *lg, const char *dir, uint64_t file_size, uint32_t page_size,
              const uint8_t log_sig[JS_SIG_LEN], const uint8_t db_sig[JS_SIG_LEN], int enabled, js_health *health)
{
    memset(lg, 0, sizeof *lg);
    js_mutex_init(&lg->lock);
    pthread_cond_init(&lg->done, NULL);
    js_mutex_init(&lg->spare_lock);
    lg->fd = lg->spare_fd = lg->prep_fd = -1;
    lg->enabled = enabled;
    lg->health = health;
    snprintf(lg->dir, sizeof lg->dir, "%s", dir);
    snprintf(lg->cur_path, sizeof lg->cur_path, "%s/%s", dir, JS_LOG_FILE);
    lg->file_size = file_size;
    lg->nblocks = (uint32_t)(file_size / LOG_BLOCK);
    lg->page_size = page_size;
    memcpy(lg->log_sig, log_sig, JS_SIG_LEN);
    memcpy(lg->db_sig, db_sig, JS_SIG_LEN);
}

/* After redo: continue appending to edb.log, or finish a roll a crash
 * interrupted, or start the first generation after a torn tail. */
JET_ERR log_resume(log_state *lg, const redo_result *rr)
{
    JET_ERR err;
    if (rr->have_current) {
        err = log_open_current(lg, rr->cur_hdr.gen, rr->cur_scan.end_blk, rr->cur_hdr.created, rr->cur_scan.digest);
        if (err)
            return err;
        if (rr->cur_scan.torn || rr->cur_scan.closed || rr->cur_scan.partial ||
            rr->cur_scan.end_blk + 1 >= lg->nblocks) {
            /* Never append after garbage, half a record or a close block:
             * close here (a crash during a roll may have done so already)
             * and move on to a fresh generation. */
            err = log_close_at(lg, rr->cur_scan.end_blk, rr->cur_scan.digest, rr->cur_scan.closed);
            return err;
        }
        return JET_errSuccess;
    }
    if (rr->last_gen)
        return log_create_gen(lg, rr->last_gen + 1, rr->last_hdr.created, rr->last_scan.digest,
                              rr->last_scan.end_blk);
    return log_create_gen(lg, 1, 0, 0, 0);
}

void log_tick(log_state *lg)
{
    if (!lg->enabled)
        return;
    /* An I/O error makes the instance fatal; lack of space is retried
     * here every round until it succeeds. */
    (void)log_flush_all(lg);
    log_prepare_spare(lg);
}

void log_pin(log_state *lg, uint32_t gen)
{
    js_mutex_lock(&lg->lock);
    lg->pin_gen = gen;
    js_mutex_unlock(&lg->lock);
}

void log_pin_archive(log_state *lg, uint32_t gen)
{
    js_mutex_lock(&lg->lock);
    lg->archive_pin = gen;
    js_mutex_unlock(&lg->lock);
}

uint32_t log_archive_pin(log_state *lg)
{
    js_mutex_lock(&lg->lock);
    uint32_t gen = lg->archive_pin;
    js_mutex_unlock(&lg->lock);
    return gen;
}

int64_t log_first_commit_ms(log_state *lg)
{
    js_mutex_lock(&lg->lock);
    int64_t t = lg->first_commit_ms;
    js_mutex_unlock(&lg->lock);
    return t;
}

JET_ERR log_delete_below(log_state *lg, uint32_t gen, uint32_t *lo, uint32_t *hi)
{
    uint32_t min_gen, max_gen;
    char path[PATH_MAX];
    *lo = *hi = 0;
    JET_ERR err = loggen_list(lg->dir, &min_gen, &max_gen);
    if (err || !min_gen)
        return err;
    js_mutex_lock(&lg->lock);
    uint32_t pin = lg->pin_gen;
    if (lg->archive_pin && (!pin || lg->archive_pin < pin))
        pin = lg->archive_pin;
    js_mutex_unlock(&lg->lock);
    for (uint32_t g = min_gen; g < gen && g <= max_gen; g++) {
        if (pin && g >= pin)
            break;
        loggen_name(path, sizeof path, lg->dir, g);
        /* Oldest first, stop at the first failure: the chain that stays is
         * always contiguous. */
        err = os_unlink(path, 0);
        if (err)
            break;
        if (!*lo)
            *lo = g;
        *hi = g;
    }
    if (*lo) {
        JET_ERR e2 = os_fsync_dir(lg->dir);
        if (!err)
            err = e2;
    }
    return err;
}


static void log_close(log_state *lg)
{
    os_close(lg->fd);
    lg->fd = -1;
    os_close(lg->spare_fd);   /* the file stays: a later open may use it */
    lg->spare_fd = -1;
    os_close(lg->prep_fd);
    lg->prep_fd = -1;
    free(lg->pend);
    free(lg->io);
    lg->pend = lg->io = NULL;
    lg->pend_cap = lg->io_cap = 0;
}

void log_destroy(log_state *lg)
{
    log_close(lg);
    js_mutex_destroy(&lg->lock);
    pthread_cond_destroy(&lg->done);
    js_mutex_destroy(&lg->spare_lock);
}

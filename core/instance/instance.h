/*
 * inst.h - the instance and the internal interfaces between core modules.
 *
 * Lock order (take in this order, never the reverse):
 *   inst->writer_lock  (one write transaction at a time; also held while a
 *                       checkpoint takes its redo point)
 *   inst->tree_latch   (rwlock: shared while reading committed frames,
 *                       exclusive while a commit installs its pages)
 *   log->lock          (log append / flush state)
 *   pool->lock         (frame table, pins, dirty flags)
 *   rl->lock           (page-range lock between the flusher and readers of
 *                       the file)
 *   inst->state_lock   (state, backup job flags, event sink)
 * A thread holding pool->lock or rl->lock does no I/O and takes no other lock.
 */
#ifndef JS_INST_H
#define JS_INST_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "jetsnap.h"

#define JS_SIG_LEN 16

/* ---------------- database header (pages 0 and 1) ---------------- */
/*
 * Stored at offset 32 of pages 0 and 1 (after the page header), little-endian:
 *   0  char[8] magic "JSNAPDB1"     8 u32 version      12 u32 page_size
 *  16  u32 state (enum js_db_state) 20 u32 flags (DBH_*)
 *  24  u8[16] db_signature         40 u8[16] log_signature
 *  56  i64 created                 64 u64 log_file_size
 *  72  u32 full_low  76 u32 full_high  80 i64 full_time
 *  88  u32 inc_low   92 u32 inc_high   96 i64 inc_time
 * 104  u32 backup_gen_low (non-zero: a raw backup copy, not openable)
 * 108  u32 backup_gen_high (the set's last generation, stamped by backup)
 * 112  u64 consistent_lsn (log position at the last clean shutdown)
 * 120  u32 valid_below (a raw backup copy: its written bound, page.h: every
 *      page below it was valid on disk when the copy was made, so a zero
 *      page there is corruption; pages at or above it may be zero, replay
 *      writes them.  0 in a live database and in copies made before the
 *      field existed: unknown, zero pages accepted)
 * Read rule: page 0 valid: use it (page 1 valid and different: still page 0);
 * only page 1 valid: use it; neither: JET_errReadVerifyFailure.
 * Write rule: page 0, fsync, page 1, fsync.
 */
#define DBH_MAGIC "JSNAPDB1"
#define DBH_VERSION 1u
#define DBH_CIRCULAR 0x1u   /* created with circular logging */
#define DBH_UNLOGGED 0x2u   /* opened with no_log: a dirty state is unrecoverable */

typedef struct db_header {
    uint32_t page_size;
    uint32_t state;
    uint32_t flags;
    uint8_t db_sig[JS_SIG_LEN];
    uint8_t log_sig[JS_SIG_LEN];
    int64_t created;
    uint64_t log_file_size;
    js_backup_stamp full, inc;
    uint32_t backup_gen_low, backup_gen_high;
    uint64_t consistent_lsn;
    uint32_t valid_below;
} db_header;

/** Serialize hdr into a header page for pgno 0 or 1 (sealed). */
void dbh_encode(const db_header *hdr, uint8_t *page, uint32_t pgno);
/** Read the header of an open database file with the read rule above.
 *  JET_errInvalidDatabase when neither copy is a jetsnap header,
 *  JET_errReadVerifyFailure when both fail their checksum. */
JET_ERR dbh_read(int fd, const char *path, db_header *out);
/** Write both copies with the write rule.  page_size from hdr. */
JET_ERR dbh_write(int fd, const char *path, const db_header *hdr);
/** Random signature bytes (getrandom). */
void dbh_new_signature(uint8_t sig[JS_SIG_LEN]);
/** Hex of a signature into out (33 bytes). */
void dbh_sig_hex(const uint8_t sig[JS_SIG_LEN], char *out);

/* Meta page (page 2) fields, after the page header. */
#define META_ROOT   32u   /* u32 root page (0: empty tree) */
#define META_FREE   36u   /* u32 head of the free-page list */
#define META_NEXT   40u   /* u32 first never-used page number (high water) */
#define META_COUNT  48u   /* u64 number of keys */

/* ---------------- page-range lock ---------------- */
#define RL_SLOTS 16
typedef struct range_lock {
    pthread_mutex_t lock;           /* guards the arrays below */
    pthread_cond_t changed;
    uint64_t lo[RL_SLOTS], hi[RL_SLOTS];
    int writer[RL_SLOTS];           /* 1: flusher writing, 0: reader */
    int used[RL_SLOTS];
} range_lock;

void rl_init(range_lock *rl);
void rl_destroy(range_lock *rl);
/** Lock pages [lo, hi) for reading (writer 0) or writing (writer 1): readers
 *  exclude writers over overlapping ranges, and the reverse.  Returns a
 *  slot to pass to rl_unlock. */
int rl_lock(range_lock *rl, uint64_t lo, uint64_t hi, int writer);
void rl_unlock(range_lock *rl, int slot);

/* ---------------- buffer pool ---------------- */
typedef struct frame {
    _Atomic uint32_t pgno;      /* written under pool->lock; read lock-free */
    _Atomic uint32_t pins;      /* changed lock-free (see buf.c) */
    uint8_t dirty;              /* pool->lock */
    _Atomic uint8_t ref;        /* clock bit, a hint */
    _Atomic uint8_t loading;    /* a thread is reading it from disk */
    uint32_t fpi_epoch;         /* writer_lock: checkpoint epoch of the last full image */
    _Atomic(struct frame *) hnext; /* written under pool->lock; read lock-free */
    uint8_t *data;              /* content: tree_latch (see lock order) */
} frame;

typedef struct buf_pool {
    pthread_mutex_t lock;
    pthread_cond_t loaded;
    _Atomic(frame *) *hash;     /* heads written under lock, read lock-free */
    size_t nbuckets;
    frame **frames;
    size_t nframes, frames_cap;
    size_t cap;             /* soft limit in frames */
    size_t clock;
    size_t ndirty;
    uint32_t page_size;
} buf_pool;

/* ---------------- log ---------------- */
#define LOG_BLOCK 512u
#define LOG_BLK_HDR 16u
#define LOG_PAYLOAD (LOG_BLOCK - LOG_BLK_HDR)
#define LSN_MAKE(gen, off) (((uint64_t)(gen) << 32) | (uint32_t)(off))
#define LSN_GEN(lsn) ((uint32_t)((lsn) >> 32))
#define LSN_OFF(lsn) ((uint32_t)(lsn))

enum rec_type { REC_IMAGE = 1, REC_DELTA = 2, REC_COMMIT = 3, REC_ABORT = 4 };
#define REC_HDR 8u   /* u8 type, u8 flags, u16 0, u32 payload length */

typedef struct log_state {
    pthread_mutex_t lock;
    pthread_cond_t done;        /* a flush or roll finished */
    char dir[PATH_MAX];
    char cur_path[PATH_MAX];
    int fd;                     /* edb.log, -1 without log */
    uint32_t gen;
    uint32_t nblocks;           /* per file: header + data blocks + room for close */
    uint64_t file_size;
    uint32_t blk;               /* block being filled */
    uint32_t used;              /* payload bytes used in it */
    uint8_t *pend;              /* blocks pend_first..blk (the last partial) */
    uint32_t pend_first;
    uint32_t sealed;            /* blocks below it are sealed (in the digest) */
    size_t pend_cap;            /* bytes */
    uint8_t *io;                /* the leader's copy of the blocks it writes */
    size_t io_cap;
    int flushing;
    uint64_t flushed;           /* every record starting below it is durable */
    uint32_t digest;            /* running CRC over block CRCs written this gen */
    int64_t created;            /* this generation's creation time */
    uint8_t log_sig[JS_SIG_LEN];
    uint8_t db_sig[JS_SIG_LEN];
    uint32_t page_size;
    uint32_t pin_gen;           /* backup: no generation >= it is deleted (0: none) */
    JET_ERR fatal;              /* sticky write failure */
    JET_ERR full;               /* JET_errLogDiskFull: a flush failed for lack
                                   of space and no flush succeeded since */
    uint64_t nfail;             /* flushes failed for lack of space */
    uint64_t fail_target;       /* what the last of them was to make durable */
    int space_said;             /* an event said the log lacks space; the
                                   next successful write says it is over */
    pthread_mutex_t spare_lock; /* guards spare_fd and the file edbtmp.log;
                                   taken after lock, never before it */
    int spare_fd;               /* pre-built edbtmp.log (allocated, no header), -1 */
} log_state;

/* ---------------- instance ---------------- */
struct js_instance {
    char dir[PATH_MAX];
    char db_path[PATH_MAX];
    js_params params;
    int lock_fd;
    int db_fd;
    uint32_t page_size;
    db_header hdr;                 /* writer_lock (or single-threaded open/close) */
    pthread_mutex_t hdr_lock;      /* serializes header writes (backup stamp vs close) */

    pthread_mutex_t writer_lock;
    pthread_rwlock_t tree_latch;
    buf_pool pool;
    range_lock rl;
    log_state log;
    uint32_t ckpt_epoch;           /* writer_lock */
    uint64_t txn_seq;              /* writer_lock */
    pthread_mutex_t ckpt_lock;     /* one checkpoint at a time */
    uint64_t ckpt_lsn;             /* ckpt_lock: redo point of the last checkpoint */
    uint64_t db_file_pages;        /* ckpt_lock: pages allocated in the file */
    _Atomic uint32_t valid_below;  /* written bound (page.h): every page below it is
                                      valid on disk; raised by a checkpoint after its
                                      fsync, never lowered; 0 before the first */

    pthread_mutex_t state_lock;
    pthread_cond_t state_cond;
    int state;                     /* state_lock: enum js_instance_state */
    JET_ERR fatal;                 /* state_lock: sticky fatal error */
    JET_ERR space_err;             /* state_lock: the last checkpoint failed for
                                      lack of space (writers wait for the next) */
    uint64_t ckpt_done;            /* state_lock: checkpoints finished, either way */
    int stopping;                  /* state_lock */
    int backup_running;            /* state_lock */
    int backup_cancel;             /* state_lock: JET_ERR to stop the job with, 0 none */
    int sessions;                  /* state_lock */
    js_event_fn event_fn;          /* state_lock */
    void *event_ctx;

    pthread_t ckpt_thread, flush_thread;
    int threads_started;
    pthread_cond_t ckpt_wake;      /* state_lock */
    int ckpt_requested;            /* state_lock */
    int recovering;                /* set during redo: zero pages allowed */
};

/** Whether the instance writes a log.  Decided at open and never changed,
 *  so it may be read without log->lock (log->fd changes at every roll). */
static inline int inst_logging(const js_instance *inst)
{
    return !inst->params.no_log;
}

/*
 * Failures: sticky or transient (the contract is in jetsnap.h).
 *   Sticky: inst->fatal (and log->fatal for the log), set by inst_set_fatal
 *   on any I/O error but ENOSPC/EDQUOT (JET_errDiskFull from os.c), on a
 *   failed rename, on a failed fsync of jetsnap.edb whatever its errno, and
 *   when a logged transaction cannot be installed.  Every call then returns
 *   JET_errInstanceUnavailable until the instance is closed and reopened.
 *   Transient: lack of space.  It never sets inst->fatal; it leaves
 *     log->full   a log write to retry (log.c): new write transactions are
 *                 refused with JET_errLogDiskFull until a flush succeeds;
 *     inst->space_err  a checkpoint that could not write pages or grow the
 *                 file (checkpoint.c; its pages stay dirty, edb.chk keeps the
 *                 previous redo point): writers ask for a checkpoint and wait
 *                 for it (inst_check_writable) and get JET_errDiskFull while
 *                 it fails;
 *   and a refused roll, which leaves the current generation open.
 *   Reads never look at either.
 */
static inline int err_is_space(JET_ERR err)
{
    return err == JET_errDiskFull || err == JET_errLogDiskFull;
}

/* instance.c */
/** Open dir for restore's redo: like js_instance_new, but a being-restored
 *  header and a raw backup copy are accepted, and no log is opened. */
JET_ERR inst_new_for_restore(const char *dir, js_instance **out);
/** Free an instance without a checkpoint or header write (restore). */
void inst_discard(js_instance *inst);
/** The sticky fatal error, or 0. */
JET_ERR inst_check_usable(js_instance *inst);
/** Make the instance fatal with err (JET_errInstanceUnavailable afterwards).
 *  Never called with a lack of space (err_is_space). */
void inst_set_fatal(js_instance *inst, JET_ERR err);
/** Before a write transaction takes the writer lock: retry a log write that
 *  failed for lack of space, and, when the last checkpoint failed for lack
 *  of space, ask for one more and wait for it.  JET_errLogDiskFull or
 *  JET_errDiskFull while space is still missing. */
JET_ERR inst_check_writable(js_instance *inst);
/** Record the outcome of a checkpoint (ckpt_run): sets or clears
 *  space_err and wakes inst_check_writable. */
void inst_checkpoint_done(js_instance *inst, JET_ERR err);
/** Write the header (both copies) from inst->hdr under hdr_lock. */
JET_ERR inst_write_header(js_instance *inst);
/** Raise an event to the sink. */
void inst_event(js_instance *inst, int id, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Ask the checkpoint thread to run soon. */
void inst_request_checkpoint(js_instance *inst);

/* rangelock: in buf.c */
/* buf.c */
JET_ERR pool_init(buf_pool *pool, uint32_t page_size, uint64_t cache_bytes);
void pool_destroy(buf_pool *pool);
/** Pin page pgno, reading it from the database file when absent (verified;
 *  JET_errReadVerifyFailure names the page).  allow_zero: a never-written
 *  page comes back zeroed instead of failing (recovery). */
JET_ERR pool_get(js_instance *inst, uint32_t pgno, int allow_zero, frame **out);
/** Pin the frame of pgno, creating an empty one without reading when absent
 *  (the caller overwrites its content under the exclusive tree latch). */
JET_ERR pool_get_for_install(js_instance *inst, uint32_t pgno, frame **out);
void pool_unpin(buf_pool *pool, frame *f);
void pool_mark_dirty(buf_pool *pool, frame *f);
/** Collect the numbers of dirty pages, sorted; *out malloc'd. */
JET_ERR pool_dirty_list(buf_pool *pool, uint32_t **out, size_t *n);
/** Look up without reading: pinned frame or NULL. */
frame *pool_lookup(buf_pool *pool, uint32_t pgno);
void pool_clear_dirty(buf_pool *pool, frame *f);
size_t pool_ndirty(buf_pool *pool);

/* dbwrite.c: the one write path of pages to jetsnap.edb */
/** Write n sealed pages starting at pgno (contiguous) under the range lock;
 *  grows the file in extents. */
JET_ERR db_write_pages(js_instance *inst, uint32_t pgno, const uint8_t *pages, uint32_t n);
/** Check n pages read from file (named in errors) into buf, the first being
 *  pgno, with the rule of page.h for a file whose written bound is
 *  valid_below.  The first bad page fails with JET_errReadVerifyFailure
 *  "page N of FILE: zeroed" (or "checksum mismatch", "holds page M");
 *  *nvalid (may be NULL) is raised by the number of valid pages. */
JET_ERR db_check_pages(const uint8_t *buf, uint32_t page_size, uint32_t pgno, uint32_t n, uint32_t valid_below,
                       const char *file, uint64_t *nvalid);
/** Read pages [lo, hi) of the instance's file and require every one to be
 *  valid (restore: the pages above the copy's bound once replay and the
 *  final checkpoint have written theirs).  Errors as db_check_pages. */
JET_ERR db_verify_range(js_instance *inst, uint32_t lo, uint32_t hi);

/* log.c */
JET_ERR log_open_current(js_instance *inst, uint32_t gen, uint32_t resume_blk, int64_t created, uint32_t digest);
void log_close(log_state *lg);
/** Create a fresh edb.log for generation gen (chained to the previous
 *  generation's close facts). */
JET_ERR log_create_gen(log_state *lg, uint32_t gen, int64_t prev_created, uint32_t prev_digest, uint32_t prev_blocks);
/** Append one transaction: the records in recs (already encoded, n bytes,
 *  record boundaries given by lens) followed by a commit record.  *commit_lsn
 *  receives the commit record's position, *end_lsn the position after it.
 *  On failure nothing of the transaction counts: what was appended is
 *  cancelled by an abort record.  JET_errLogDiskFull when log->full is set
 *  or a roll found no space (transient), JET_errOutOfMemory, or a sticky
 *  JET_errLogWriteFail. */
JET_ERR log_append_txn(js_instance *inst, const uint8_t *recs, const uint32_t *lens, size_t nrec,
                       uint64_t txn_id, uint64_t *commit_lsn, uint64_t *end_lsn);
/** Close the current generation at block end_blk (writing the close block
 *  unless already_closed), rename it, and start the next generation. */
JET_ERR log_close_at(log_state *lg, uint32_t end_blk, uint32_t digest, int already_closed);
/** Pre-build edbtmp.log (allocated, zero) for the next roll when there is
 *  none, so a roll does not allocate a file while committers wait.  Called
 *  by the instance's background thread without log->lock. */
void log_prepare_spare(log_state *lg);
/** Make every record starting below lsn durable (group commit).
 *  JET_errLogDiskFull when the write that carried lsn failed for lack of
 *  space (log->full is then set; the blocks stay pending for a retry);
 *  JET_errLogWriteFail (sticky) for any other failure. */
JET_ERR log_flush(js_instance *inst, uint64_t lsn);
/** When log->full: flush everything pending (the retry).  JET_errSuccess
 *  when nothing waits. */
JET_ERR log_retry_stalled(js_instance *inst);
/** Append and flush an abort record for a transaction recovery found
 *  unfinished at the end of the log (redo_result.unfinished), so records
 *  appended later cannot complete it. */
JET_ERR log_abort_unfinished(js_instance *inst);
/** Position where the next record starts. */
uint64_t log_position(log_state *lg);
/** Close the current generation and start the next. */
JET_ERR log_roll(js_instance *inst, uint32_t *closed_gen);
/** Name of generation gen's closed file into out. */
void log_gen_name(char *out, size_t cap, const char *dir, uint32_t gen);
/** Smallest and largest closed generation present in dir (0,0 if none). */
JET_ERR log_list_gens(const char *dir, uint32_t *min_gen, uint32_t *max_gen);

/* loggen.c: reading generation files */
typedef struct loggen_hdr {
    uint32_t gen;
    uint8_t log_sig[JS_SIG_LEN];
    uint8_t db_sig[JS_SIG_LEN];
    int64_t created, prev_created;
    uint32_t prev_digest, prev_blocks;
    uint64_t file_size;
    uint32_t page_size;
} loggen_hdr;

typedef struct loggen_scan_result {
    uint32_t end_blk;           /* first block after the last valid data block */
    int closed;                 /* ended with a close block */
    int torn;                   /* current generation ended on a non-zero bad block */
    int partial;                /* the last valid block ends inside a record (a write
                                   cut between two of its blocks): appending there
                                   would splice a new record onto half an old one */
    uint32_t digest;            /* running CRC of block CRCs, blocks 1..end_blk-1 */
    uint64_t blocks, records;
} loggen_scan_result;

/** Called for every complete record at or after start_lsn. */
typedef JET_ERR (*loggen_rec_fn)(void *ctx, uint64_t lsn, int type, const uint8_t *payload, uint32_t len);

JET_ERR loggen_read_header(int fd, const char *path, loggen_hdr *out);
/** Encode a generation header block (512 bytes). */
void loggen_encode_header(const loggen_hdr *h, uint8_t *blk);
/** Verify and walk one generation file.  is_current: the newest generation,
 *  whose tail may be torn; otherwise it must end with a close block.  fn may
 *  be NULL (verify only). */
JET_ERR loggen_scan(const char *path, int is_current, uint64_t start_lsn,
                    loggen_rec_fn fn, void *ctx, loggen_hdr *hdr, loggen_scan_result *res);
/** Seal a log block (CRC over bytes 4..511). */
void loggen_seal_block(uint8_t *blk);

/* checkpoint.c */
JET_ERR ckpt_run(js_instance *inst);
typedef struct chk_file {
    uint64_t redo_lsn;
    int64_t time;
    uint8_t log_sig[JS_SIG_LEN];
    uint32_t valid_below;       /* the checkpoint's written bound (page.h); 0: unknown */
} chk_file;
JET_ERR chk_read(const char *dir, chk_file *out);
JET_ERR chk_write(const char *dir, const chk_file *chk);
/** Delete closed generations below gen (circular logging / truncation),
 *  oldest first, stopping at the first failure.  *deleted_lo/hi receive the
 *  range deleted (0,0: none). */
JET_ERR log_delete_below(js_instance *inst, uint32_t gen, uint32_t *deleted_lo, uint32_t *deleted_hi);

/* recover.c */
/** Redo from start_lsn (0: the oldest generation present) through the log
 *  generations in logdir, into the pool.  Leaves the current generation's
 *  scan facts for the caller to resume appending. */
typedef struct redo_result {
    uint32_t last_gen;          /* newest generation seen */
    int have_current;           /* edb.log existed */
    loggen_hdr cur_hdr;
    loggen_scan_result cur_scan;
    loggen_hdr last_hdr;        /* the newest generation replayed */
    loggen_scan_result last_scan;
    uint64_t txns_applied;
    int unfinished;             /* the log ends inside a transaction (records
                                   without their commit or abort record) */
} redo_result;
/** stop_at_gap: a missing generation, a foreign signature or a broken chain
 *  ends the replay quietly (roll-forward of extra logs at restore) instead
 *  of failing.  until_gen 0: no limit. */
JET_ERR redo_run(js_instance *inst, const char *logdir, uint64_t start_lsn,
                 uint32_t until_gen, int stop_at_gap, const redo_result *chain_from, redo_result *res);
JET_ERR redo_apply_txn_record(js_instance *inst, int type, const uint8_t *p, uint32_t len, uint64_t commit_lsn);

/* btree.c is used through txn.c */
#endif

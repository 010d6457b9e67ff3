/*
 * log.h - the log layer: generation files and their reader (loggen.c), the
 * writer with group commit and rolling (log.c), recovery (recover.c, which
 * replays into the store's pool).  Below it: base and store.  The log knows
 * nothing of the instance: it is given a js_health to make fatal and to
 * raise events through, and whether it is enabled.
 *
 * Failures: a log write that fails for lack of space is transient (`full`,
 * below, and JET_errLogDiskFull); any other write failure or a failed
 * rename makes the js_health fatal (sticky JET_errLogWriteFail).
 *
 * Lock rules: log->lock guards the append and flush state (every field of
 * log_state below but the constants set by log_init); log->spare_lock
 * guards spare_fd, prep_fd and the file edbtmp.log.  Lock order, this layer:
 *   [writer_lock, tree_latch (tree)] -> log->lock -> log->spare_lock
 *   -> [state_lock (instance), through js_health's callbacks]
 * No function of this layer is called holding pool->lock or rl->lock.
 * Functions marked "log->lock held" assert it.
 */
#ifndef JS_LOG_H
#define JS_LOG_H

#include <limits.h>
#include <stdint.h>
#include "base/base.h"
#include "store/store.h"

#define LOG_BLOCK 512u
#define LOG_BLK_HDR 16u
#define LOG_PAYLOAD (LOG_BLOCK - LOG_BLK_HDR)
#define LSN_MAKE(gen, off) (((uint64_t)(gen) << 32) | (uint32_t)(off))
#define LSN_GEN(lsn) ((uint32_t)((lsn) >> 32))
#define LSN_OFF(lsn) ((uint32_t)(lsn))

enum rec_type { REC_IMAGE = 1, REC_DELTA = 2, REC_COMMIT = 3, REC_ABORT = 4, REC_ZIMAGE = 5, REC_TYPE_MAX = 5 };
#define REC_HDR 8u   /* u8 type, u8 flags, u16 0, u32 payload length */

typedef struct redo_result redo_result;   /* recover.c, below */

typedef struct log_state {
    js_mutex lock;
    pthread_cond_t done;        /* a flush or roll finished */
    /* Constants from log_init. */
    int enabled;                /* 0: the instance runs without a log (no_log) */
    js_health *health;          /* the instance's: fatal errors and events */
    char dir[PATH_MAX];
    char cur_path[PATH_MAX];
    uint32_t nblocks;           /* per file: header + data blocks + room for close */
    uint64_t file_size;
    uint8_t log_sig[JS_SIG_LEN];
    uint8_t db_sig[JS_SIG_LEN];
    uint32_t page_size;
    /* log->lock (or single-threaded open). */
    int fd;                     /* edb.log, -1 without log */
    uint32_t gen;
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
    uint32_t pin_gen;           /* log_pin: no generation >= it is deleted (0: none) */
    uint32_t archive_pin;       /* log_pin_archive: the oldest generation not yet
                                   archived; none >= it is deleted (0: none) */
    int64_t first_commit_ms;    /* wall time of the current generation's first
                                   commit (0: none yet); archive_timeout */
    JET_ERR full;               /* JET_errLogDiskFull: a flush failed for lack
                                   of space and no flush succeeded since */
    uint64_t nfail;             /* flushes failed for lack of space */
    uint64_t fail_target;       /* what the last of them was to make durable */
    int space_said;             /* an event said the log lacks space; the
                                   next successful write says it is over */
    js_mutex spare_lock;        /* guards spare_fd, prep_fd and the file edbtmp.log;
                                   taken after lock, never before it */
    int spare_fd;               /* pre-built edbtmp.log (allocated, no header), -1 */
    int prep_fd;                /* edbtmp.log while log_tick builds it, -1 */
    uint64_t prep_off;          /* its bytes [0, prep_off) are written zeros */
    /* Atomics, no lock: for a backup's pacer (log_flush_latency). */
    _Atomic uint64_t flush_count;       /* flushes that reached the disk */
    _Atomic uint32_t flush_us;          /* committers' recent wait, microseconds
                                           (moving average, 1/8 per wait) */
} log_state;

/* log.c */
/** Set up lg for the log in dir (edb.log, generations of file_size bytes)
 *  with no file open: the locks, the constants, fd -1.  health may be NULL
 *  (js_create, restore: nothing to report to). */
void log_init(log_state *lg, const char *dir, uint64_t file_size, uint32_t page_size,
              const uint8_t log_sig[JS_SIG_LEN], const uint8_t db_sig[JS_SIG_LEN], int enabled, js_health *health);
/** Close the files, free the buffers, destroy the locks. */
void log_destroy(log_state *lg);
/** Create a fresh edb.log for generation gen (chained to the previous
 *  generation's close facts), its zeros written and durable like a spare's
 *  (its first commits then cost one I/O each, not two). */
JET_ERR log_create_gen(log_state *lg, uint32_t gen, int64_t prev_created, uint32_t prev_digest, uint32_t prev_blocks);
/** Append one transaction: the records in recs (already encoded, n bytes,
 *  record boundaries given by lens) followed by a commit record.  *commit_lsn
 *  receives the commit record's position, *end_lsn the position after it.
 *  On failure nothing of the transaction counts: what was appended is
 *  cancelled by an abort record.  JET_errLogDiskFull when log->full is set
 *  or a roll found no space (transient), JET_errOutOfMemory, or a sticky
 *  JET_errLogWriteFail. */
JET_ERR log_append_txn(log_state *lg, const uint8_t *recs, const uint32_t *lens, size_t nrec,
                       uint64_t txn_id, uint64_t *commit_lsn, uint64_t *end_lsn);
/** Make every record starting below lsn durable (group commit).
 *  JET_errLogDiskFull when the write that carried lsn failed for lack of
 *  space (log->full is then set; the blocks stay pending for a retry);
 *  JET_errLogWriteFail (sticky) for any other failure.  Success at once
 *  when the log is disabled. */
JET_ERR log_flush(log_state *lg, uint64_t lsn);
/** log_flush of everything appended so far. */
JET_ERR log_flush_all(log_state *lg);
/** When log->full: flush everything pending (the retry).  JET_errSuccess
 *  when nothing waits. */
JET_ERR log_retry_stalled(log_state *lg);
/** Append and flush an abort record for a transaction recovery found
 *  unfinished at the end of the log (redo_result.unfinished), so records
 *  appended later cannot complete it. */
JET_ERR log_abort_unfinished(log_state *lg);
/** Position where the next record starts (takes log->lock). */
uint64_t log_position_now(log_state *lg);
/** Every record starting below the returned position is durable (takes
 *  log->lock). */
uint64_t log_durable_now(log_state *lg);
/** After redo (rr, from redo_run): continue appending to edb.log, or finish
 *  a roll a crash interrupted, or start the next generation after a torn
 *  tail (or the first one of an empty log). */
JET_ERR log_resume(log_state *lg, const redo_result *rr);
/** One round of the instance's background flusher: make lazy commits
 *  durable, retry a write that lacked space, pre-build the next
 *  generation's file.  Holding no lock. */
void log_tick(log_state *lg);
/** How long committers waiting for a log flush have waited lately, in
 *  microseconds (a moving average over the last few waits: the write and
 *  fdatasync, group commit, and being scheduled again), and, in *count
 *  (may be NULL), how many flushes have reached the disk so far: a count
 *  that does not move means nobody is committing durably.  Lock-free, cheap
 *  enough to call per copied batch. */
uint32_t log_flush_latency(log_state *lg, uint64_t *count);
/** Close the current generation and start the next. */
JET_ERR log_roll(log_state *lg, uint32_t *closed_gen);
/** Keep every generation >= gen from log_delete_below (a backup copying
 *  them); 0 lifts the pin. */
void log_pin(log_state *lg, uint32_t gen);
/** The archiver's pin, independent of a backup's: gen is the oldest
 *  generation not yet archived (0 lifts it).  Truncation and circular
 *  logging stop below the lower of the two pins. */
void log_pin_archive(log_state *lg, uint32_t gen);
/** The archiver's pin (0: none). */
uint32_t log_archive_pin(log_state *lg);
/** Wall time (ms) of the first commit appended to the current generation,
 *  0 when it holds none (takes log->lock). */
int64_t log_first_commit_ms(log_state *lg);
/** Delete closed generations below gen (circular logging / truncation),
 *  oldest first, stopping at the first failure and at the pin.
 *  *deleted_lo/hi receive the range deleted (0,0: none). */
JET_ERR log_delete_below(log_state *lg, uint32_t gen, uint32_t *deleted_lo, uint32_t *deleted_hi);

/* loggen.c: generation files */
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
/** Name of generation gen's closed file into out. */
void loggen_name(char *out, size_t cap, const char *dir, uint32_t gen);
/** Smallest and largest closed generation present in dir (0,0 if none). */
JET_ERR loggen_list(const char *dir, uint32_t *min_gen, uint32_t *max_gen);


/* recover.c */
/** Redo from start_lsn (0: the oldest generation present) through the log
 *  generations in logdir (which must carry log_sig), into st's pool.  Leaves the current generation's
 *  scan facts for the caller to resume appending. */
struct redo_result {
    uint32_t last_gen;          /* newest generation seen */
    int have_current;           /* edb.log existed */
    loggen_hdr cur_hdr;
    loggen_scan_result cur_scan;
    loggen_hdr last_hdr;        /* the newest generation replayed */
    loggen_scan_result last_scan;
    uint64_t txns_applied;
    int unfinished;             /* the log ends inside a transaction (records
                                   without their commit or abort record) */
    int64_t last_commit_us;     /* commit time of the last transaction applied (0: none) */
    uint64_t last_commit_lsn;
    int stopped_at_time;        /* until_us: a later commit ended the replay
                                   (in generation last_gen) */
};
/** stop_at_gap: a missing generation, a foreign signature or a broken chain
 *  ends the replay quietly (roll-forward of extra logs at restore) instead
 *  of failing.  until_gen 0: no limit.  until_us (0: none): the first
 *  transaction committed after it, and everything after that, is not
 *  applied; the generation holding it ends the replay (res->stopped_at_time,
 *  last_gen that generation, which is scanned whole). */
JET_ERR redo_run(db_store *st, const uint8_t log_sig[JS_SIG_LEN], const char *logdir, uint64_t start_lsn,
                 uint32_t until_gen, int64_t until_us, int stop_at_gap, const redo_result *chain_from,
                 redo_result *res);

#endif

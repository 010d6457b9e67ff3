/*
 * instance.h - the instance layer: lifecycle (open with recovery, run,
 * close: instance.c), the checkpoint, its thread and edb.chk
 * (checkpoint.c), and the instance's state, including the one sticky-fatal
 * state (a js_health the lower layers set) and its events.  Below it:
 * base, store, log, tree; above it only the jobs (backup, restore, verify).
 * js_instance embeds one of each lower layer's structs (db_store,
 * log_state, js_engine) and wires them together: the engine gets the
 * store, the log, the health and its hooks; the log gets the health.
 *
 * Failures: sticky ones are the js_health's (base.h).  Transient: lack of
 * space.  It never makes the instance fatal; it leaves
 *   log->full   a log write to retry (log.h): new write transactions are
 *               refused with JET_errLogDiskFull until a flush succeeds;
 *   space_err   a checkpoint that could not write pages or grow the file
 *               (checkpoint.c; its pages stay dirty, edb.chk keeps the
 *               previous redo point): writers ask for a checkpoint and wait
 *               for it (instance.c, the tree's writable hook) and get JET_errDiskFull while
 *               it fails;
 * and a refused roll, which leaves the current generation open.  Reads
 * never look at either.
 *
 * Lock order (take in this order, never the reverse):
 *   ckpt_lock    one checkpoint at a time; guards ckpt_lsn and, through
 *                db_write_batch, store.file_pages
 *   eng.writer_lock, eng.tree_latch        (tree.h)
 *   log.lock, log.spare_lock               (log.h)
 *   hdr_lock     the header in memory (hdr) and its writes to the file;
 *                taken holding none of the locks above.  The signatures and
 *                page size in hdr never change after open and are read
 *                without it; so are full/inc by the one running backup job,
 *                their only writer (under hdr_lock) while it runs
 *   store.pool.lock | store.rl.lock        (store.h; hdr_lock before rl)
 *   state_lock   state, backup job flags, sessions, event sink; last: a
 *                thread holding it takes no other lock and does no I/O
 * Single-threaded phases (open before the threads start, close after they
 * stop, restore's private instance) touch hdr without hdr_lock.
 */
#ifndef JS_INSTANCE_H
#define JS_INSTANCE_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include "jetsnap.h"
#include "base/base.h"
#include "store/store.h"
#include "log/log.h"
#include "tree/tree.h"

struct js_instance {
    char dir[PATH_MAX];
    js_params params;
    int lock_fd;
    js_health health;              /* the one sticky-fatal state */
    db_store store;
    log_state log;
    js_engine eng;

    db_header hdr;                 /* hdr_lock (see the file comment) */
    js_mutex hdr_lock;

    js_mutex ckpt_lock;            /* one checkpoint at a time */
    uint64_t ckpt_lsn;             /* ckpt_lock: redo point of the last checkpoint */

    js_mutex state_lock;
    pthread_cond_t state_cond;
    int state;                     /* state_lock: enum js_instance_state */
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
    uint64_t ckpt_tickets;         /* state_lock: checkpoints asked by ckpt_wait */
    uint64_t ckpt_serving;         /* state_lock: tickets the running one serves, 0 */
    uint64_t ckpt_served;          /* state_lock: tickets the last finished one
                                      started after, with its outcome: */
    JET_ERR ckpt_served_err;
    char ckpt_served_detail[256];
};

/** Whether the instance writes a log.  Decided at open and never changed. */
static inline int inst_logging(const js_instance *inst)
{
    return inst->log.enabled;
}

/* instance.c */
/** Open dir for restore's redo: like js_instance_new, but a being-restored
 *  header and a raw backup copy are accepted, and no log is opened. */
JET_ERR inst_new_for_restore(const char *dir, js_instance **out);
/** Free an instance without a checkpoint or header write (restore). */
void inst_discard(js_instance *inst);
/** 0 when the instance takes calls; else JET_errInstanceUnavailable (after
 *  a sticky error), JET_errTermInProgress or JET_errNotInitialized, with
 *  the detail set. */
JET_ERR inst_check_usable(js_instance *inst);
/** Make the instance fatal with err (JET_errInstanceUnavailable afterwards).
 *  Never called with a lack of space (err_is_space). */
void inst_set_fatal(js_instance *inst, JET_ERR err);
/** Record the outcome of a checkpoint (ckpt_run): sets or clears
 *  space_err and wakes inst_check_writable. */
void inst_checkpoint_done(js_instance *inst, JET_ERR err);
/** Write the header (both copies) from inst->hdr under hdr_lock. */
JET_ERR inst_write_header(js_instance *inst);
/** Raise an event to the sink. */
void inst_event(js_instance *inst, int id, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Replay the log generations in logdir into the instance's pool (restore:
 *  its private instance), checking them against the header's log
 *  signature.  Arguments as redo_run (log.h). */
JET_ERR inst_redo(js_instance *inst, const char *logdir, uint64_t start_lsn, uint32_t until_gen, int64_t until_us,
                  int stop_at_gap, const redo_result *chain_from, redo_result *res);
/** Restore's last steps on its private instance, once replay is done:
 *  write every page (a checkpoint without a log), check pages
 *  [verify_from, written bound) on disk, start the generation after the
 *  last one replayed (last), point edb.chk at it and stamp the header
 *  clean-shutdown with no backup marks. */
JET_ERR inst_finish_restore(js_instance *inst, const redo_result *last, uint32_t verify_from);

/* snapshot.c */
/** Open the snapshot store into store.snap: when DBDIR/snapshots exists,
 *  or always with create.  Errors as ss_open (store.h). */
JET_ERR snap_store_open(js_instance *inst, int create);

/* checkpoint.c */
/** Write every dirty page, record the redo point in edb.chk, and (circular
 *  logging) delete the generations no longer needed.  Takes ckpt_lock. */
JET_ERR ckpt_run(js_instance *inst);
/** Ask the checkpoint thread to run one now (it runs when pages are
 *  dirty); progress is seen as ckpt_done moving. */
void inst_request_checkpoint(js_instance *inst);
/** Have the checkpoint thread run a checkpoint that starts after this call
 *  (dirty pages or not) and wait for it; its outcome is returned, with its
 *  detail.  poll (may be NULL) is called about every 250 ms meanwhile, and
 *  its error ends the wait (the checkpoint still runs).  Without the thread
 *  (not started), the checkpoint runs here.  JET_errInstanceUnavailable or
 *  JET_errTermInProgress when the instance turns fatal or stops first. */
JET_ERR ckpt_wait(js_instance *inst, JET_ERR (*poll)(void *ctx), void *ctx);
/** Start the checkpoint and flush threads (js_instance_start). */
JET_ERR ckpt_start_threads(js_instance *inst);
/** Wait for them to end (once stopping or fatal is set and ckpt_wake
 *  broadcast); nothing when they were not started. */
void ckpt_join_threads(js_instance *inst);
typedef struct chk_file {
    uint64_t redo_lsn;
    int64_t time;
    uint8_t log_sig[JS_SIG_LEN];
    uint32_t valid_below;       /* the checkpoint's written bound (page.h); 0: unknown */
} chk_file;
JET_ERR chk_read(const char *dir, chk_file *out);
JET_ERR chk_write(const char *dir, const chk_file *chk);

#endif

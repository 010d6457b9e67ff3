/*
 * tree.h - the tree and transactions layer: page views (tview.h), the
 * B+tree (btree.h), and the engine that runs one write transaction at a
 * time over the store and the log (txn.c).  Below it: base, store, log.
 * The instance embeds a js_engine and gives it hooks: the tree asks through
 * them whether the instance takes calls and writes, and asks for a
 * checkpoint; it never sees the instance itself.
 *
 * Lock rules:
 *   writer_lock  one write transaction at a time, held from begin to commit
 *                or rollback; guards txn_seq.  The instance's checkpoint
 *                takes it (after its ckpt_lock) to take its redo point
 *                between transactions.
 *   tree_latch   frame content and frame->data itself (a commit swaps its copy
 *                in): shared while reading committed frames,
 *                exclusive while a commit installs its pages.
 * Lock order: [ckpt_lock (instance)] -> writer_lock -> tree_latch ->
 *   log->lock (log.h) -> pool->lock, rl->lock (store.h) -> [state_lock
 *   (instance), taken by the hooks].  The hooks are called holding neither
 *   tree lock, except usable() right after writer_lock is taken.
 */
#ifndef JS_TREE_H
#define JS_TREE_H

#include "base/base.h"
#include "store/store.h"
#include "log/log.h"
#include "tree/btree.h"

/* What the tree asks of the instance above it. */
typedef struct tree_hooks {
    JET_ERR (*usable)(void *ctx);        /* the instance takes calls (sets the detail) */
    JET_ERR (*writable)(void *ctx);      /* before a write transaction takes writer_lock:
                                            space to write (may wait for a checkpoint) */
    void (*want_checkpoint)(void *ctx);  /* half the pool is dirty */
    void (*session_closed)(void *ctx);   /* js_session_close freed one */
    void *ctx;
} tree_hooks;

typedef struct js_engine {
    js_mutex writer_lock;
    js_rwlock tree_latch;
    db_store *store;
    log_state *log;
    js_health *health;
    tree_hooks hooks;
    int durable;                /* commits are durable unless flagged lazy */
    uint64_t txn_seq;           /* writer_lock */
    uint8_t *rec_buf;           /* writer_lock: REC_BUF_KEEP bytes for a commit's log
                                   records, kept for the next (txn.c) */
    int64_t last_commit_ms;     /* writer_lock: time of the last commit that changed pages (snapshots) */
} js_engine;

/* txn.c */
/** Set up the locks; the caller fills the pointers and hooks. */
void txn_engine_init(js_engine *eng);
void txn_engine_destroy(js_engine *eng);
/** A new session on eng (js_session_open, after the instance's checks). */
JET_ERR txn_session_new(js_engine *eng, js_session **out);

#endif

/*
 * store.h - the page store layer: the page format (page.h), jetsnap.edb and
 * its header (dbfile.c), the page-range lock and the buffer pool (buf.c).
 * Below it only base; above it the log (which replays into the pool) and
 * the tree.  Everything a higher layer needs of the database file is in a
 * db_store, which the instance embeds.
 *
 * Lock rules: pool->lock (frame table, pins, dirty bits, the unwritten
 * list), pool->spare_lock (spare page buffers), pool->arena.lock (the
 * pool's memory, arena.c) and rl->lock (the page-range lock's table) do no
 * I/O; spare_lock, arena.lock and rl->lock are leaves, and pool->lock takes
 * only spare_lock and arena.lock (a new frame and its buffer).
 * Frame content is guarded by the tree layer's tree_latch; the header copy
 * in memory by the instance's hdr_lock, which is taken before rl->lock
 * (header writes lock pages 0-1 for writing).
 * Lock order, this layer: [hdr_lock (instance)] -> pool->lock ->
 * {pool->spare_lock, pool->arena.lock}; rl->lock apart.
 * db_write_batch callers are serialized by the instance (ckpt_lock), which
 * guards file_pages.
 */
#ifndef JS_STORE_H
#define JS_STORE_H

#include <limits.h>
#include <stdint.h>
#include "base/base.h"
#include "store/page.h"

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
    js_mutex lock;                  /* guards the arrays below */
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
    uint8_t writing;            /* pool->lock: cleaned by a checkpoint, its write not yet landed */
    _Atomic uint8_t ref;        /* clock bit, a hint */
    _Atomic uint8_t loading;    /* a thread is reading it from disk */
    _Atomic(struct frame *) hnext; /* written under pool->lock; read lock-free */
    struct frame *uprev, *unext;   /* pool->lock: the unwritten list (dirty or writing) */
    uint8_t *data;              /* content: the tree's tree_latch (tree.h) */
} frame;

/* The pool's memory (arena.c): page buffers, frames and the hash table,
 * from mappings backed by huge pages where the kernel has them. */
struct arena_map;
typedef struct buf_arena {
    js_mutex lock;              /* leaf: guards the fields below */
    struct arena_map *maps;     /* every mapping, newest first */
    uint8_t *next, *end;        /* the newest mapping's bytes not handed out */
    uint8_t *faulted;           /* arena_prefault faulted it in up to here */
    struct arena_map *ready;    /* the next mapping, made ahead by arena_prefault */
    uint8_t *ready_faulted;     /* how far into ready it faulted */
    uint64_t mapped;            /* bytes of every mapping (ready included) */
    uint64_t handed;            /* bytes handed out by arena_alloc */
} buf_arena;

/** An empty arena: nothing mapped until the first arena_alloc. */
void arena_init(buf_arena *a);
/** size bytes, aligned to a cache line and zero-filled, that live until
 *  arena_destroy (nothing is freed one by one).  NULL when memory lacks. */
void *arena_alloc(buf_arena *a, size_t size);
/** Fault in the next `ahead` bytes arena_alloc will hand out (and the next
 *  mapping, when the current one ends sooner), so that their first user
 *  does not take the page faults: for a background thread.  Only advice. */
void arena_prefault(buf_arena *a, size_t ahead);
/** Bytes mapped and handed out so far. */
void arena_usage(buf_arena *a, uint64_t *mapped, uint64_t *handed);
/** Give back every mapping: no allocation of a may be used after. */
void arena_destroy(buf_arena *a);

typedef struct buf_pool {
    js_mutex lock;
    pthread_cond_t loaded;
    _Atomic(frame *) *hash;     /* heads written under lock, read lock-free */
    size_t nbuckets;
    frame **frames;
    size_t nframes, frames_cap;
    size_t cap;             /* soft limit in frames */
    size_t clock;
    size_t ndirty;
    frame *unwritten;       /* lock: the frames dirty or writing, so the
                               lists below cost what they hold, not the pool */
    size_t nunwritten;
    uint32_t page_size;
    js_mutex spare_lock;    /* leaf: guards the spare page buffers below */
    uint8_t *spare;         /* page buffers given back, kept for the next: a
                               list through each buffer's first 8 bytes */
    size_t nspare;
    buf_arena arena;        /* frames, page buffers and hash come from here */
} buf_pool;

/* ---------------- the database file ---------------- */
struct snapstore;
typedef struct db_store {
    int fd;                        /* jetsnap.edb, -1 when closed */
    char path[PATH_MAX];
    uint32_t page_size;
    range_lock rl;
    buf_pool pool;
    uint64_t file_pages;           /* pages allocated in the file: written by
                                      db_write_batch only, whose callers the
                                      instance serializes (ckpt_lock) */
    _Atomic uint32_t valid_below;  /* written bound (page.h): every page below it is
                                      valid on disk; raised by a checkpoint after its
                                      fsync, never lowered; 0 before the first */
    int recovering;                /* set during redo: zero pages allowed */
    int dwb_fd;                    /* jetsnap.dwb (dwb.c), -1 until dwb_start; it and
                                      the four below: dwb_start, then db_write_batch
                                      and db_sync only (their callers: ckpt_lock) */
    uint32_t dwb_next;             /* the next free slot */
    uint64_t dwb_seq;              /* the last batch's sequence number */
    uint64_t dwb_synced;           /* the last one recorded as durable in place */
    uint8_t *dwb_slot;             /* a slot's worth of buffer for records */
    int dwb_ours;                  /* dwb_repair found a valid header of ours */
    uint8_t dwb_sig[JS_SIG_LEN];   /* the database's signature, stamped in its header */
    _Atomic(struct snapstore *) snap; /* the snapshot store (snapstore.c), NULL
                                      when none: db_write_batch saves the old
                                      image of a page a snapshot still reads
                                      from the file before overwriting it.
                                      Set once, under ckpt_lock; read by the
                                      commit path's hook without it */
} db_store;

/* buf.c */
JET_ERR pool_init(buf_pool *pool, uint32_t page_size, uint64_t cache_bytes);
void pool_destroy(buf_pool *pool);
/** Pin page pgno, reading it from the database file when absent (verified;
 *  JET_errReadVerifyFailure names the page).  allow_zero: a never-written
 *  page comes back zeroed instead of failing (recovery). */
JET_ERR pool_get(db_store *st, uint32_t pgno, int allow_zero, frame **out);
/** Pin the frame of pgno, creating an empty one without reading when absent
 *  (the caller overwrites its content under the exclusive tree latch). */
JET_ERR pool_get_for_install(buf_pool *pool, uint32_t pgno, frame **out);
void pool_unpin(buf_pool *pool, frame *f);
/* pool_prefetch's stages, each to be run for every page of a group before
 * the next stage: each stage's loads hit what the one before fetched. */
enum { POOL_PREFETCH_BUCKET, POOL_PREFETCH_FRAME, POOL_PREFETCH_PAGE };
/** Start loading into the CPU cache what a lookup of pgno will touch: its
 *  hash bucket, then its frame, then its page's bytes.  A hint only: a page
 *  not in the pool is not read; nothing is pinned or changed.  The PAGE
 *  stage reads frame->data, so the caller holds what tree.h asks of a
 *  reader of frame content. */
void pool_prefetch(buf_pool *pool, uint32_t pgno, int stage);
/** A page-size buffer for a transaction's private page: a spare one (a
 *  buffer a commit or rollback gave back, likely still in the CPU's cache,
 *  with no trip through malloc) or a new one.  NULL when memory lacks. */
uint8_t *pool_page_alloc(buf_pool *pool);
/** Give back a buffer from pool_page_alloc or a frame's old one (NULL is
 *  ignored); kept as a spare, the first to be taken again. */
void pool_page_free(buf_pool *pool, uint8_t *buf);
/** Top the spare buffers up to a few MiB, their memory and as much after
 *  it faulted in (arena_prefault): called by a background thread, so that
 *  a growing tree's new pages and frames do not fault memory in on the
 *  commit path. */
void pool_stock_spares(buf_pool *pool);
/* What the pool holds now (pool_usage). */
typedef struct pool_usage_info {
    uint64_t frames, dirty, spares;   /* counts of page buffers */
    uint64_t cap;                     /* the soft limit, in frames */
    uint64_t mapped, handed;          /* the arena's bytes */
} pool_usage_info;
/** The pool's figures, each read under its own lock (so only nearly
 *  consistent with each other). */
void pool_usage(buf_pool *pool, pool_usage_info *out);
void pool_mark_dirty(buf_pool *pool, frame *f);
/** Collect the numbers of dirty pages, sorted; *out malloc'd. */
JET_ERR pool_dirty_list(buf_pool *pool, uint32_t **out, size_t *n);
/** Look up without reading: pinned frame or NULL. */
frame *pool_lookup(buf_pool *pool, uint32_t pgno);
/** Clear the dirty bit of a frame a checkpoint copied to write: it is
 *  "writing" until db_write_batch lands it (pool_written). */
void pool_clear_dirty(buf_pool *pool, frame *f);
/** The writes of pages pgnos[0..n) landed: their frames no longer writing. */
void pool_written(buf_pool *pool, const uint32_t *pgnos, uint32_t n);
/** Like pool_dirty_list, also the pages whose write is under way (copied
 *  and cleaned by a checkpoint, not yet in the file): what the file does
 *  not hold yet.  A snapshot's take lists them. */
JET_ERR pool_unwritten_list(buf_pool *pool, uint32_t **out, size_t *n);
size_t pool_ndirty(buf_pool *pool);

/* dbfile.c: the one write path of pages to jetsnap.edb */
/** Write n sealed pages, page pgnos[i] from pages + i * page_size, pgnos
 *  ascending and distinct, each contiguous run in one write under the
 *  range lock; grows the file in extents.  The snapshot store saves the
 *  old images the whole batch overwrites first (those ss_cow_prepare did
 *  not save already), with one fsync, and the new ones go to the
 *  doublewrite buffer (dwb_write) before any lands in place.  The first
 *  failed run stops it (later runs are not written). */
JET_ERR db_write_batch(db_store *st, const uint32_t *pgnos, const uint8_t *pages, uint32_t n);
/** fsync jetsnap.edb.  Every page written before is then durable in place,
 *  so the doublewrite buffer's slots are free again: callers that write
 *  pages sync through here (the checkpoint). */
JET_ERR db_sync(db_store *st);
/** Read len bytes at off of the file, untorn (under the range lock). */
JET_ERR db_read(db_store *st, uint64_t off, void *buf, size_t len, size_t *got);
/** Check n pages read from file (named in errors) into buf, the first being
 *  pgno, with the rule of page.h for a file whose written bound is
 *  valid_below.  The first bad page fails with JET_errReadVerifyFailure
 *  "page N of FILE: zeroed" (or "checksum mismatch", "holds page M");
 *  *nvalid (may be NULL) is raised by the number of valid pages. */
JET_ERR db_check_pages(const uint8_t *buf, uint32_t page_size, uint32_t pgno, uint32_t n, uint32_t valid_below,
                       const char *file, uint64_t *nvalid);
/** Read pages [lo, hi) of the file and require every one to be valid
 *  (restore: the pages above the copy's bound once replay and the final
 *  checkpoint have written theirs).  Errors as db_check_pages. */
JET_ERR db_verify_range(db_store *st, uint32_t lo, uint32_t hi);

/* ---------------- the doublewrite buffer (dwb.c) ---------------- */
/** At start, before anything reads a page: every page of jetsnap.edb that
 *  fails its checksum and has an image in a batch of jetsnap.dwb written
 *  since the last db_sync gets it, then jetsnap.edb is fsynced.
 *  *repaired counts them, *first names the first (for the event).  No
 *  file, or one of another database (dwb_sig) or page size: nothing done.
 *  Also learns the last sequence number, for dwb_start. */
JET_ERR dwb_repair(db_store *st, uint32_t *repaired, uint32_t *first);
/** What dwb_scan found: whether the file's header is this database's, the
 *  last batch's sequence number, how many batches follow the last sync. */
typedef struct dwb_scan_result {
    int ours;
    uint64_t last_seq;
    uint32_t batches;
} dwb_scan_result;
/** Called by dwb_scan with one page image (page_size bytes, valid by its
 *  own checksum) and its page number; an error stops the walk. */
typedef JET_ERR (*dwb_image_fn)(void *ctx, const uint8_t *image, uint32_t pgno);
/** The walk dwb_repair makes, read-only, for anyone (js_check): every
 *  image, valid by its own checksum, in the batches of the doublewrite
 *  buffer at path (a database signed sig, pages of ps bytes) written whole
 *  since its last sync, is handed to fn(ctx, image, pgno) in the order
 *  written; fn's error stops the walk and is returned.  No file, or one of
 *  another database or page size: nothing walked, success. */
JET_ERR dwb_scan(const char *path, uint32_t ps, const uint8_t sig[JS_SIG_LEN], dwb_image_fn fn, void *ctx,
                 dwb_scan_result *res);
/** Then: open (creating, with a durable directory entry; clearing one that
 *  was not ours) and allocate the file, and record every batch in it as
 *  synced.  Until it is called, dwb_write writes nothing (an instance
 *  being restored). */
JET_ERR dwb_start(db_store *st);
/** 1 when a batch of n pages does not fit in jetsnap.dwb before the next
 *  db_sync: the caller (the checkpoint) syncs first, and treats a failure
 *  of that fsync like any fsync failure after page writes. */
int dwb_full(const db_store *st, uint32_t n);
/** Write a batch record and the n sealed pages about to be written in
 *  place to jetsnap.dwb, and fsync it (db_write_batch, before its first
 *  in-place write).  JET_errInvalidParameter when dwb_full. */
JET_ERR dwb_write(db_store *st, const uint8_t *pages, uint32_t n);
/** Close the file and free its buffer. */
void dwb_close(db_store *st);

/* ---------------- the snapshot store (snapstore.c) ---------------- */
/*
 * Copy-on-write snapshots of jetsnap.edb (SPEC section 7, DESIGN section 7).
 * A snapshot is a commit point S and, per page, where its image of the page
 * is: saved in the store, or still the one in the database file.  The
 * instance takes it (instance/snapshot.c); this module keeps it durable and
 * saves old images in db_write_batch.
 *
 * Lock: ss->lock (a js_rwlock) guards everything in the store.  The flusher
 * holds it for writing across "save old images, write the database pages"
 * (db_write_batch), a snapshot reader for reading across "look up, read the
 * database file", so a reader never sees a page the flusher overwrote after
 * the reader decided the file still held its image.  Order: ckpt_lock ->
 * writer_lock -> ... -> ss->lock -> rl.lock; ss->lock -> state_lock (the
 * event sink).
 */
#define SS_NAME_MAX 64

/** What a snapshot is; filled by the instance at take time. */
typedef struct ss_meta {
    char name[SS_NAME_MAX + 1];
    int64_t created;               /* ms since the epoch */
    uint64_t log_position;         /* S: commits at or after it are not in the snapshot */
    int64_t last_commit_time;      /* ms; 0 unknown */
    uint32_t pages;                /* size of the image in pages (the high-water mark at S) */
    db_header hdr;                 /* the image's header: clean-shutdown, its own log signature */
} ss_meta;

/** Per snapshot, as listed (ss_list). */
typedef struct ss_entry_info {
    uint32_t id;                   /* never reused in this store */
    ss_meta meta;
    uint64_t pages_saved;          /* images of the store this snapshot reads (shared ones included) */
    JET_ERR invalid;               /* 0: valid; else why it became invalid */
    int opens;
} ss_entry_info;

typedef void (*ss_event_fn)(void *ctx, const char *name, JET_ERR err);

/** Open (creating when missing) the store in dbdir/snapshots for a
 *  database of page_size and db_sig; replays and compacts its index.
 *  on_invalid (may be NULL) is called, holding ss->lock, when a snapshot
 *  becomes invalid.  Errors: JET_errBadDbSignature (a store of another
 *  database), JET_errDiskIO, JET_errDiskFull, JET_errOutOfMemory. */
JET_ERR ss_open(const char *dbdir, uint32_t page_size, const uint8_t db_sig[JS_SIG_LEN], ss_event_fn on_invalid,
                void *ctx, struct snapstore **out);
/** At open, before recovery: clean (the database was shut down cleanly,
 *  so its final checkpoint wrote every page a lazy take left pending:
 *  each is saved or in the file) forgets the pending marks, durably;
 *  otherwise, for an instance that will not run recovery (no_log), the
 *  snapshots with pending pages become invalid.  Errors: JET_errDiskIO. */
JET_ERR ss_settle(struct snapstore *ss, int clean);
/** Close the store (no snapshot open).  NULL is a no-op. */
void ss_close(struct snapstore *ss);

/** Take, step 1 (caller holds the writer lock, so no commit runs): check the
 *  name is free and fewer than max snapshots exist, and register the
 *  snapshot, not yet listed.  From now on db_write_batch saves for it.
 *  Errors: JET_errDatabaseDuplicate, JET_errOSSnapshotNotAllowed (max). */
JET_ERR ss_begin(struct snapstore *ss, const ss_meta *m, uint32_t max, uint32_t *id);
/** Take, step 1 still: the n pages pgnos[i] that the file does not hold
 *  yet (dirty at S).  With pages (an instance without a log): their
 *  committed images at S (frame contents, sealed by ss_commit, out of the
 *  writer lock), one after the other, kept in memory until ss_commit.
 *  Without (pages NULL, a logged instance): a lazy take, the pages are
 *  only marked pending (snaplazy.c) and ss_before_change keeps their
 *  version when they change.  The store owns both arrays from now on. */
void ss_capture(struct snapstore *ss, uint32_t id, uint32_t *pgnos, uint8_t *pages, size_t n);
/** Before page pgno changes in the pool to a version with lsn (a commit
 *  installing it, holding the tree latch for writing; recovery's redo):
 *  every lazy snapshot whose S is at or before lsn and that has the page
 *  pending captures the pool's (or the file's) image of it now.  ss may
 *  be NULL; costs one atomic load while no snapshot has a pending page.
 *  A capture that fails (no memory) makes those snapshots invalid at
 *  their next read or save. */
void ss_before_change(struct snapstore *ss, db_store *st, uint32_t pgno, uint64_t lsn);
/** Take, step 2 (no engine lock held): write the captured images (or, lazy,
 *  the numbers of the pending pages) and the snapshot's record durably;
 *  the snapshot is listed from now on.  A lazy take needs the log durable
 *  up to S first (the caller flushes it).  On failure it is gone
 *  (JET_errDiskFull, JET_errDiskIO). */
JET_ERR ss_commit(struct snapstore *ss, uint32_t id);
/** Drop a snapshot that ss_begin registered and ss_commit never made. */
void ss_abort(struct snapstore *ss, uint32_t id);

/** Delete a snapshot and free its images.  Errors: JET_errOSSnapshotInvalidSnapId
 *  (no such name), JET_errDatabaseInUse (open), JET_errDiskIO. */
JET_ERR ss_delete(struct snapstore *ss, const char *name);
/** Copy out every listed snapshot; *out malloc'd (may be NULL when *n 0). */
JET_ERR ss_list(struct snapstore *ss, ss_entry_info **out, size_t *n);
/** Bytes of page images the store holds, each counted once. */
uint64_t ss_bytes_held(struct snapstore *ss);

/** Open a listed snapshot for ss_read (counted: ss_delete refuses while
 *  open).  *id and *info receive it.  Errors: JET_errOSSnapshotInvalidSnapId. */
JET_ERR ss_ref(struct snapstore *ss, const char *name, uint32_t *id, ss_entry_info *info);
void ss_unref(struct snapstore *ss, uint32_t id);
/** Read [off, off+len) of snapshot id's jetsnap.edb image: the header from
 *  its meta, each page from the store if saved there, else from st's file
 *  (untorn).  JET_errDiskIO for an invalid snapshot. */
JET_ERR ss_read(struct snapstore *ss, db_store *st, uint32_t id, uint64_t off, void *buf, size_t len, size_t *got);
/** Like ss_read, but [off, off+len) goes to emit as pieces: pages the
 *  snapshot still reads in jetsnap.edb as ranges of rfd (a descriptor of
 *  jetsnap.edb that reads ahead on its own; -1: st->fd, advised), the others
 *  (header, saved, pending, past the file's end) read into scratch (room
 *  for len + 2 pages); pc has room for cap pieces (len / page_size + 3 is
 *  enough).  emit runs with ss->lock held for reading and the file's range
 *  locked, so the ranges hold the snapshot's images until it returns (it
 *  must consume them by then and must not call into the engine); its error
 *  is returned.  emit is not called on an error before it. */
JET_ERR ss_read_pieces(struct snapstore *ss, db_store *st, int rfd, uint32_t id, uint64_t off, size_t len,
                       uint8_t *scratch, js_piece *pc, size_t cap, js_emit_fn emit, void *ctx);
/** A small blob kept with a snapshot for its life (the daemon's SHA256SUMS),
 *  durable.  Get: *len 0 when none; copies at most cap bytes. */
JET_ERR ss_note_set(struct snapstore *ss, uint32_t id, const void *data, uint32_t len);
JET_ERR ss_note_get(struct snapstore *ss, uint32_t id, void *buf, uint32_t cap, uint32_t *len);

/* Used by db_write_batch only: before pages pgnos[0..n) (sealed, in pages)
 * overwrite the file, save the file's image of each (or the image of an
 * earlier failed write of it: snapstore.c, "which image") for every
 * snapshot that still reads it there and whose image it is (the new page's
 * LSN is at or after the snapshot's S), durably: one append to the index
 * and one fsync of each store file for the whole batch.  Takes ss->lock
 * for writing; ss_cow_end releases it after the database writes.  A
 * failure to save invalidates the snapshots concerned and is not returned:
 * the live database goes on. */
void ss_cow_begin(struct snapstore *ss, db_store *st, const uint32_t *pgnos, const uint8_t *pages, uint32_t n);
/* Used by the checkpoint before its first db_write_batch: 1 when a
 * snapshot that is not invalid exists (so ss_cow_prepare may save). */
int ss_any(struct snapstore *ss);
/* The checkpoint's pages pgnos[0..n), whose versions in the pool have
 * the LSNs lsns[i] now (nonzero when logging): save what ss_cow_begin
 * would save for each once its batch is written, for the snapshots whose
 * S is at or before that LSN, with one fsync of each store file for the
 * whole checkpoint.  ckpt_lock held (no page write runs meanwhile); takes
 * and releases ss->lock.  Failures invalidate, as in ss_cow_begin. */
void ss_cow_prepare(struct snapstore *ss, db_store *st, const uint32_t *pgnos, const uint64_t *lsns, size_t n);
/* After the writes: the first nok pages landed, the rest did not (err set);
 * the store remembers the images of pages not written until a write of
 * them lands (snapstore.c, "unwritten"). */
void ss_cow_end(struct snapstore *ss, const uint32_t *pgnos, const uint8_t *pages, uint32_t n, uint32_t nok,
                JET_ERR err);
/* The same for a batch that failed before ss_cow_begin (growing the file). */
void ss_write_failed(struct snapstore *ss, const uint32_t *pgnos, const uint8_t *pages, uint32_t n);

#endif

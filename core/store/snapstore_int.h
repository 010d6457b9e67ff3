/*
 * snapstore_int.h - what the two files of the snapshot store share (not for
 * the rest of the core, which sees store.h): the store's memory and the
 * index records.  snapstore.c: the format (documented there), open and
 * replay, take, copy-on-write; snapread.c: delete, list, read, notes.
 */
#ifndef JS_SNAPSTORE_INT_H
#define JS_SNAPSTORE_INT_H

#include "store/store.h"

#define SS_DIR JS_SNAPSHOT_DIR
#define SS_PAGES "store.pages"
#define SS_IDX "store.idx"
#define SS_VERSION 2u   /* 2: PEND records (lazy snapshots); 1 still opens */
#define SLOT_NONE 0u
#define SLOT_PENDING UINT32_MAX   /* captured at take, in memory until ss_commit */

enum { R_HEADER = 1, R_CREATE, R_MAP, R_INVALID, R_DELETE, R_NOTE, R_PEND };

/* An image captured by ss_before_change: a lazy snapshot's version of a
 * page about to change in the pool, shared by every snapshot it serves. */
typedef struct ss_cap {
    uint32_t refs;
    uint8_t data[];
} ss_cap;


/* A page version with lsn is from before the snapshot's S (its own).  A
 * zero LSN is a change made without a log (no_log, after S: a snapshot
 * taken without a log has S 0 and owns no such write). */
static inline int ss_before_s(uint64_t lsn, uint64_t s)
{
    return lsn != 0 && lsn < s;
}

typedef struct snap_entry {
    uint32_t id;
    ss_meta meta;
    int ready;                  /* CREATE durable: listed */
    JET_ERR invalid;
    int opens;
    uint32_t *map;              /* [meta.pages]: slot, SLOT_NONE or SLOT_PENDING */
    uint64_t saved;             /* slots in map */
    uint32_t *pend_pgno;        /* captured at take (ss_capture): pages */
    uint8_t *pend_buf;          /*   and their images, until ss_commit (NULL: lazy) */
    size_t npend;
    /* Lazy (snaplazy.c): pages pending at take wait in the pool for their
     * first change or write; guarded by ss->cap_lock. */
    int lazy;
    uint32_t npending;          /* map entries still SLOT_PENDING */
    uint32_t *pend_list;        /* the pages of its last PEND record, as recorded (a */
    uint32_t npend_list;        /*   write before S is durable only at the next fsync) */
    ss_cap **caps;              /* [meta.pages] once one is captured, else NULL */
    JET_ERR cap_err;            /* a capture failed: invalid at the next save or read */
    uint8_t *note;
    uint32_t note_len;
    uint8_t hdr_pages[2 * 32768]; /* the image's pages 0 and 1 */
} snap_entry;

struct snapstore {
    js_rwlock lock;
    /* cap_lock (a leaf but for pool->lock and a pread): the lazy snapshots'
     * pending marks and captures, and the snaps array's membership, so the
     * commit path's hook reads them without ss->lock (which a checkpoint
     * holds across its fsync).  Order: ss->lock -> cap_lock. */
    js_mutex cap_lock;
    _Atomic uint32_t lazy_snaps;    /* snapshots with pending pages: 0, the hook returns at once */
    char dir[PATH_MAX], pages_path[PATH_MAX], idx_path[PATH_MAX];
    int pages_fd, idx_fd;
    uint64_t idx_end;
    uint32_t page_size;
    uint8_t db_sig[JS_SIG_LEN];
    snap_entry **snaps;
    size_t nsnaps, snaps_cap;
    uint32_t next_id;
    uint32_t *refs;             /* per slot: snapshots reading it (slot 0: header) */
    uint64_t nslots, refs_cap;
    uint32_t *free_slots;
    size_t nfree, free_cap;
    uint64_t live_slots;
    ss_event_fn on_invalid;
    void *ev_ctx;
    uint8_t *scratch;           /* page_size: the flusher's old-image buffer */
    uint8_t *mbuf;              /* MAP records queued for one append (snapstore.c) */
    size_t mlen, mcap;
    /* Pages whose database write failed (snapstore.c, "unwritten"): the
     * image that did not land, until a write of the page succeeds. */
    uint32_t *unw_pgno;
    uint8_t *unw_img;           /* [unw_cap * page_size] */
    size_t nunw, unw_cap;
    int unw_lost;               /* one could not be kept: take refuses */
};

/** Record length for a payload of payload bytes (header, 8-aligned). */
size_t ss_rec_len(size_t payload);
/** Fill a record's header (type, length) and its CRC. */
void ss_rec_seal(uint8_t *r, int type, size_t len);
/** Append a record to the index (no fsync). */
JET_ERR ss_idx_append(struct snapstore *ss, const uint8_t *r, size_t len);
/** A record of two u32 (INVALID, DELETE) into r (32 bytes); its length. */
size_t ss_enc_small(uint8_t *r, int type, uint32_t a, uint32_t b);
/** The snapshot of an id or a name, NULL when none.  ss->lock held. */
snap_entry *ss_find_id(struct snapstore *ss, uint32_t id);
snap_entry *ss_find_name(struct snapstore *ss, const char *name);
/** Drop e from memory; release: its images are freed too (a delete),
 *  else they stay in the files (close).  ss->lock held for writing. */
void ss_entry_free(struct snapstore *ss, snap_entry *e, int release);

/* snapstore.c, for snaptake.c, snapread.c and snaplazy.c */
/** Rewrite the index from memory (temp, fsync, rename, fsync dir); on
 *  failure the old index stays in use.  ss->lock held for writing. */
JET_ERR ss_compact(struct snapstore *ss);
/** The CREATE record of e into r (256 bytes); its length. */
size_t ss_enc_create(const snap_entry *e, uint8_t *r);
/** A new entry in memory for id and m (not ready), in the snaps array. */
snap_entry *ss_entry_new(struct snapstore *ss, uint32_t id, const ss_meta *m);
/** Undo slot_alloc of a slot no record names. */
void ss_slot_unalloc(struct snapstore *ss, uint32_t slot);
/** Queue a MAP record in ss->mbuf; ss_map_flush appends the queue in one write. */
JET_ERR ss_map_queue(struct snapstore *ss, uint32_t slot, uint32_t pgno, uint32_t crc, const uint32_t *ids,
                     uint32_t nids);
JET_ERR ss_map_flush(struct snapstore *ss);

/* snaplazy.c */
/** Drop e's captures and pending count; cap_lock held. */
void ss_lazy_drop(struct snapstore *ss, snap_entry *e);
/** Mark the n pages pgnos pending for lazy snapshot e (take; replay of a
 *  PEND record): those with no image yet.  cap_lock held. */
void ss_lazy_mark(struct snapstore *ss, snap_entry *e, const uint32_t *pgnos, size_t n);
/** Append e's PEND record (pend_list, as last recorded) to the index. */
JET_ERR ss_lazy_record(struct snapstore *ss, snap_entry *e);
/** Checkpoint write of page p (sealed image with lsn) about to land: for
 *  every lazy snapshot with p pending and lsn at or after its S, save the
 *  captured image (queued MAP, shared).  ss->lock held for writing; sets
 *  mark/why per snapshot index as ss_cow_begin does; 1 if it saved one. */
int ss_lazy_save(struct snapstore *ss, uint32_t p, uint64_t lsn, uint8_t *mark, JET_ERR *why);
/** After the write of page p with lsn landed: lazy snapshots whose S is
 *  after lsn find their version in the file now.  ss->lock held. */
void ss_lazy_resolve(struct snapstore *ss, uint32_t p, uint64_t lsn);
/** Page q of lazy snapshot e, pending: its capture, else the pool's frame,
 *  else the file's page, into dst (sealed).  ss->lock held for reading. */
JET_ERR ss_lazy_read(struct snapstore *ss, db_store *st, snap_entry *e, uint32_t q, uint8_t *dst);
/** Write image (sealed page pgno) into a new slot and queue its MAP record
 *  naming ids (snapstore.c); no fsync; the slot's refs are the caller's. */
JET_ERR ss_save_image(struct snapstore *ss, uint32_t pgno, const uint8_t *img, const uint32_t *ids, uint32_t nids,
                      uint32_t *slot_out);

#endif

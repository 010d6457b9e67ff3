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
#define SS_VERSION 1u
#define SLOT_NONE 0u
#define SLOT_PENDING UINT32_MAX   /* captured at take, in memory until ss_commit */

enum { R_HEADER = 1, R_CREATE, R_MAP, R_INVALID, R_DELETE, R_NOTE };


typedef struct snap_entry {
    uint32_t id;
    ss_meta meta;
    int ready;                  /* CREATE durable: listed */
    JET_ERR invalid;
    int opens;
    uint32_t *map;              /* [meta.pages]: slot, SLOT_NONE or SLOT_PENDING */
    uint64_t saved;             /* slots in map */
    uint32_t *pend_pgno;        /* captured at take (ss_capture): pages */
    uint8_t *pend_buf;          /*   and their images, until ss_commit */
    size_t npend;
    uint8_t *note;
    uint32_t note_len;
    uint8_t hdr_pages[2 * 32768]; /* the image's pages 0 and 1 */
} snap_entry;

struct snapstore {
    js_rwlock lock;
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

#endif

/*
 * tview.h - a view of the tree's pages for one operation or transaction.
 *
 * A read view sees committed pages in the buffer pool (the caller holds the
 * tree latch shared).  A write view belongs to the one write transaction:
 * pages it changes are private copies until commit installs them, so no
 * reader ever sees them half-done and rollback is just dropping the copies.
 */
#ifndef JS_TVIEW_H
#define JS_TVIEW_H

#include "store/store.h"

/* What a private page was at the view's savepoint (tpage.sp_state, valid
 * while tpage.sp_gen equals tview.sp_gen). */
enum { TP_SP_NONE = 0, TP_SP_SAVED = 1, TP_SP_CREATED = 2 };

/* Byte ranges of a private page written through tv_write_part, kept so
 * commit logs them without comparing the page with its committed one. */
#define TP_RANGES 8u

typedef struct tpage {
    uint32_t pgno;          /* 0: empty slot */
    uint8_t *data;          /* the private copy */
    frame *orig;            /* pinned committed frame, NULL for a new page */
    uint8_t *undo;          /* TP_SP_SAVED: the page at the savepoint (its
                               live bytes only, see tv_savepoint) */
    uint32_t sp_gen;        /* savepoint generation sp_state belongs to */
    uint8_t sp_state;
    /* Unless whole: every byte of data that may differ from orig lies in
     * rng[0..nrng) (sorted, disjoint, [lo, hi)).  whole: compare them. */
    uint8_t whole;
    uint8_t nrng;
    struct { uint16_t lo, hi; } rng[TP_RANGES];
} tpage;

typedef struct tview {
    db_store *st;
    int writable;
    frame **pins;           /* committed frames pinned by this view */
    size_t npins, pins_cap;
    tpage *pages;           /* open-addressing table of private pages */
    size_t npages, pages_cap;
    /* Savepoint (write views): pages saved or created since it. */
    int sp_on;
    uint32_t sp_gen;
    uint32_t *sp_list;      /* their page numbers, each once */
    size_t sp_n, sp_cap;
} tview;

void tv_init(tview *v, db_store *st, int writable);
/** Unpin every frame; drop private pages (rollback) unless kept. */
void tv_release(tview *v);
/** The page as this view sees it (private copy first).  NULL on error. */
const uint8_t *tv_read(tview *v, uint32_t pgno, JET_ERR *err);
/** A private, writable copy of the page (write views only).  NULL on error. */
uint8_t *tv_write(tview *v, uint32_t pgno, JET_ERR *err);
/** tv_write for a caller that reports every byte it changes with
 *  tv_wrote before the view commits, so commit logs those bytes without
 *  comparing the whole page.  A tv_write of the same page in the same
 *  transaction falls back to the comparison. */
uint8_t *tv_write_part(tview *v, uint32_t pgno, JET_ERR *err);
/** Bytes [off, off+len) of private page pgno were (or may be) changed.
 *  Ranges that do not fit the page's table, or one of more than a quarter
 *  of the page, turn it into a comparison. */
void tv_wrote(tview *v, uint32_t pgno, uint32_t off, uint32_t len);
/** Encode a REC_DELTA record of page bytes [16, page size) between
 *  tp->orig (must be set) and tp->data into out: record header (left to
 *  the caller), u32 pgno (also left), u16 nruns, then runs {u16 offset,
 *  u16 length, bytes}; from the page's ranges when it has them, else by
 *  comparing.  Returns the record's total length, or 0 when it would be
 *  more than half a page (an image is then logged). */
uint32_t tv_encode_delta(const tpage *tp, uint32_t page_size, uint8_t *out);
/** Encode a REC_ZIMAGE record of tp->data into out, laid out as
 *  tv_encode_delta's: the runs of its bytes [16, page size) that are not
 *  zero (redo starts from a zero page).  Returns the record's total length,
 *  or 0 when it would not be shorter than a whole image (REC_IMAGE). */
uint32_t tv_encode_sparse(const tpage *tp, uint32_t page_size, uint8_t *out);
/** A new page of the given type: from the free list, else past the high
 *  water mark.  NULL on error. */
uint8_t *tv_alloc(tview *v, uint8_t type, uint32_t *pgno, JET_ERR *err);
/** Put a page on the free list. */
JET_ERR tv_free(tview *v, uint32_t pgno);
/** Mark a savepoint (write views): from now on the first change of each
 *  private page keeps its live bytes aside (header, slot array and cells of
 *  a B+tree page, the fields of the meta page, all of any other page), and
 *  pages added since are remembered, so tv_rollback_savepoint can put the
 *  view back.  Replaces the previous savepoint; O(1). */
void tv_savepoint(tview *v);
/** Put every private page back as it was at the savepoint (a page's free
 *  middle may keep other bytes: it is not part of its content) and drop the
 *  pages added since.  Allocates nothing, cannot fail.  The savepoint
 *  stays, at the same state. */
void tv_rollback_savepoint(tview *v);

#endif

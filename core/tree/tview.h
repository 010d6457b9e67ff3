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

typedef struct tpage {
    uint32_t pgno;          /* 0: empty slot */
    uint8_t *data;          /* the private copy */
    frame *orig;            /* pinned committed frame, NULL for a new page */
} tpage;

typedef struct tview {
    db_store *st;
    int writable;
    frame **pins;           /* committed frames pinned by this view */
    size_t npins, pins_cap;
    tpage *pages;           /* open-addressing table of private pages */
    size_t npages, pages_cap;
} tview;

void tv_init(tview *v, db_store *st, int writable);
/** Unpin every frame; drop private pages (rollback) unless kept. */
void tv_release(tview *v);
/** The page as this view sees it (private copy first).  NULL on error. */
const uint8_t *tv_read(tview *v, uint32_t pgno, JET_ERR *err);
/** A private, writable copy of the page (write views only).  NULL on error. */
uint8_t *tv_write(tview *v, uint32_t pgno, JET_ERR *err);
/** A new page of the given type: from the free list, else past the high
 *  water mark.  NULL on error. */
uint8_t *tv_alloc(tview *v, uint8_t type, uint32_t *pgno, JET_ERR *err);
/** Put a page on the free list. */
JET_ERR tv_free(tview *v, uint32_t pgno);

#endif

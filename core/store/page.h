/*
 * page.h - the page format shared by every page of jetsnap.edb.
 *
 * A page is page_size bytes (4, 8, 16 or 32 KiB).  Page n sits at byte
 * n * page_size.  Pages 0 and 1 hold the database header (twice), page 2 the
 * tree's meta page, pages 3.. the tree, overflow chains and free pages.
 *
 * Every page starts with this 32-byte header (little-endian):
 *   0  u32 crc       CRC32C over bytes 4..page_size-1, with the page number
 *                    as the initial value (so a page written to the wrong
 *                    place fails its check too)
 *   4  u32 pgno      the page's own number
 *   8  u64 lsn       log position of the last change (redo skips records at
 *                    or below it)
 *  16  u8  type      PG_HEADER, PG_META, PG_LEAF, PG_BRANCH, PG_OVERFLOW, PG_FREE
 *  17  u8  flags
 *  18  u16 nslots    B+tree pages: number of slots
 *  20  u32 aux       branch: leftmost child; overflow/free: next page
 *  24  u16 cell_lo   B+tree pages: lowest byte used by cells (cells grow down
 *                    from the end of the page; the slot array grows up from 32)
 *  26  u16 frag      B+tree pages: bytes of dead cells below the live ones
 *  28  u32 aux2      overflow: payload bytes in this page
 * Validity: the page is valid when crc matches and pgno equals its position.
 * Page sizes up to 32 KiB keep every in-page offset within a u16.
 *
 * Which pages must be valid (zero is corruption where a page is in use):
 * every page below the meta page's high-water mark (META_NEXT in store.h) is
 * in use: a B+tree, overflow or free-list page (a freed page is rewritten as
 * PG_FREE, never zeroed).  Pages 0..2 are written when the file is created.
 * A page is first written by the checkpoint after the transaction that
 * allocated it, and the file's extents are zero-filled when they grow, so an
 * in-use page may be all zero on disk until then; after it, never again.
 * A checkpoint reads the high-water mark H at its redo point and writes
 * every page dirty there, so once it has fsynced, every page below H is on
 * disk and valid: H is the checkpoint's "written bound" (inst->valid_below,
 * kept in edb.chk and in a backup copy's header, see store.h).  Hence:
 *   - below the written bound a page must be valid; all zero there is
 *     corruption ("page N of FILE: zeroed", JET_errReadVerifyFailure);
 *   - at or above it an all-zero page is "not written yet" (replay or the
 *     next checkpoint writes it) or unallocated, and is accepted;
 *   - a non-zero page that fails its checksum is corrupt anywhere.
 * The bound of a file: a clean-shutdown or just-created database, the meta
 * page's high-water mark; a dirty one, edb.chk's bound; a raw backup copy,
 * its header's valid_below (0 in copies made before the field: unknown,
 * zero pages accepted as before).
 */
#ifndef JS_PAGE_H
#define JS_PAGE_H

#include <stdint.h>
#include <string.h>

#define PG_HDR_SIZE 32u

enum pg_type {
    PG_NONE = 0, PG_HEADER = 1, PG_META = 2, PG_LEAF = 3, PG_BRANCH = 4,
    PG_OVERFLOW = 5, PG_FREE = 6
};

enum pg_status { PG_OK = 0, PG_ZERO = 1, PG_BAD = 2 };

#define PG_META_PGNO 2u
#define PG_FIRST_DATA 3u

static inline uint16_t pg_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t pg_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t pg_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void pg_put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void pg_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void pg_put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Header field accessors. */
static inline uint32_t pg_pgno(const uint8_t *pg) { return pg_u32(pg + 4); }
static inline uint64_t pg_lsn(const uint8_t *pg) { return pg_u64(pg + 8); }
static inline void pg_set_lsn(uint8_t *pg, uint64_t lsn) { pg_put64(pg + 8, lsn); }
static inline uint8_t pg_type(const uint8_t *pg) { return pg[16]; }
static inline uint16_t pg_nslots(const uint8_t *pg) { return pg_u16(pg + 18); }
static inline void pg_set_nslots(uint8_t *pg, uint16_t n) { pg_put16(pg + 18, n); }
static inline uint32_t pg_aux(const uint8_t *pg) { return pg_u32(pg + 20); }
static inline void pg_set_aux(uint8_t *pg, uint32_t v) { pg_put32(pg + 20, v); }
static inline uint16_t pg_cell_lo(const uint8_t *pg) { return pg_u16(pg + 24); }
static inline void pg_set_cell_lo(uint8_t *pg, uint16_t v) { pg_put16(pg + 24, v); }
static inline uint16_t pg_frag(const uint8_t *pg) { return pg_u16(pg + 26); }
static inline void pg_set_frag(uint8_t *pg, uint16_t v) { pg_put16(pg + 26, v); }
static inline uint32_t pg_aux2(const uint8_t *pg) { return pg_u32(pg + 28); }
static inline void pg_set_aux2(uint8_t *pg, uint32_t v) { pg_put32(pg + 28, v); }

/** Zero the page and write its header fields (number, type; B+tree pages
 *  get an empty slot array and cell area). */
void pg_init(uint8_t *pg, uint32_t page_size, uint32_t pgno, uint8_t type);
/** Compute and store the checksum (and the page number). */
void pg_seal(uint8_t *pg, uint32_t page_size, uint32_t pgno);
/** PG_OK, PG_ZERO (all zero) or PG_BAD (checksum or number mismatch). */
int pg_verify(const uint8_t *pg, uint32_t page_size, uint32_t pgno);
/** Apply the rule above to page pgno of a file whose written bound is
 *  valid_below: PG_OK; PG_ZERO for an all-zero page at or above the bound
 *  (accepted); PG_BAD otherwise, with the reason ("zeroed", "checksum
 *  mismatch", "holds page M") written into why (cap bytes). */
int pg_check(const uint8_t *pg, uint32_t page_size, uint32_t pgno, uint32_t valid_below, char *why, size_t cap);
/** 1 when page_size is one of 4096, 8192, 16384, 32768. */
int pg_size_valid(uint64_t page_size);

#endif

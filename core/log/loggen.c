/*
 * loggen.c - the log generation file format and its reader.
 *
 * A generation is a fixed-size file of 512-byte blocks.  Every block starts
 * with a 16-byte header (little-endian):
 *    0 u32 crc    CRC32C over bytes 4..511 of the block
 *    4 u32 gen    the generation the block belongs to
 *    8 u32 index  the block's position in the file
 *   12 u16 used   payload bytes used (the rest is padding)
 *   14 u8  kind   BLK_HEADER (block 0), BLK_DATA, BLK_CLOSE
 *   15 u8  0
 * Block 0's payload is the generation header:
 *    0 "JSNAPLOG"  8 u32 version  12 u32 gen  16 u8[16] log signature
 *   32 u8[16] db signature  48 i64 created  56 i64 previous generation's
 *   creation time  64 u32 previous generation's digest  68 u32 previous
 *   generation's close-block index  72 u64 file size  80 u32 page size
 * Data blocks carry a byte stream of records; a record never crosses a
 * generation, and a flush pads the block it ends in, so a block that was
 * acknowledged is never rewritten (a flush that failed rewrites its own
 * blocks, unchanged, at the same place).  Records: u8 type, u8 flags, u16 0,
 * u32 length, then the payload (REC_IMAGE = 1: u32 pgno + page; REC_DELTA =
 * 2: u32 pgno, u16 nruns, runs of {u16 offset, u16 length, bytes};
 * REC_COMMIT = 3: u64 transaction id, i64 time in ms, then (since issue 13,
 * payload 24 bytes) i64 wall-clock commit time in microseconds, which
 * --until-time compares; a 16-byte commit record (older logs) still
 * replays, its time taken as ms * 1000; REC_ABORT = 4: u64
 * transaction id, 0 when written by recovery; REC_ZIMAGE = 5: a page image
 * that is zero but for its runs, laid out as REC_DELTA: u32 pgno, u16
 * nruns, runs over bytes [16, page size) - a page half full after a split
 * costs half a page, not a whole one).  A transaction is its
 * records up to its REC_COMMIT, which may lie in a later generation; a
 * REC_ABORT instead cancels them (the transaction failed after some of its
 * records were appended, or recovery found it unfinished at the end of
 * the log).  The block before the close block is kept for an abort record.  A record's LSN is (gen << 32) | the byte
 * offset of its first byte in the file.
 * A closed generation ends with a BLK_CLOSE block whose payload holds
 * {u32 its own index, u32 digest, i64 close time}; the digest is the running
 * CRC32C over the crc fields of blocks 1..index-1.  The next generation's
 * header repeats the digest and the index: that is the chain.
 * Validity: a closed generation is valid when every block up to the close
 * block passes its check and the digest matches.  The current generation
 * (edb.log) ends at its first bad block; that block may be torn (a crash
 * during a write), but if any later block is valid the file is corrupt.
 */
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLK_HEADER 3
#define BLK_DATA 1
#define BLK_CLOSE 2
#define LOG_MAGIC "JSNAPLOG"
#define LOG_VERSION 1u
#define SCAN_CHUNK_BLOCKS 2048u

void loggen_name(char *out, size_t cap, const char *dir, uint32_t gen)
{
    snprintf(out, cap, "%s/edb%08X.log", dir, gen);
}

JET_ERR loggen_list(const char *dir, uint32_t *min_gen, uint32_t *max_gen)
{
    DIR *d = opendir(dir);
    *min_gen = *max_gen = 0;
    if (!d)
        return os_err(errno, "opendir", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned g;
        char tail[8];
        if (strlen(de->d_name) == 15 && sscanf(de->d_name, "edb%8X%4s", &g, tail) == 2 && !strcmp(tail, ".log") &&
            strspn(de->d_name + 3, "0123456789ABCDEF") == 8 && g > 0) {
            if (!*min_gen || g < *min_gen)
                *min_gen = g;
            if (g > *max_gen)
                *max_gen = g;
        }
    }
    closedir(d);
    return JET_errSuccess;
}

void loggen_seal_block(uint8_t *blk)
{
    pg_put32(blk, js_crc32c(0, blk + 4, LOG_BLOCK - 4));
}

static int blk_valid(const uint8_t *blk, uint32_t gen, uint32_t index)
{
    return pg_u32(blk) == js_crc32c(0, blk + 4, LOG_BLOCK - 4) && pg_u32(blk + 4) == gen &&
           pg_u32(blk + 8) == index && pg_u16(blk + 12) <= LOG_PAYLOAD;
}

static int blk_zero(const uint8_t *blk)
{
    for (uint32_t i = 0; i < LOG_BLOCK; i += 8)
        if (pg_u64(blk + i))
            return 0;
    return 1;
}

void loggen_encode_header(const loggen_hdr *h, uint8_t *blk)
{
    memset(blk, 0, LOG_BLOCK);
    pg_put32(blk + 4, h->gen);
    pg_put32(blk + 8, 0);
    pg_put16(blk + 12, 84);
    blk[14] = BLK_HEADER;
    uint8_t *p = blk + LOG_BLK_HDR;
    memcpy(p, LOG_MAGIC, 8);
    pg_put32(p + 8, LOG_VERSION);
    pg_put32(p + 12, h->gen);
    memcpy(p + 16, h->log_sig, JS_SIG_LEN);
    memcpy(p + 32, h->db_sig, JS_SIG_LEN);
    pg_put64(p + 48, (uint64_t)h->created);
    pg_put64(p + 56, (uint64_t)h->prev_created);
    pg_put32(p + 64, h->prev_digest);
    pg_put32(p + 68, h->prev_blocks);
    pg_put64(p + 72, h->file_size);
    pg_put32(p + 80, h->page_size);
    loggen_seal_block(blk);
}

JET_ERR loggen_read_header(int fd, const char *path, loggen_hdr *out)
{
    uint8_t blk[LOG_BLOCK];
    size_t got = 0;
    JET_ERR err = os_pread(fd, path, blk, LOG_BLOCK, 0, &got);
    if (err)
        return err;
    const uint8_t *p = blk + LOG_BLK_HDR;
    if (got < LOG_BLOCK || memcmp(p, LOG_MAGIC, 8) != 0)
        return js_fail(JET_errLogFileCorrupt, "%s: not a jetsnap log generation", path);
    if (!blk_valid(blk, pg_u32(blk + 4), 0) || blk[14] != BLK_HEADER || pg_u32(p + 8) != LOG_VERSION)
        return JS_CORRUPT(JET_errLogReadVerifyFailure, "%s: generation header fails its checksum", path);
    memset(out, 0, sizeof *out);
    out->gen = pg_u32(p + 12);
    memcpy(out->log_sig, p + 16, JS_SIG_LEN);
    memcpy(out->db_sig, p + 32, JS_SIG_LEN);
    out->created = (int64_t)pg_u64(p + 48);
    out->prev_created = (int64_t)pg_u64(p + 56);
    out->prev_digest = pg_u32(p + 64);
    out->prev_blocks = pg_u32(p + 68);
    out->file_size = pg_u64(p + 72);
    out->page_size = pg_u32(p + 80);
    return JET_errSuccess;
}

/* Reassembles records from block payloads. */
struct rec_asm {
    uint8_t *buf;
    uint32_t cap, have, need;   /* need: total record size once the header is in */
    uint64_t lsn;
};

/* Feed the records of data block i (valid) into the assembler, calling fn
 * for every complete record at or after start_lsn. */
static JET_ERR scan_block_records(struct rec_asm *ra, const uint8_t *blk, uint32_t i, const loggen_hdr *hdr,
                                  const char *path, uint64_t start_lsn, loggen_rec_fn fn, void *ctx,
                                  loggen_scan_result *res)
{
    JET_ERR err = JET_errSuccess;
    uint32_t used = pg_u16(blk + 12);
    uint32_t off = 0;
    while (off < used) {
        if (ra->have == 0)
            ra->lsn = LSN_MAKE(hdr->gen, (uint64_t)i * LOG_BLOCK + LOG_BLK_HDR + off);
        uint32_t want = ra->have < REC_HDR ? REC_HDR - ra->have : ra->need - ra->have;
        uint32_t take = used - off < want ? used - off : want;
        memcpy(ra->buf + ra->have, blk + LOG_BLK_HDR + off, take);
        ra->have += take;
        off += take;
        if (ra->have == REC_HDR) {
            uint32_t len = pg_u32(ra->buf + 4);
            uint8_t type = ra->buf[0];
            if (type < REC_IMAGE || type > REC_TYPE_MAX || len + REC_HDR > ra->cap) {
                err = JS_CORRUPT(JET_errLogReadVerifyFailure,
                                 "generation %08X (%s): block %u holds a malformed record", hdr->gen,
                                 path, i);
                return err;
            }
            ra->need = REC_HDR + len;
        }
        if (ra->have >= REC_HDR && ra->have == ra->need) {
            res->records++;
            if (fn && ra->lsn >= start_lsn) {
                err = fn(ctx, ra->lsn, ra->buf[0], ra->buf + REC_HDR, ra->need - REC_HDR);
                if (err)
                    return err;
            }
            ra->have = ra->need = 0;
        }
    }
    if (used < LOG_PAYLOAD && ra->have != 0) {
        err = JS_CORRUPT(JET_errLogReadVerifyFailure,
                         "generation %08X (%s): record cut by padding at block %u", hdr->gen, path, i);
        return err;
    }
    return JET_errSuccess;
}

/* The current generation ended at end_blk: nothing valid may follow it, or
 * the end was a damaged block in the middle, not a torn tail. */
static JET_ERR scan_after_end(int fd, const char *path, uint8_t *chunk, uint32_t gen, uint32_t end_blk,
                              uint32_t nblocks)
{
    for (uint32_t j = end_blk + 1; j < nblocks;) {
        uint32_t n = nblocks - j < SCAN_CHUNK_BLOCKS ? nblocks - j : SCAN_CHUNK_BLOCKS;
        size_t got = 0;
        JET_ERR err = os_pread(fd, path, chunk, (size_t)n * LOG_BLOCK, (uint64_t)j * LOG_BLOCK, &got);
        if (err)
            return err;
        n = (uint32_t)(got / LOG_BLOCK);
        if (n == 0)
            break;
        for (uint32_t k = 0; k < n; k++, j++)
            if (blk_valid(chunk + (size_t)k * LOG_BLOCK, gen, j))
                return JS_CORRUPT(JET_errLogReadVerifyFailure,
                                  "generation %08X (%s): block %u fails its checksum but block %u after it is valid",
                                  gen, path, end_blk, j);
    }
    return JET_errSuccess;
}

JET_ERR loggen_scan(const char *path, int is_current, uint64_t start_lsn,
                    loggen_rec_fn fn, void *ctx, loggen_hdr *hdr_out, loggen_scan_result *res)
{
    int fd = -1;
    uint8_t *chunk = NULL;
    struct rec_asm ra = { 0 };
    loggen_hdr hdr;
    JET_ERR err;
    memset(res, 0, sizeof *res);

    err = os_open(path, O_RDONLY, 0, &fd);
    if (err)
        goto out;
    err = loggen_read_header(fd, path, &hdr);
    if (err)
        goto out;
    if (hdr_out)
        *hdr_out = hdr;
    uint64_t fsize = 0;
    err = os_size(fd, path, &fsize);
    if (err)
        goto out;
    uint32_t nblocks = (uint32_t)(fsize / LOG_BLOCK);
    chunk = malloc((size_t)SCAN_CHUNK_BLOCKS * LOG_BLOCK);
    ra.cap = REC_HDR + 8 + 32768 + 64;
    ra.buf = malloc(ra.cap);
    if (!chunk || !ra.buf) {
        err = js_fail(JET_errOutOfMemory, "log scan buffers");
        goto out;
    }
    uint32_t digest = 0;
    int ended = 0;
    uint32_t i = 1;
    while (i < nblocks && !ended) {
        uint32_t n = nblocks - i < SCAN_CHUNK_BLOCKS ? nblocks - i : SCAN_CHUNK_BLOCKS;
        size_t got = 0;
        err = os_pread(fd, path, chunk, (size_t)n * LOG_BLOCK, (uint64_t)i * LOG_BLOCK, &got);
        if (err)
            goto out;
        n = (uint32_t)(got / LOG_BLOCK);
        if (n == 0)
            break;
        for (uint32_t k = 0; k < n && !ended; k++, i++) {
            const uint8_t *blk = chunk + (size_t)k * LOG_BLOCK;
            if (!blk_valid(blk, hdr.gen, i)) {
                if (!is_current) {
                    err = JS_CORRUPT(JET_errLogReadVerifyFailure,
                                     "generation %08X (%s): block %u fails its checksum", hdr.gen, path, i);
                    goto out;
                }
                res->end_blk = i;
                res->torn = !blk_zero(blk);
                ended = 1;
                break;
            }
            if (blk[14] == BLK_CLOSE) {
                if (pg_u32(blk + LOG_BLK_HDR) != i || pg_u32(blk + LOG_BLK_HDR + 4) != digest) {
                    err = JS_CORRUPT(JET_errLogReadVerifyFailure,
                                     "generation %08X (%s): close block %u does not match the blocks before it",
                                     hdr.gen, path, i);
                    goto out;
                }
                res->end_blk = i;
                res->closed = 1;
                ended = 1;
                break;
            }
            if (blk[14] != BLK_DATA) {
                err = JS_CORRUPT(JET_errLogReadVerifyFailure, "generation %08X (%s): block %u has kind %u",
                                 hdr.gen, path, i, blk[14]);
                goto out;
            }
            uint32_t crc = pg_u32(blk);
            digest = js_crc32c(digest, &crc, 4);
            res->blocks++;
            err = scan_block_records(&ra, blk, i, &hdr, path, start_lsn, fn, ctx, res);
            if (err)
                goto out;
        }
    }
    if (!ended) {
        if (!is_current) {
            err = JS_CORRUPT(JET_errLogReadVerifyFailure, "generation %08X (%s): no close block", hdr.gen, path);
            goto out;
        }
        res->end_blk = i;
    }
    res->digest = digest;
    res->partial = ra.have != 0;
    if (is_current && !res->closed)
        err = scan_after_end(fd, path, chunk, hdr.gen, res->end_blk, nblocks);
out:
    free(chunk);
    free(ra.buf);
    os_close(fd);
    return err;
}

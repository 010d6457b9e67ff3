/*
 * page.c - seal and verify pages (format in page.h).
 */
#include "store/page.h"
#include "base/crc32c.h"

#include <stdio.h>

static uint32_t pg_crc(const uint8_t *pg, uint32_t page_size, uint32_t pgno)
{
    return js_crc32c(pgno, pg + 4, page_size - 4);
}

void pg_init(uint8_t *pg, uint32_t page_size, uint32_t pgno, uint8_t type)
{
    memset(pg, 0, page_size);
    pg_put32(pg + 4, pgno);
    pg[16] = type;
    if (type == PG_LEAF || type == PG_BRANCH)
        pg_set_cell_lo(pg, (uint16_t)(page_size == 65536 ? 65535 : page_size));
}

void pg_seal(uint8_t *pg, uint32_t page_size, uint32_t pgno)
{
    pg_put32(pg + 4, pgno);
    pg_put32(pg, pg_crc(pg, page_size, pgno));
}

int pg_verify(const uint8_t *pg, uint32_t page_size, uint32_t pgno)
{
    if (pg_u32(pg) == pg_crc(pg, page_size, pgno) && pg_pgno(pg) == pgno)
        return PG_OK;
    for (uint32_t i = 0; i < page_size; i += 8)
        if (pg_u64(pg + i) != 0)
            return PG_BAD;
    return PG_ZERO;
}

int pg_check(const uint8_t *pg, uint32_t page_size, uint32_t pgno, uint32_t valid_below, char *why, size_t cap)
{
    int st = pg_verify(pg, page_size, pgno);
    if (st == PG_OK || (st == PG_ZERO && pgno >= valid_below))
        return st;
    uint32_t claimed = pg_pgno(pg);
    if (st == PG_ZERO)
        snprintf(why, cap, "zeroed");
    else if (claimed != pgno && pg_u32(pg) == pg_crc(pg, page_size, claimed))
        snprintf(why, cap, "holds page %u (written in the wrong place)", claimed);
    else
        snprintf(why, cap, "checksum mismatch");
    return PG_BAD;
}

int pg_size_valid(uint64_t page_size)
{
    return page_size == 4096 || page_size == 8192 || page_size == 16384 || page_size == 32768;
}

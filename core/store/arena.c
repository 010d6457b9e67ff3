/*
 * arena.c - the buffer pool's memory: page buffers and frames, carved from
 * large anonymous mappings the kernel is asked to back with huge pages.
 *
 * Why: a random write lands on a leaf that is in no CPU cache, and with
 * the pool in 4 KiB pages its address is in no TLB either; under a
 * hypervisor every such miss is a two-level page walk.  With 2 MiB pages
 * a pool of a few hundred MiB fits the TLB.  Measured on this 2-core VM
 * (SET, 50 clients, pipeline 16, 600k requests; the loop thread's CPU per
 * SET, alternated rounds): 2.56-3.10 us from malloc'd buffers, 2.28-2.56
 * us from here.
 *
 * Nothing is given back piecemeal: the pool keeps the buffers it is given
 * back (pool_page_free) and frames are never freed while it lives, so the
 * mappings go only with arena_destroy, as ESE keeps its cache.  Sanitizer
 * builds (JS_ARENA_MALLOC) take every allocation from malloc instead, so
 * AddressSanitizer still checks each buffer's bounds.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_MAP (32u << 20)   /* bytes per mapping */
#define ARENA_HUGE (2u << 20)   /* the huge page size mappings align to */
#define ARENA_ALIGN 64u         /* a cache line */

/* At the start of each mapping (or malloc'd block): the list arena_destroy
 * walks.  One cache line, so what follows stays aligned. */
typedef struct arena_map {
    struct arena_map *next;
    size_t len;
    uint8_t pad[ARENA_ALIGN - sizeof(void *) - sizeof(size_t)];
} arena_map;

void arena_init(buf_arena *a)
{
    memset(a, 0, sizeof *a);
    js_mutex_init(&a->lock);
}

#ifdef JS_ARENA_MALLOC
static arena_map *map_new(size_t len)
{
    arena_map *m = calloc(1, len);
    if (m)
        m->len = len;
    return m;
}

static void map_free(arena_map *m)
{
    free(m);
}

void arena_prefault(buf_arena *a, size_t ahead)
{
    (void)a;
    (void)ahead;
}
#else
/* len bytes (a multiple of ARENA_HUGE) at a huge-page boundary, zeroed. */
static arena_map *map_new(size_t len)
{
    uint8_t *raw = mmap(NULL, len + ARENA_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)raw + ARENA_HUGE - 1) & ~(uintptr_t)(ARENA_HUGE - 1);
    size_t head = at - (uintptr_t)raw;
    if (head)
        (void)munmap(raw, head);
    (void)munmap((uint8_t *)at + len, ARENA_HUGE - head);
    /* Advice: without transparent huge pages it is refused, and the
     * memory works in small pages as before. */
    (void)madvise((void *)at, len, MADV_HUGEPAGE);
    arena_map *m = (arena_map *)at;
    m->len = len;
    return m;
}

static void map_free(arena_map *m)
{
    (void)munmap(m, m->len);
}

/* Fault [lo, hi) in as a write would, without writing: other threads may
 * be using those bytes meanwhile.  Advice: older kernels refuse it. */
static void populate(uint8_t *lo, uint8_t *hi)
{
    uint8_t *page = (uint8_t *)((uintptr_t)lo & ~(uintptr_t)4095);
    if (page < hi)
        (void)madvise(page, (size_t)(hi - page), MADV_POPULATE_WRITE);
}

void arena_prefault(buf_arena *a, size_t ahead)
{
    js_mutex_lock(&a->lock);
    uint8_t *lo = a->faulted > a->next ? a->faulted : a->next;
    uint8_t *hi = (size_t)(a->end - a->next) > ahead ? a->next + ahead : a->end;
    if (lo < hi)
        a->faulted = hi;
    int want_ready = !a->ready && (size_t)(a->end - a->next) < ahead && ahead < ARENA_MAP;
    js_mutex_unlock(&a->lock);
    if (lo < hi)
        populate(lo, hi);
    if (!want_ready)
        return;
    arena_map *m = map_new(ARENA_MAP);
    if (m)
        populate((uint8_t *)m, (uint8_t *)m + ahead);
    js_mutex_lock(&a->lock);
    if (m && !a->ready) {
        a->ready = m;
        a->ready_faulted = (uint8_t *)m + ahead;
        a->mapped += m->len;
        m = NULL;
    }
    js_mutex_unlock(&a->lock);
    if (m)
        map_free(m);
}
#endif

void *arena_alloc(buf_arena *a, size_t size)
{
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    void *p = NULL;
    js_mutex_lock(&a->lock);
    if ((size_t)(a->end - a->next) < size) {
        size_t len = ARENA_MAP;
        if (size + sizeof(arena_map) > len)
            len = (size + sizeof(arena_map) + ARENA_HUGE - 1) & ~(size_t)(ARENA_HUGE - 1);
        arena_map *m = a->ready;
        if (m && m->len >= len) {
            a->ready = NULL;   /* made and faulted in by arena_prefault (and counted) */
            a->faulted = a->ready_faulted;
        } else if ((m = map_new(len)) != NULL) {
            a->faulted = NULL;
            a->mapped += len;
        } else {
            goto out;
        }
        m->next = a->maps;
        a->maps = m;
        a->next = (uint8_t *)(m + 1);
        a->end = (uint8_t *)m + len;
    }
    p = a->next;
    a->next += size;
    a->handed += size;
out:
    js_mutex_unlock(&a->lock);
    return p;
}

void arena_usage(buf_arena *a, uint64_t *mapped, uint64_t *handed)
{
    js_mutex_lock(&a->lock);
    *mapped = a->mapped;
    *handed = a->handed;
    js_mutex_unlock(&a->lock);
}

void arena_destroy(buf_arena *a)
{
    if (a->ready)
        map_free(a->ready);
    for (arena_map *m = a->maps, *next; m; m = next) {
        next = m->next;
        map_free(m);
    }
    js_mutex_destroy(&a->lock);
    memset(a, 0, sizeof *a);
}

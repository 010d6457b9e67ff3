/*
 * btree.h - the ordered key/value B+tree over a tview.
 *
 * Keys 1..255 bytes, compared as unsigned bytes (shorter first on a common
 * prefix); values 0..1 MiB, stored inline when small and in overflow chains
 * otherwise.  The root, the free list and the key count live in the meta
 * page (page 2).
 */
#ifndef JS_BTREE_H
#define JS_BTREE_H

#include "tree/tview.h"

/** Insert or replace. */
JET_ERR bt_put(tview *v, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
/** Delete; JET_errRecordNotFound when absent. */
JET_ERR bt_del(tview *v, const uint8_t *key, size_t klen);
/** Look up; *val malloc'd (never NULL on success). */
JET_ERR bt_get(tview *v, const uint8_t *key, size_t klen, uint8_t **val, size_t *vlen);
/** First key >= key (strictly greater when after is set); copies key and
 *  value into the caller's growable buffers.  JET_errRecordNotFound at the
 *  end. */
JET_ERR bt_seek(tview *v, const uint8_t *key, size_t klen, int after,
                uint8_t *kout, size_t *kout_len, uint8_t **vbuf, size_t *vcap, size_t *vlen);
/** js_prefetch (jetsnap.h) on a view: walk the branch pages to each key's
 *  leaf without touching it, then prefetch every leaf stage by stage
 *  (pool_prefetch).  Up to BT_PREFETCH_MAX keys. */
#define BT_PREFETCH_MAX 64
JET_ERR bt_prefetch(tview *v, const js_keyref *keys, size_t n);
/** Number of keys (from the meta page). */
JET_ERR bt_count(tview *v, uint64_t *count);

#endif

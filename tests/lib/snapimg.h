/*
 * snapimg.h - what the snapshot suites share: the whole image of a
 * snapshot read through the public API, and its hash (an image that never
 * changes hashes the same before and after).
 */
#ifndef TL_SNAPIMG_H
#define TL_SNAPIMG_H

#include <stddef.h>
#include <stdint.h>

#include "jetsnap.h"

/* The whole image of snapshot name, malloc'd, read in odd-sized pieces (a
 * reader cuts pages anywhere); *len its size.  rerr NULL: a read error
 * fails the test; else it receives the error and *len what was read. */
uint8_t *tl_snap_image(js_instance *inst, const char *name, size_t *len, JET_ERR *rerr);
/* SHA-256 of the whole image of snapshot name (read errors fail the test). */
void tl_snap_hash(js_instance *inst, const char *name, unsigned char out[32]);
/* Assert that snapshot name's image still hashes to want (tl_snap_hash);
 * the failure names what changed it (printf-style). */
void tl_snap_expect(js_instance *inst, const char *name, const unsigned char want[32], const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

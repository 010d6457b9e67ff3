/*
 * crc32c.h - CRC32C (Castagnoli), the checksum of pages, log blocks and
 * headers.  Hardware crc32 instruction where the CPU has SSE4.2, a
 * slicing table otherwise.
 */
#ifndef JS_CRC32C_H
#define JS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/** Extend crc (0 to start) over buf.  Standard CRC32C: the initial and final
 *  inversion are done inside, so crc32c(crc32c(0,a),b) == crc32c(0,a||b). */
uint32_t js_crc32c(uint32_t crc, const void *buf, size_t len);

#endif

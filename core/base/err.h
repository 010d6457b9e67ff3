/*
 * err.h - internal error helpers: every failure carries an ESE code and a
 * per-thread detail string naming what was at fault.
 */
#ifndef JS_ERR_H
#define JS_ERR_H

#include "jetsnap.h"

/** Record err with a printf-style detail for js_errdetail(); returns err so
 *  callers can write `return js_fail(JET_errX, "...")`. */
JET_ERR js_fail(JET_ERR err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Clear the calling thread's detail. */
void js_errclear(void);

/* Every checksum or structure failure goes through this macro so the detail
 * records where in the source it was detected. */
#define JS_CORRUPT(err, ...) js_corrupt_at((err), __FILE__, __LINE__, __VA_ARGS__)
JET_ERR js_corrupt_at(JET_ERR err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

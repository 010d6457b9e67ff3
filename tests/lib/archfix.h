/*
 * archfix.h - what the archiving tests share (test_archive, test_archive_cmd,
 * test_archive_restore): a daemon with 64K generations and an
 * archive_command, writes through the Redis front, archive_* status keys,
 * and the wall clock as --until-time takes it.
 */
#ifndef TL_ARCHFIX_H
#define TL_ARCHFIX_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* ROOT/archive, made by tl_arch_start. */
extern char tl_arch[PATH_MAX];

/* Make tl_arch (it may be there from an earlier start in the same test) and
 * start the daemon on a new instance with 64K generations, extra options
 * (may be "") and archive_command=cmd. */
void tl_arch_start(const char *extra, const char *cmd);

/* SET k v through a new connection; asserts +OK. */
void tl_arch_set_key(const char *k, const char *v);

/* n SETs of 4000-byte values, keys k<from>...: about one 64K generation
 * per 14. */
void tl_arch_fill(int from, int n);

/* A status key holding a generation number (hex), -1 for "-". */
long tl_arch_status_gen(const char *key);

/* The wall clock in microseconds, and a time in it as RFC 3339 with
 * microseconds (UTC), the form --until-time takes. */
int64_t tl_wall_us(void);
void tl_rfc3339_us(int64_t us, char *out, size_t cap);

#endif

/*
 * diskfull.h - what the disk-full suites share: a scratch root that is a
 * small tmpfs (to fill for real) or a plain directory (for the fault
 * seam), always removed, even after a test process died; and numbered keys
 * of 1500-byte values whose content can be checked back.
 *
 * Roots are mkdtemp directories /tmp/jsdf-PID-*: a suite's .init sweeps
 * those of a process that is gone (a crash, a timeout), its .fini those of
 * the test.  Mounting a tmpfs needs root.
 */
#ifndef TL_DISKFULL_H
#define TL_DISKFULL_H

#include <stddef.h>

#include "jetsnap.h"

extern char tl_df_root[64];   /* the test's root, "" when none */

/* A suite's .init: unmount and remove what a dead test process left. */
void tl_df_sweep_stale(void);

/* A suite's .fini: reset the fault seam, unmount and remove tl_df_root. */
void tl_df_sweep(void);

/* tl_df_root becomes a tmpfs of size_kib KiB (asserts the mount works). */
void tl_df_mount_tmpfs(unsigned size_kib);

/* tl_df_root becomes a plain directory. */
void tl_df_plain_root(void);

/* A directory /tmp/jsdf-PID-NAME-XXXXXX into out (cap bytes) beside the
 * root (a socket must not be on a full tmpfs); the suite removes it. */
void tl_df_side_dir(char *out, size_t cap, const char *name);

#define TL_DF_VAL_LEN 1500

/* Key n ("key:%08ld") into k; its length. */
int tl_df_key_of(char *k, size_t cap, long n);

/* The TL_DF_VAL_LEN bytes of the value of key n into v. */
void tl_df_val_of(unsigned char *v, long n);

/* Put key n with its value (one implicit transaction); the error. */
JET_ERR tl_df_put_key(js_session *s, long n);

/* Key n holds its value (it was acknowledged: the failure says so). */
void tl_df_expect_key(js_session *s, long n);

#endif

/*
 * archive.h - the archiver (SPEC 8): a thread of the daemon that ships every
 * closed log generation, in order, by running `sh -c archive_command` with
 * %p (the generation's absolute path), %f (its name) and %% expanded.  A
 * failure is retried with backoff (1 s doubling to 60 s), never skipped.
 * The oldest generation not yet archived is pinned in the log layer
 * (js_log_archive_pin), so neither truncation nor circular logging deletes
 * it.  With archive_timeout, a generation holding a commit older than that
 * is rolled so it can be shipped.  The thread looks at the log every
 * ARC_POLL_MS, and at once when a file is renamed into DBDIR (inotify: a
 * roll renames the closed generation into place).
 *
 * Durable state: DBDIR/archive.state, one line `last_gen XXXXXXXX` (hex, the
 * newest generation archived), replaced atomically (write, fsync, rename,
 * fsync DBDIR) after each success.  At start the archiver resumes after it;
 * generations already deleted before archiving was first enabled are not
 * archived (an event says from where it starts).
 *
 * Locking: arc->lock guards the shared fields (status) and the stop flag;
 * a leaf lock, never held while a command runs.
 */
#ifndef JS_FS_ARCHIVE_H
#define JS_FS_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

struct ev_log;
struct arc;

struct arc_config {
    const char *dbdir;          /* absolute: where archive.state lives */
    const char *command;        /* archive_command, NULL: no archiver */
    uint64_t command_timeout_s; /* archive_command_timeout (0: the default, 300) */
    uint64_t timeout_s;         /* archive_timeout (0: off) */
};

#define ARC_OUTPUT_MAX 4096     /* the command's output kept for an event */

/** Read the durable state, pin the oldest unarchived generation and start
 *  the thread.  JET_errSuccess with *out NULL when no command is set. */
JET_ERR arc_start(const struct arc_config *cfg, js_instance *inst, struct ev_log *ev, struct arc **out);
/** Stop the thread (a running command is killed with its process group)
 *  and free arc.  The pin stays until the instance closes.  NULL is fine. */
void arc_stop(struct arc *a);

struct arc_status {
    uint32_t last_gen;          /* 0: none archived yet */
    uint64_t pending;           /* closed generations waiting */
    uint64_t lag_ms;            /* age of the oldest commit not yet archived
                                   (an upper bound, ARC_POLL_MS at most
                                   over, see archive.c) */
    char last_error[512];       /* "" when the last attempt succeeded */
};
/** A consistent copy of the archiver's state. */
void arc_get_status(struct arc *a, struct arc_status *out);

#endif

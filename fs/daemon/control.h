/*
 * control.h - the mount's `control` file (SPEC section 3): validation inside
 * the write, and the backup job thread.  The grammar (ctl_parse, CTL_CMD_MAX)
 * is fs/proto's, shared with the jetsnap tool.
 *
 * One write() is one command.  ctl_submit() checks everything it can
 * (caller uid, grammar, shutdown, instance readiness, a running job, DEST)
 * and then starts js_backup() in a job thread.  The write is answered from the job
 * thread: when the engine reports BEGIN (accepted, unless `wait`), when
 * js_backup() returns before BEGIN (the engine refused it: nothing started),
 * or when the job ends (`wait`).  So no FUSE worker is held by a job.
 *
 * A `wait` command holds its WRITE open until the job ends, and libfuse
 * 3.14 cannot ask for FOPEN_PARALLEL_DIRECT_WRITES, so the kernel's inode
 * lock makes any other write to control (a `cancel` included) queue behind
 * it until then.  Cancel a `wait` job by interrupting its writer and writing
 * `cancel`, or start jobs without `wait` and follow `status`.
 *
 * Lock order: ctl.inst_gate, then ctl.lock, then st_status.lock (status.c).
 * No engine call is made with ctl.lock held (the engine calls job_status(),
 * which takes ctl.lock, from inside js_backup()).  ev_log.lock is taken by
 * the engine's event sink, never under ctl.lock by this module.
 */
#ifndef JS_FS_CONTROL_H
#define JS_FS_CONTROL_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>
#include "jetsnap.h"
#include "status.h"
#include "proto/proto.h"

struct ctl_config {
    uid_t owner;                /* only this uid may write commands */
    const char *dbdir;          /* canonical */
    const char *mountpoint;     /* canonical; backups beneath it are refused */
    const char *backup_root;    /* canonical or NULL */
    int no_log, circular_log;   /* as the instance runs */
};

/** err is 0 (accepted or succeeded) or a positive errno. */
typedef void (*ctl_done_fn)(void *ctx, int err);

struct ctl;

/** cfg strings are copied.  Errors: JET_errOutOfMemory, JET_errInvalidPath
 *  (backup_root cannot be opened). */
JET_ERR ctl_new(const struct ctl_config *cfg, js_instance *inst, struct st_status *st,
                struct ctl **out);
/** Free (after ctl_join()).  NULL is a no-op. */
void ctl_free(struct ctl *c);

/** The instance finished recovery (1): backups are allowed from now on;
 *  before, they get EAGAIN (JET_errBackupNotAllowedYet). */
void ctl_set_ready(struct ctl *c, int ready);

/** Submit one written command from uid.  done(ctx, err) is called exactly
 *  once, from this call or later from the job thread. */
void ctl_submit(struct ctl *c, const char *buf, size_t len, uid_t uid,
                ctl_done_fn done, void *ctx);

/** Refuse every later command with ESHUTDOWN, and wait until a job that is
 *  starting has either begun in the engine (so js_close() will stop it) or
 *  ended.  After this the module makes no new call into the instance other
 *  than the running js_backup(). */
void ctl_shutdown(struct ctl *c);

/** Wait for the job thread to end (call after js_close()). */
void ctl_join(struct ctl *c);

/** Check DEST as ctl_submit() does; *errno_out gets the errno of a refusal.
 *  resolved receives the path handed to js_backup().  Exposed for tests. */
JET_ERR ctl_check_dest(struct ctl *c, const struct ctl_cmd *cmd, char *resolved,
                       int *errno_out);

#endif

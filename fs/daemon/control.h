/*
 * control.h - the mount's `control` file: command grammar (SPEC section 3),
 * validation inside the write, and the backup job thread.
 *
 *   command = PATH *( " " flag ) | "truncate" [ " wait" ] | "cancel"
 *   flag    = "full" | "incremental" | "atomic" | "create" | "wait"
 *
 * One write() is one command of at most CTL_CMD_MAX bytes with at most one
 * trailing newline.  ctl_submit() checks everything it can (caller uid,
 * grammar, shutdown, instance readiness, a running job, DEST) and then
 * starts js_backup() in a job thread.  The write is answered from the job
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

#define CTL_CMD_MAX 4096

enum ctl_kind { CTL_BACKUP = 0, CTL_TRUNCATE, CTL_CANCEL };

struct ctl_cmd {
    enum ctl_kind kind;
    char path[PATH_MAX];        /* CTL_BACKUP: as written */
    unsigned js_flags;          /* JS_BACKUP_* */
    int wait;                   /* the `wait` flag */
    char flags[128];            /* flag words as written, space separated */
};

/** Parse one command (pure; fuzzable).  Errors: JET_errInvalidParameter
 *  (empty, over CTL_CMD_MAX, NUL or newline inside, relative path, path of
 *  PATH_MAX or more), JET_errInvalidGrbit (unknown flag, `full
 *  incremental`, flags after truncate/cancel other than truncate's wait). */
JET_ERR ctl_parse(const char *buf, size_t len, struct ctl_cmd *cmd);

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

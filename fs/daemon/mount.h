/*
 * mount.h - the FUSE filesystem of jetsnapfs (SPEC section 3): control,
 * status, events and live/, on the libfuse 3.14 low-level API with the
 * session loop in its own thread.
 *
 * Lifecycle: mnt_clear_stale() -> mnt_start() (mounted, loop running) ...
 * mnt_unmount() and mnt_detach_instance() (both before js_close, so a
 * daemon started next finds MOUNTPOINT free once it holds the instance) ->
 * mnt_stop() (bounded shutdown, frees).  See mount.c for the shutdown
 * sequence and why it is shaped so; mount_int.h for the files of this side.
 */
#ifndef JS_FS_MOUNT_H
#define JS_FS_MOUNT_H

#include <stdint.h>
#include <sys/types.h>
#include "jetsnap.h"
#include "control.h"
#include "events.h"
#include "status.h"

struct mnt_config {
    const char *dbdir;          /* canonical */
    const char *mountpoint;     /* canonical */
    uid_t uid;                  /* owner of /, control, status, events (live/ */
    gid_t gid;                  /*   shows DBDIR's owners: see live_view.c) */
    int allow_other, auto_unmount, debug;
    int store_ahead;            /* snapshot_store_ahead (snap_ahead.c) */
    int ended_fd;               /* eventfd written once when the loop ends */
};

struct mnt;

/** If MOUNTPOINT holds a FUSE mount whose daemon is gone (ENOTCONN, or no
 *  answer within 2 s), detach it.  Returns 0, or EBUSY when a live FUSE
 *  filesystem answers there, or another errno. */
int mnt_clear_stale(const char *mountpoint);

/** Mount and start the loop thread.  inst, ctl, st and ev must outlive the
 *  mount.  The mount becomes inst's event sink (events still go to ev; an
 *  invalidated snapshot's cached data is dropped) until
 *  mnt_detach_instance() gives it back to ev_sink.  Returns 0 or an errno
 *  (message in err). */
int mnt_start(const struct mnt_config *cfg, js_instance *inst, struct ctl *ctl,
              struct st_status *st, struct ev_log *ev, struct mnt **out,
              char *err, size_t errcap);

/** Stop calling the engine: live/jetsnap.edb reads get EIO from now on,
 *  and inst's events go to ev_sink alone.  Waits for reads in flight.
 *  Call before js_close(). */
void mnt_detach_instance(struct mnt *m);

/** Lazily detach MOUNTPOINT (umount2 MNT_DETACH, or `fusermount3 -u -z`
 *  when not root) unless the kernel ended the connection already: the path
 *  is free from here on, while handles still open (a `wait` writer of
 *  control) keep being served until mnt_stop().  Idempotent; NULL is a
 *  no-op.  Call before js_close(). */
void mnt_unmount(struct mnt *m);

/** Bounded shutdown (about 3 s worst case, even while a client holds a
 *  file open): lazy unmount, brief wait for open handles, exit the session,
 *  wake the loop with SIGUSR1 every 100 ms, join, unmount, destroy.  Frees
 *  m.  Needs the SIGUSR1 handler of mnt_install_sigusr1(). */
void mnt_stop(struct mnt *m);

/** Send libfuse's own messages to syslog (once stderr is gone). */
void mnt_log_to_syslog(void);

/** Install the no-op SIGUSR1 handler (without SA_RESTART) that mnt_stop()
 *  uses to interrupt the loop thread; main calls it before any thread. */
void mnt_install_sigusr1(void);

#endif

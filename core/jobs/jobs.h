/*
 * jobs.h - the jobs layer, the top of the core: online backup (backup.c,
 * the set on disk in bkset.c), restore and trial restore
 * (restore.c), the offline check (check.c), and the manifests of a backup
 * set (manifest.c/manifest.h).  Every layer is below it; it reaches the
 * instance through instance.h, and the log and store through their
 * headers.  It exports only the public functions of jetsnap.h.
 *
 * Lock rules: a job takes the instance's locks only through the order of
 * instance.h: state_lock for the job flags (backup_running, backup_cancel)
 * and to wait on state_cond for a background checkpoint (ckpt_done),
 * ckpt_lock alone to read ckpt_lsn and pin its generation (log_pin under
 * it, the order ckpt_run itself uses), hdr_lock to read or stamp the
 * header, the range lock (store.h) around raw reads of jetsnap.edb,
 * log_pin/log_position_now (log.h) for the log.
 * It holds none of them across file I/O of its own but the range lock's
 * reads.
 */
#ifndef JS_JOBS_H
#define JS_JOBS_H

#include "instance/instance.h"
#include "jobs/manifest.h"

#endif

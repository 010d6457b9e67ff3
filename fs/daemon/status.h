/*
 * status.h - the mount's `status` file (SPEC section 3): the running or last
 * job as `key: value` lines, rendered fresh at every open (and for the
 * `# Backup` section of the RESP INFO command).
 *
 * Keys, in order: state job operation path flags phase progress_percent
 * bytes_done bytes_total pages_verified log_records_verified
 * rate_bytes_per_s eta_s started finished gen_low gen_high truncated result
 * message, then the snapshots (st_set_instance).  A value not known yet is "-".  rate and eta are computed at
 * render time from the elapsed time, so during a job they change at least
 * once a second even between two progress callbacks.
 *
 * Locking: st_status.lock guards every field; it is a leaf lock.
 */
#ifndef JS_FS_STATUS_H
#define JS_FS_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

struct st_status;

struct st_status *st_new(void);
void st_free(struct st_status *st);

/** The instance is starting or recovering (1) or ready (0): shown as
 *  `state: recovering` while no job has run. */
void st_set_recovering(struct st_status *st, int recovering);

/** A job was accepted: state running, a new job number, fields reset.
 *  operation "full"/"incremental"/"truncate"; path "" for truncate; flags
 *  the flag words as written.  Returns the job number. */
uint64_t st_job_begin(struct st_status *st, const char *operation, const char *path,
                      const char *flags);
/** Progress from the engine's status callback. */
void st_job_progress(struct st_status *st, const js_progress *p);
/** The job ended with err; message (may be NULL or "") names the fault;
 *  truncated is "none" or "edbXXXXXXXX.log-edbYYYYYYYY.log". */
void st_job_end(struct st_status *st, JET_ERR err, const char *message, const char *truncated);

/** The instance whose snapshots the rendering lists after the job's keys
 *  (`snapshots`, `snapshot_space_bytes`, one `snapshot.NAME` line each);
 *  NULL before it is closed. */
void st_set_instance(struct st_status *st, js_instance *inst);
struct arc;
/** The archiver whose keys (archive_*) the rendering carries; NULL: none
 *  (the keys read "-"). */
void st_set_archiver(struct st_status *st, struct arc *arc);
/** Render into buf (NUL-terminated, cut at cap-1); returns the length. */
size_t st_render(struct st_status *st, char *buf, size_t cap);

/** Upper bound of a rendering (paths are at most PATH_MAX). */
#define ST_RENDER_MAX 16384

#endif

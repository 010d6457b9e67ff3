/*
 * proto.h - the protocol jetsnapfs and the jetsnap tool both speak (SPEC
 * sections 3 and 6), in one place so the two cannot drift: the control
 * file's grammar and limits, the status file's keys (written by the daemon,
 * parsed by the tool, both from one table), the errno a refused control
 * write carries back to its ESE code, and the K/M/G size suffixes of both
 * command lines.  Pure code: no I/O, no state, no FUSE; fuzzable.
 */
#ifndef JS_FS_PROTO_H
#define JS_FS_PROTO_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

/* ------------------------------------------------------------------ */
/* The control file (SPEC section 3)                                    */
/* ------------------------------------------------------------------ */
/*
 *   command = PATH *( " " flag ) | "truncate" [ " wait" ] | "cancel"
 *           | "snapshot" " " NAME | "snapshot-delete" " " NAME   (SPEC 7)
 *   flag    = "full" | "incremental" | "atomic" | "create" | "wait"
 *
 * One write() is one command of at most CTL_CMD_MAX bytes with at most one
 * trailing newline; words are separated by single spaces, so a PATH holds
 * neither a space nor a newline.
 */
#define CTL_CMD_MAX 4096

enum ctl_kind { CTL_BACKUP = 0, CTL_TRUNCATE, CTL_CANCEL, CTL_SNAPSHOT, CTL_SNAPSHOT_DELETE };

struct ctl_cmd {
    enum ctl_kind kind;
    char path[PATH_MAX];        /* CTL_BACKUP: as written; CTL_SNAPSHOT*: the NAME */
    unsigned js_flags;          /* JS_BACKUP_* */
    int wait;                   /* the `wait` flag */
    char flags[128];            /* flag words as written, space separated */
};

/** Parse one command (pure; fuzzable).  Errors: JET_errInvalidParameter
 *  (empty, over CTL_CMD_MAX, NUL or newline inside, relative path, path of
 *  PATH_MAX or more), JET_errInvalidGrbit (unknown flag, `full
 *  incremental`, flags after truncate/cancel other than truncate's wait).
 *  `snapshot` and `snapshot-delete` take exactly one NAME word; a NAME
 *  that is no snapshot name (js_snapshot_name_ok) or a missing one is
 *  JET_errInvalidParameter, a second word JET_errInvalidGrbit. */
JET_ERR ctl_parse(const char *buf, size_t len, struct ctl_cmd *cmd);

/** The ESE code behind the errno of a refused control write (the inverse of
 *  js_err_to_errno() over SPEC section 6's rows).  Several codes share an
 *  errno: *hint (never NULL) names the alternatives, "" when there are none;
 *  incremental picks between the two EOPNOTSUPP rows.  JET_errSuccess when
 *  the errno has no row. */
JET_ERR proto_ctl_errno_to_err(int e, int incremental, const char **hint);

/* ------------------------------------------------------------------ */
/* The status file (SPEC section 3)                                     */
/* ------------------------------------------------------------------ */
/*
 * One `key: value` line per key, every key always present, in this order;
 * a value not known yet is "-".  A reader ignores keys it does not know, so
 * keys may be added (at the end).
 */
enum proto_st_key {
    PST_STATE, PST_JOB, PST_OPERATION, PST_PATH, PST_FLAGS, PST_PHASE,
    PST_PROGRESS_PERCENT, PST_BYTES_DONE, PST_BYTES_TOTAL, PST_PAGES_VERIFIED,
    PST_LOG_RECORDS_VERIFIED, PST_RATE_BYTES_PER_S, PST_ETA_S, PST_STARTED,
    PST_FINISHED, PST_GEN_LOW, PST_GEN_HIGH, PST_TRUNCATED, PST_RESULT, PST_MESSAGE,
    PST_PACER, PST_ARCHIVE_LAST_GEN, PST_ARCHIVE_PENDING, PST_ARCHIVE_LAG_S,
    PST_ARCHIVE_LAST_ERROR,
    PST_NKEYS
};

/** The key names, indexed by enum proto_st_key. */
extern const char *const proto_st_keys[PST_NKEYS];

/** Write the status text into buf (NUL-terminated, cut at cap-1) from one
 *  value per key: NULL or "" is written "-"; control characters in a value
 *  become spaces, so every key is one line.  Returns the length. */
size_t proto_status_write(char *buf, size_t cap, const char *const val[PST_NKEYS]);

/** Parse status text in place: val[k] points into text at key k's value
 *  ("" when absent or "-"), leading spaces and trailing spaces and CRs
 *  removed.  Unknown keys and lines without ':' are ignored. */
void proto_status_parse(char *text, const char *val[PST_NKEYS]);

/* ------------------------------------------------------------------ */
/* Sizes on the command lines                                           */
/* ------------------------------------------------------------------ */

/** "8192", "64K", "5M", "1G" (suffix in either case, powers of 1024) ->
 *  bytes.  Returns 0, or -1 for NULL, an empty string, no leading digit, an
 *  unknown or trailing suffix, or a value over UINT64_MAX. */
int proto_parse_size(const char *s, uint64_t *out);

/** Expand %p (path), %f (file name) and %% (a %) of an archive_command or
 *  --restore-command into out; other text is copied as is.  -1 when the
 *  result does not fit in cap. */
int proto_expand_command(const char *cmd, const char *path, const char *name, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* /proc/self/mountinfo                                                  */
/* ------------------------------------------------------------------ */

/** One mountinfo line's fields that the daemon and the tool look at: the
 *  device's minor number (a FUSE mount's fusectl connection), the mount
 *  point, the file system type ("fuse.jetsnapfs") and the source
 *  ("jetsnap:DBDIR", the daemon's fsname).  The strings point into the
 *  line, their octal escapes (\040 for a space, ...) undone. */
struct proto_mount {
    unsigned minor;
    char *mountpoint, *fstype, *source;
};

/** Split one line of /proc/self/mountinfo (changed in place) into *m.
 *  Returns 0, or -1 for a line without the fields (a mount point, the " - "
 *  separator, a type and a source). */
int proto_mountinfo_line(char *line, struct proto_mount *m);

#endif

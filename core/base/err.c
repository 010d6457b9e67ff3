/*
 * err.c - ESE error names and messages, the errno mapping of SPEC section 6,
 * and the per-thread error detail.
 *
 * The detail lives in thread-local storage, like errno: it is the one piece of
 * state outside an instance, and each thread sees only its own.
 */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_detail[512];

struct err_row {
    JET_ERR err;
    const char *name;
    const char *msg;
    int errnum;
};

static const struct err_row err_table[] = {
    { JET_errSuccess, "JET_errSuccess", "success", 0 },
    { JET_wrnBufferTruncated, "JET_wrnBufferTruncated", "buffer truncated", 0 },
    { JET_errKeyTooBig, "JET_errKeyTooBig", "key longer than 255 bytes", EINVAL },
    { JET_errLogFileCorrupt, "JET_errLogFileCorrupt", "log file is corrupt", EIO },
    { JET_errBackupDirectoryNotEmpty, "JET_errBackupDirectoryNotEmpty", "backup directory is not empty", ENOTEMPTY },
    { JET_errBackupInProgress, "JET_errBackupInProgress", "a backup is already running", EBUSY },
    { JET_errRestoreInProgress, "JET_errRestoreInProgress", "the instance is being restored", EBUSY },
    { JET_errLogWriteFail, "JET_errLogWriteFail", "failure writing to the log", EIO },
    { JET_errInvalidLogSequence, "JET_errInvalidLogSequence", "log sequence does not match the backup set", EIO },
    { JET_errLoggingDisabled, "JET_errLoggingDisabled", "the instance runs without a log", EOPNOTSUPP },
    { JET_errBackupNotAllowedYet, "JET_errBackupNotAllowedYet", "the instance is still starting or recovering", EAGAIN },
    { JET_errMakeBackupDirectoryFail, "JET_errMakeBackupDirectoryFail", "cannot make the backup directory", EACCES },
    { JET_errInvalidBackup, "JET_errInvalidBackup", "incremental backup refused under circular logging", EOPNOTSUPP },
    { JET_errMissingLogFile, "JET_errMissingLogFile", "a log generation is missing", EIO },
    { JET_errLogDiskFull, "JET_errLogDiskFull", "no space for the log; writes resume once space is freed", ENOSPC },
    { JET_errBadLogSignature, "JET_errBadLogSignature", "log file belongs to another log stream", EIO },
    { JET_errBadDbSignature, "JET_errBadDbSignature", "database signature does not match", EIO },
    { JET_errCheckpointCorrupt, "JET_errCheckpointCorrupt", "checkpoint file is corrupt", EIO },
    { JET_errLogFileSizeMismatch, "JET_errLogFileSizeMismatch", "log file size does not match", EIO },
    { JET_errSoftRecoveryOnBackupDatabase, "JET_errSoftRecoveryOnBackupDatabase", "a raw backup copy cannot be opened; restore it", EIO },
    { JET_errDatabaseDirtyShutdown, "JET_errDatabaseDirtyShutdown", "database was not shut down cleanly and has no log to recover from", EIO },
    { JET_errEndingRestoreLogTooLow, "JET_errEndingRestoreLogTooLow", "the backup set lacks log generations its database needs", EIO },
    { JET_errStartingRestoreLogTooHigh, "JET_errStartingRestoreLogTooHigh", "the backup set starts after the generation its database needs", EIO },
    { JET_errGivenLogFileIsNotContiguous, "JET_errGivenLogFileIsNotContiguous", "log generations in the set are not contiguous", EIO },
    { JET_errMissingRestoreLogFiles, "JET_errMissingRestoreLogFiles", "log generations of the set are missing", EIO },
    { JET_errMissingFullBackup, "JET_errMissingFullBackup", "an incremental backup needs a previous full backup", ENODATA },
    { JET_errMissingFileToBackup, "JET_errMissingFileToBackup", "a log generation since the last backup is gone", ENODATA },
    { JET_errLogReadVerifyFailure, "JET_errLogReadVerifyFailure", "a log block or header failed its checksum", EIO },
    { JET_errRestoreOfNonBackupDatabase, "JET_errRestoreOfNonBackupDatabase", "not a backup set", EIO },
    { JET_errBackupAbortByServer, "JET_errBackupAbortByServer", "the backup was cancelled", ECANCELED },
    { JET_errInvalidGrbit, "JET_errInvalidGrbit", "unknown or contradictory flags", EINVAL },
    { JET_errTermInProgress, "JET_errTermInProgress", "the instance is shutting down", ESHUTDOWN },
    { JET_errInvalidParameter, "JET_errInvalidParameter", "invalid parameter", EINVAL },
    { JET_errOutOfMemory, "JET_errOutOfMemory", "out of memory", ENOMEM },
    { JET_errReadVerifyFailure, "JET_errReadVerifyFailure", "a database page failed its checksum", EIO },
    { JET_errDiskIO, "JET_errDiskIO", "disk I/O error", EIO },
    { JET_errInvalidPath, "JET_errInvalidPath", "invalid path", ENOENT },
    { JET_errRecordTooBig, "JET_errRecordTooBig", "value longer than 1 MiB", EINVAL },
    { JET_errInvalidDatabase, "JET_errInvalidDatabase", "not a jetsnap database", EIO },
    { JET_errNotInitialized, "JET_errNotInitialized", "instance not open", EAGAIN },
    { JET_errFileAccessDenied, "JET_errFileAccessDenied", "access denied", EACCES },
    { JET_errNotInTransaction, "JET_errNotInTransaction", "no transaction is open", EINVAL },
    { JET_errInstanceUnavailable, "JET_errInstanceUnavailable", "a fatal error revoked access to the data", EIO },
    { JET_errInTransaction, "JET_errInTransaction", "a transaction is already open", EINVAL },
    { JET_errDatabaseDuplicate, "JET_errDatabaseDuplicate", "a snapshot of that name exists", EEXIST },
    { JET_errDatabaseInUse, "JET_errDatabaseInUse", "the instance is open in another process", EBUSY },
    { JET_errDatabaseCorrupted, "JET_errDatabaseCorrupted", "database structure is corrupt", EIO },
    { JET_errPageSizeMismatch, "JET_errPageSizeMismatch", "page size does not match the database", EINVAL },
    { JET_errClientRequestToStopJetService, "JET_errClientRequestToStopJetService", "stopped because the instance is shutting down", ESHUTDOWN },
    { JET_errRecordNotFound, "JET_errRecordNotFound", "key not found", ENOENT },
    { JET_errDiskFull, "JET_errDiskFull", "no space left on the device", ENOSPC },
    { JET_errFileNotFound, "JET_errFileNotFound", "file not found", ENOENT },
    { JET_errOSSnapshotNotAllowed, "JET_errOSSnapshotNotAllowed", "no more snapshots allowed (snapshot_max)", ENOSPC },
    { JET_errOSSnapshotInvalidSnapId, "JET_errOSSnapshotInvalidSnapId", "no such snapshot", ENOENT },
    { JET_errSessionSharingViolation, "JET_errSessionSharingViolation", "session used by two threads at once", EBUSY },
};

static const struct err_row *err_find(JET_ERR err)
{
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].err == err)
            return &err_table[i];
    return NULL;
}

const char *js_errname(JET_ERR err)
{
    const struct err_row *row = err_find(err);
    return row ? row->name : "JET_errUnknown";
}

const char *js_errmsg(JET_ERR err)
{
    const struct err_row *row = err_find(err);
    return row ? row->msg : "unknown error";
}

int js_err_to_errno(JET_ERR err)
{
    const struct err_row *row = err_find(err);
    return row ? row->errnum : EIO;
}

const char *js_errdetail(void)
{
    return err_detail;
}

void js_errclear(void)
{
    err_detail[0] = '\0';
}

/* Callers often pass js_errdetail() itself as an argument (to wrap a
 * lower-level detail), so format into a scratch buffer first. */
JET_ERR js_fail(JET_ERR err, const char *fmt, ...)
{
    char tmp[sizeof err_detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(err_detail, tmp, sizeof err_detail);
    return err;
}

JET_ERR js_corrupt_at(JET_ERR err, const char *file, int line, const char *fmt, ...)
{
    char tmp[sizeof err_detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(err_detail, tmp, sizeof err_detail);
    /* The source location helps a developer; administrators read the rest. */
    size_t n = strlen(err_detail);
    if (n + 32 < sizeof err_detail)
        snprintf(err_detail + n, sizeof err_detail - n, " [%s:%d]", file, line);
    return err;
}

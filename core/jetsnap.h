/*
 * jetsnap.h - the one public header of libjetsnap.
 *
 * jetsnap is an embedded transactional key/value store in the line of
 * Microsoft's Extensible Storage Engine (ESE): fixed-size checksummed pages,
 * an ordered B+tree, a write-ahead log made of fixed-size generation files,
 * a background checkpoint, redo-only crash recovery, and ESE's online backup
 * semantics (JetBackup / JetRestore).
 *
 * This header is the manual.  Every function states its parameters, the
 * errors it returns and its thread rules.
 *
 * Caveats
 *  - One process opens an instance at a time (an advisory lock on
 *    DBDIR/jetsnap.lock enforces it; a second open gets JET_errDatabaseInUse).
 *  - One write transaction runs at a time; other writers wait in
 *    js_txn_begin().  Readers never wait for writers except for the short
 *    moment in which a commit installs its pages; a commit waits for open
 *    read-only transactions before it installs.
 *  - Group commit releases the writer lock before the fsync, so a reader may
 *    see a commit whose log is not yet on disk (its committer has not been
 *    told "done" yet).  The committer learns of a failed log write: an I/O
 *    error turns the instance fatal (JET_errInstanceUnavailable) so nothing
 *    is built on a lost commit; a full disk does not (see below).
 *  - Errors are ESE's numbers (negative int).  A function that fails leaves
 *    a human-readable detail (naming the file and page or generation) in a
 *    per-thread buffer read by js_errdetail().
 *  - Which I/O errors are sticky and which are transient:
 *      sticky (fatal): any I/O error other than ENOSPC/EDQUOT on a file of
 *        DBDIR (EIO, a torn write, a failed rename), and a failed fsync of
 *        jetsnap.edb whatever its errno (the kernel may have dropped the
 *        pages it could not write).  Every later call on the instance
 *        returns JET_errInstanceUnavailable until it is closed and reopened,
 *        so one I/O error can never become silent corruption.
 *      transient (a full disk: ENOSPC or EDQUOT): writes fail with
 *        JET_errLogDiskFull when the log cannot grow or be written, and
 *        with JET_errDiskFull when the checkpoint cannot write pages or
 *        grow jetsnap.edb; reads go on; nothing acknowledged is lost; and
 *        writes resume by themselves once space is freed (the next write
 *        retries the failed log write, or asks for a checkpoint and waits
 *        for it).  A transaction refused before its commit record was
 *        appended to the log (the usual case: the next log generation could
 *        not be allocated) is rolled back and nothing of it is visible.
 *        One whose commit record was appended but whose log write then
 *        failed (a write into the already allocated generation: file
 *        systems without fallocate, quotas) was already visible to readers
 *        under group commit: its committer gets JET_errLogDiskFull, the log
 *        keeps its records and rewrites them at the same position, and once
 *        that succeeds the transaction is durable; as after a failed fsync,
 *        its outcome was unknown to its committer.  No new write
 *        transaction starts before that rewrite succeeds.  Lazy commits
 *        are kept and rewritten the same way; closing the instance while
 *        the disk is still full loses those not yet written, as a crash
 *        would.
 */
#ifndef JETSNAP_H
#define JETSNAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Errors (ESE's numbers)                                               */
/* ------------------------------------------------------------------ */
typedef int JET_ERR;

#define JET_errSuccess                        0
#define JET_wrnBufferTruncated                1006
#define JET_errKeyTooBig                      (-408)
#define JET_errLogFileCorrupt                 (-501)
#define JET_errBackupDirectoryNotEmpty        (-504)
#define JET_errBackupInProgress               (-505)
#define JET_errRestoreInProgress              (-506)
#define JET_errLogWriteFail                   (-510)
#define JET_errInvalidLogSequence             (-515)
#define JET_errLoggingDisabled                (-516)
#define JET_errBackupNotAllowedYet            (-523)
#define JET_errMakeBackupDirectoryFail        (-525)
#define JET_errInvalidBackup                  (-526)
#define JET_errMissingLogFile                 (-528)
#define JET_errLogDiskFull                    (-529)
#define JET_errBadLogSignature                (-530)
#define JET_errBadDbSignature                 (-531)
#define JET_errCheckpointCorrupt              (-533)
#define JET_errLogFileSizeMismatch            (-541)
#define JET_errSoftRecoveryOnBackupDatabase   (-544)
#define JET_errDatabaseDirtyShutdown          (-550)
#define JET_errEndingRestoreLogTooLow         (-553)
#define JET_errStartingRestoreLogTooHigh      (-554)
#define JET_errGivenLogFileIsNotContiguous    (-556)
#define JET_errMissingRestoreLogFiles         (-557)
#define JET_errMissingFullBackup              (-560)
#define JET_errMissingFileToBackup            (-569)
#define JET_errLogReadVerifyFailure           (-612)
#define JET_errRestoreOfNonBackupDatabase     (-615)
#define JET_errBackupAbortByServer            (-801)
#define JET_errInvalidGrbit                   (-900)
#define JET_errTermInProgress                 (-1000)
#define JET_errInvalidParameter               (-1003)
#define JET_errOutOfMemory                    (-1011)
#define JET_errReadVerifyFailure              (-1018)
#define JET_errDiskIO                         (-1022)
#define JET_errInvalidPath                    (-1023)
#define JET_errRecordTooBig                   (-1026)
#define JET_errInvalidDatabase                (-1028)
#define JET_errNotInitialized                 (-1029)
#define JET_errFileAccessDenied               (-1032)
#define JET_errNotInTransaction               (-1054)
#define JET_errInstanceUnavailable            (-1090)
#define JET_errInTransaction                  (-1108)
#define JET_errDatabaseDuplicate              (-1201)
#define JET_errDatabaseInUse                  (-1202)
#define JET_errDatabaseCorrupted              (-1206)
#define JET_errPageSizeMismatch               (-1213)
#define JET_errClientRequestToStopJetService  (-1329)
#define JET_errRecordNotFound                 (-1601)
#define JET_errDiskFull                       (-1808)
#define JET_errFileNotFound                   (-1811)
#define JET_errSessionSharingViolation        (-1910)
#define JET_errOSSnapshotNotAllowed           (-2404)
#define JET_errOSSnapshotInvalidSnapId        (-2405)

/** The ESE name of an error ("JET_errReadVerifyFailure"); never NULL. */
const char *js_errname(JET_ERR err);
/** A one-line description of an error; never NULL. */
const char *js_errmsg(JET_ERR err);
/** The errno the control file maps an error to (SPEC section 6); EIO for
 *  errors that have no row there. */
int js_err_to_errno(JET_ERR err);
/** The ESE code of a failed system call's errno, as the engine reports it:
 *  ENOSPC/EDQUOT JET_errDiskFull, EACCES/EPERM JET_errFileAccessDenied,
 *  ENOENT JET_errFileNotFound, anything else JET_errDiskIO. */
JET_ERR js_err_from_errno(int e);
/** Detail of the last error raised in the calling thread ("page 812 of
 *  jetsnap.edb: checksum mismatch"); "" when none.  Valid until the next
 *  jetsnap call in the same thread. */
const char *js_errdetail(void);
/** Record err with a printf-style detail for js_errdetail() in the calling
 *  thread and return it: how a program built on the library reports its own
 *  failures the library's way (`return js_fail(JET_errX, "...")`). */
JET_ERR js_fail(JET_ERR err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Limits and file names                                                */
/* ------------------------------------------------------------------ */
#define JS_KEY_MAX        255u
#define JS_VALUE_MAX      (1u << 20)
#define JS_DB_FILE        "jetsnap.edb"
#define JS_CHK_FILE       "edb.chk"
#define JS_LOG_FILE       "edb.log"
#define JS_LOG_TMP_FILE   "edbtmp.log"
#define JS_LOCK_FILE      "jetsnap.lock"
#define JS_DWB_FILE       "jetsnap.dwb"    /* the doublewrite buffer: torn-page repair (store/dwb.c) */
#define JS_RESTORE_INFO_FILE "restore.info"   /* a restore's `restored_to: TIME` (SPEC 8) */
#define JS_SNAPSHOT_DIR   "snapshots"      /* the snapshot store (SPEC 2, 7) */

/* ------------------------------------------------------------------ */
/* Parameters, instance                                                 */
/* ------------------------------------------------------------------ */
enum js_commit_mode { JS_COMMIT_DURABLE = 0, JS_COMMIT_LAZY = 1 };

typedef struct js_params {
    uint32_t page_size;          /* creation only: 4096, 8192, 16384, 32768 */
    uint64_t log_file_size;      /* creation only: 64 KiB .. 1 GiB */
    int circular_log;            /* delete generations below the checkpoint */
    int no_log;                  /* no log at all: no recovery, no backup */
    int commit_mode;             /* enum js_commit_mode */
    uint64_t cache_size;         /* buffer pool bytes (soft limit) */
    uint32_t checkpoint_ms;      /* background checkpoint period: an idle
                                    instance is checkpointed within two,
                                    a writing one every 30 periods or ... */
    uint64_t checkpoint_depth;   /* ... once the log since the redo point
                                    reaches this many bytes (0: 256 MiB),
                                    whichever comes first */
    uint64_t backup_max_rate;    /* bytes/s a backup may copy (0: no limit) */
    uint32_t snapshot_max;       /* most snapshots kept at once (0: the default, 64) */
} js_params;

/** Fill *p with the defaults of SPEC section 1 (8 KiB pages, 5 MiB log
 *  generations, durable commits, 256 MiB cache, checkpoint period 1 s,
 *  checkpoint depth 256 MiB). */
void js_params_default(js_params *p);

typedef struct js_instance js_instance;

enum js_instance_state {
    JS_INST_STARTING = 0,   /* js_instance_new() done, js_instance_start() not */
    JS_INST_RECOVERING,     /* redo in progress */
    JS_INST_READY,          /* serving */
    JS_INST_STOPPING,       /* js_close() in progress */
    JS_INST_FATAL           /* a fatal I/O error revoked access */
};

/** Create an empty instance in dir (missing or empty).  Uses page_size,
 *  log_file_size and circular_log of *p (NULL: defaults).
 *  Errors: JET_errInvalidParameter (bad size), JET_errBackupDirectoryNotEmpty
 *  is never returned here; a non-empty dir gives JET_errInvalidPath, an I/O
 *  failure JET_errDiskIO / JET_errDiskFull. */
JET_ERR js_create(const char *dir, const js_params *p);

/** First half of opening: lock dir, read and check the header (page size,
 *  signatures, state).  Recovery does not run yet, so a caller can show
 *  "recovering" while js_instance_start() runs in another thread.
 *  Errors: JET_errFileNotFound (no instance), JET_errInvalidDatabase (not a
 *  jetsnap database), JET_errDatabaseInUse, JET_errDatabaseDirtyShutdown
 *  (a crashed no_log instance), JET_errRestoreInProgress (state
 *  being-restored), JET_errSoftRecoveryOnBackupDatabase (a raw backup copy),
 *  JET_errReadVerifyFailure (both header copies bad), JET_errPageSizeMismatch
 *  (p->page_size set to a size other than the database's; the default 8192
 *  and 0 mean "whatever it has").  A refused open creates and changes
 *  nothing in dir. */
JET_ERR js_instance_new(const char *dir, const js_params *p, js_instance **out);

/** Second half: crash recovery (redo from the checkpoint), then start the
 *  checkpoint and log threads.  Errors: JET_errMissingLogFile,
 *  JET_errBadLogSignature, JET_errLogReadVerifyFailure,
 *  JET_errReadVerifyFailure, I/O errors; JET_errDiskFull or
 *  JET_errLogDiskFull when recovery cannot write for lack of space (nothing
 *  is lost: open again once space is freed).  On error the instance stays
 *  unusable; call js_close(). */
JET_ERR js_instance_start(js_instance *inst);

/** js_instance_new() followed by js_instance_start(). */
JET_ERR js_open(const char *dir, const js_params *p, js_instance **out);

/** Current state (enum js_instance_state); any thread, any time. */
int js_instance_state(const js_instance *inst);

/** Stop: cancel a running backup (it fails with
 *  JET_errClientRequestToStopJetService), wait for sessions' transactions
 *  to end (callers must end their sessions first), checkpoint, mark the
 *  header clean-shutdown, unlock and free.  Returns the first error met;
 *  the instance is freed in every case.  On a full disk the final
 *  checkpoint may fail (JET_errDiskFull, JET_errLogDiskFull): the header
 *  then stays dirty-shutdown and the next open recovers from the log, which
 *  holds every commit acknowledged as durable.  NULL is a no-op. */
JET_ERR js_close(js_instance *inst);

/** Force a checkpoint now: flush every dirty page, fsync, write edb.chk.
 *  Under circular logging, delete generations below it.  An I/O error
 *  makes the instance fatal (the log still holds everything).  A full disk
 *  (JET_errDiskFull, JET_errLogDiskFull) does not: pages not written stay
 *  dirty, edb.chk keeps the previous redo point, and writers are refused
 *  with JET_errDiskFull until a checkpoint succeeds. */
JET_ERR js_checkpoint(js_instance *inst);

/** Close the current log generation and start the next one.  *closed_gen
 *  (may be NULL) receives the generation just closed.
 *  Errors: JET_errLoggingDisabled, JET_errLogWriteFail (the instance is then
 *  fatal), JET_errLogDiskFull (no space for the next generation or the close:
 *  the current generation stays open). */
JET_ERR js_log_roll(js_instance *inst, uint32_t *closed_gen);
/** Archiving (SPEC 8): the smallest and largest closed generation present
 *  (0,0 if none). */
JET_ERR js_log_closed_range(js_instance *inst, uint32_t *min_gen, uint32_t *max_gen);
/** Absolute path of closed generation gen (edbXXXXXXXX.log) into out. */
void js_log_gen_path(js_instance *inst, uint32_t gen, char *out, size_t cap);
/** Keep every generation >= gen from truncation and circular logging (the
 *  oldest one not yet archived); 0 lifts the pin.  Independent of a
 *  backup's pin. */
void js_log_archive_pin(js_instance *inst, uint32_t gen);
/** Wall time (ms) of the first commit in the current generation, 0 when it
 *  holds none since it was opened (archive_timeout). */
int64_t js_log_first_commit_ms(js_instance *inst);

/** Read bytes [off, off+len) of the database file as it is on disk, under
 *  the page-range lock, so no page is torn.  *got receives the bytes read
 *  (short at end of file).  Thread-safe. */
JET_ERR js_db_read(js_instance *inst, uint64_t off, void *buf, size_t len, size_t *got);

/** The instance directory (as given to js_instance_new). */
const char *js_instance_dir(const js_instance *inst);

/** What the buffer pool holds (INFO's # Memory section). */
typedef struct js_cache_info {
    uint64_t limit_bytes;    /* cache_size: evictions start past it (dirty
                                pages are never evicted, so it may grow past) */
    uint64_t pages_bytes;    /* pages held in the pool */
    uint64_t dirty_bytes;    /* of those, changed since the last checkpoint */
    uint64_t spare_bytes;    /* buffers kept for transactions' page copies */
    uint64_t memory_bytes;   /* all the pool has allocated: frames, pages,
                                spares and its hash table */
    uint64_t mapped_bytes;   /* address space it reserved for them */
    uint32_t page_size;
} js_cache_info;
/** Fill *out.  Thread-safe; JET_errInvalidParameter on NULL. */
JET_ERR js_cache_info_get(js_instance *inst, js_cache_info *out);

/** Milliseconds since the epoch (CLOCK_REALTIME): times shown to people. */
int64_t js_time_ms(void);
/** Milliseconds of CLOCK_MONOTONIC: deadlines and durations. */
int64_t js_mono_ms(void);

/* ------------------------------------------------------------------ */
/* Snapshots (SPEC section 7)                                           */
/* ------------------------------------------------------------------ */
/*
 * A snapshot is the database as of one commit point, kept by copy-on-write
 * in DBDIR/snapshots/ (the store: core/store/snapstore.c): taking one
 * copies no data up front (only the pages committed but not yet written,
 * which the file does not hold), and from then on the first overwrite of a
 * page it still reads from jetsnap.edb saves the old image first, once for
 * every snapshot sharing it.  Its image is a whole jetsnap.edb in
 * clean-shutdown state with its own log signature, so a copy of it opens as
 * an instance with no logs and starts a log stream of its own.  Snapshots
 * survive restarts and crashes; backups never touch them.  A snapshot whose
 * image the store could not save (no space, I/O error) becomes invalid: its
 * reads fail with JET_errDiskIO, an event says why, it can still be
 * deleted; the live database is not affected.
 * Events: 2001 snapshot created, 2004 snapshot deleted, 2007 snapshot
 * invalidated (the numbers of ESE's shadow-copy events).
 * Every function here is thread-safe.
 */
#define JS_SNAPSHOT_NAME_MAX 64

typedef struct js_snapshot_info {
    char name[JS_SNAPSHOT_NAME_MAX + 1];
    int64_t created;             /* ms since the epoch */
    uint64_t log_position;       /* the commit point: later commits are not in it */
    int64_t last_commit_time;    /* ms; time of the last commit in it (0 unknown) */
    uint32_t pages;              /* the image's size in pages */
    uint32_t page_size;
    char db_signature[33];       /* hex, the database's */
    char log_signature[33];      /* hex, the image's own (a copy's log stream) */
    uint64_t bytes_held;         /* saved images this snapshot reads (shared ones counted in each) */
    int valid;                   /* 0: invalid (see invalid_err) */
    JET_ERR invalid_err;
    int open_files;              /* js_snapshot handles open on it */
    uint32_t id;                 /* never reused by this instance (the mount's inode numbers) */
} js_snapshot_info;

/** 1 when name is a valid snapshot name: 1..64 of [A-Za-z0-9._-], not
 *  starting with '.'. */
int js_snapshot_name_ok(const char *name);
/** Take snapshot name of a running instance; returns once it is durable
 *  (its transactions' log flushed too).  *out (may be NULL) describes it.
 *  Writers wait only while the pages committed but not yet written are
 *  copied.  Errors: JET_errInvalidParameter (bad name),
 *  JET_errDatabaseDuplicate (name taken), JET_errOSSnapshotNotAllowed
 *  (snapshot_max reached), JET_errDiskFull / JET_errDiskIO (the store),
 *  JET_errNotInitialized (starting or recovering), JET_errTermInProgress,
 *  JET_errInstanceUnavailable. */
JET_ERR js_snapshot_take(js_instance *inst, const char *name, js_snapshot_info *out);
/** Every snapshot, in no set order; *out malloc'd (free it), *n may be 0. */
JET_ERR js_snapshot_list(js_instance *inst, js_snapshot_info **out, size_t *n);
/** One snapshot.  Errors: JET_errOSSnapshotInvalidSnapId (no such name). */
JET_ERR js_snapshot_stat(js_instance *inst, const char *name, js_snapshot_info *out);
/** Delete a snapshot and free its space.  Errors:
 *  JET_errOSSnapshotInvalidSnapId, JET_errDatabaseInUse (a handle is open),
 *  JET_errTermInProgress, JET_errDiskIO. */
JET_ERR js_snapshot_delete(js_instance *inst, const char *name);
/** Bytes the snapshot store holds (page images, each counted once). */
uint64_t js_snapshot_space(js_instance *inst);

typedef struct js_snapshot js_snapshot;
/** Open snapshot name for reading its jetsnap.edb image; *info (may be
 *  NULL) describes it.  The handle holds a descriptor of jetsnap.edb of
 *  its own (js_snapshot_read_pieces' file ranges) until it is closed.
 *  Errors: JET_errOSSnapshotInvalidSnapId, JET_errOutOfMemory. */
JET_ERR js_snapshot_open(js_instance *inst, const char *name, js_snapshot **out, js_snapshot_info *info);
/** Read [off, off+len) of the image (size pages * page_size); *got short
 *  only at its end.  Errors: JET_errDiskIO (invalid snapshot),
 *  JET_errReadVerifyFailure, JET_errDiskIO. */
JET_ERR js_snapshot_read(js_snapshot *s, uint64_t off, void *buf, size_t len, size_t *got);
/** One piece of a snapshot read: len bytes at off of file descriptor fd
 *  (the engine's own, read-only to the caller) when fd >= 0, else at mem. */
typedef struct js_piece {
    int fd;
    uint64_t off;
    const void *mem;
    size_t len;
} js_piece;
typedef JET_ERR (*js_emit_fn)(void *ctx, const js_piece *pieces, size_t n);
/** Read [off, off+len) of the image as js_snapshot_read does, handed to
 *  emit(ctx, pieces, n) (n 0 at the end) instead of copied: pages still in
 *  jetsnap.edb as ranges of its descriptor, for a zero-copy consumer (the
 *  daemon splices them into its FUSE reply), the others in scratch (room
 *  for len + 2 * page_size bytes).  pieces has room for cap entries
 *  (len / page_size + 3 is enough).  The caller reads the ranges itself,
 *  outside the engine's I/O fault seam.  The ranges hold the snapshot's bytes
 *  only until emit returns: it must consume them by then, and must not
 *  call the engine (it runs under the store's locks; keep it short).
 *  Once emit has run the call no longer touches s, so another thread may
 *  close s as soon as emit has handed the bytes on (the daemon's RELEASE
 *  may follow its READ's reply at once).
 *  Returns emit's error, else as js_snapshot_read; emit is not called
 *  after an error. */
JET_ERR js_snapshot_read_pieces(js_snapshot *s, uint64_t off, size_t len, void *scratch, js_piece *pieces, size_t cap,
                                js_emit_fn emit, void *ctx);
/** A small blob kept durably with the snapshot for its life (the daemon
 *  keeps SHA256SUMS there).  Get: *len 0 when none, at most cap copied. */
JET_ERR js_snapshot_note_set(js_snapshot *s, const void *data, uint32_t len);
JET_ERR js_snapshot_note_get(js_snapshot *s, void *buf, uint32_t cap, uint32_t *len);
/** Close a handle; NULL is a no-op. */
void js_snapshot_close(js_snapshot *s);

/* ------------------------------------------------------------------ */
/* Live view: the files of DBDIR, read from outside the engine          */
/* ------------------------------------------------------------------ */
/*
 * What a program that shows an instance's directory (the daemon's live/)
 * needs, so it never opens DBDIR's files itself: the files the view shows
 * (every regular file of DBDIR but JS_LOCK_FILE), their attributes as on
 * disk, and reads at any offset and length.  jetsnap.edb is read through
 * the instance under the page-range lock, and a handle keeps the image of
 * a page a read cut in two until its other part is read too, so a reader
 * whose one read(2) arrives as several calls cut mid-page (FUSE direct_io
 * with an unaligned buffer) never sees a torn page.  A js_live holds DBDIR
 * by an fd and needs no open instance; everything is thread-safe.
 */
typedef struct js_live js_live;
typedef struct js_live_file js_live_file;
struct stat;

/** Open the live view of dbdir.  Errors: JET_errOutOfMemory,
 *  JET_errFileNotFound, JET_errFileAccessDenied, JET_errDiskIO. */
JET_ERR js_live_new(const char *dbdir, js_live **out);
/** Close the view (after every js_live_file of it may still be open: they
 *  hold their own fds).  NULL is a no-op. */
void js_live_free(js_live *lv);

/** 1 when name may be shown by the view (one path component, not "." or
 *  "..", not JS_LOCK_FILE, JS_SNAPSHOT_DIR or JS_DWB_FILE), 0 otherwise. */
int js_live_name_ok(const char *name);

/** Call fn(ctx, name) for each regular file of DBDIR the view shows, in
 *  directory order, until fn returns non-zero.  Errors as js_live_new. */
JET_ERR js_live_list(js_live *lv, int (*fn)(void *ctx, const char *name), void *ctx);

/** *st gets the attributes of DBDIR itself (name NULL) or of a file the
 *  view shows, as on disk (symlinks not followed).  Errors:
 *  JET_errFileNotFound (missing, not shown, or not a regular file),
 *  JET_errFileAccessDenied, JET_errDiskIO. */
JET_ERR js_live_stat(js_live *lv, const char *name, struct stat *st);

/** Open a file of the view for js_live_read().  Errors as js_live_stat,
 *  and JET_errOutOfMemory. */
JET_ERR js_live_open(js_live *lv, const char *name, js_live_file **out);
/** Read [off, off+len) of an open live file into buf; *got receives the
 *  bytes read (short at end of file).  inst is the open instance of DBDIR,
 *  needed for jetsnap.edb (JET_errNotInitialized without it) and unused for
 *  other files.  Errors: those of js_db_read, JET_errOutOfMemory,
 *  JET_errDiskIO. */
JET_ERR js_live_read(js_live_file *f, js_instance *inst, uint64_t off, void *buf, size_t len,
                     size_t *got);
/** Close a live file; NULL is a no-op.  Needs no instance. */
void js_live_close(js_live_file *f);

/* ------------------------------------------------------------------ */
/* Sessions, transactions, data                                         */
/* ------------------------------------------------------------------ */
typedef struct js_session js_session;

/** Open a session.  A session is used by one thread at a time: entering it
 *  from a second thread while the first is inside gives
 *  JET_errSessionSharingViolation. */
JET_ERR js_session_open(js_instance *inst, js_session **out);
/** Close a session, rolling back an open transaction.  NULL is a no-op. */
void js_session_close(js_session *s);

#define JS_TXN_READONLY 0x1u
/** Begin a transaction.  A read-write transaction waits for the writer lock.
 *  A read-only transaction (JS_TXN_READONLY) is a snapshot: all its reads
 *  see the same commit.  Commits wait to become visible while it is open, so
 *  keep it short, and never write through another session from the thread
 *  that holds it (that would wait for itself).
 *  Errors: JET_errInTransaction, JET_errInstanceUnavailable,
 *  JET_errTermInProgress; for a read-write transaction also
 *  JET_errLogDiskFull (a log write failed for lack of space and retrying it
 *  now fails too) and JET_errDiskFull (checkpoints fail for lack of space
 *  and one more attempt, made for this call, failed too). */
JET_ERR js_txn_begin(js_session *s, unsigned flags);

#define JS_COMMIT_FLAG_LAZY    0x1u  /* do not wait for the log flush */
#define JS_COMMIT_FLAG_DURABLE 0x2u  /* wait for the log flush */
/** Commit.  With the instance's commit mode durable (or
 *  JS_COMMIT_FLAG_DURABLE) the commit is on disk when this returns.
 *  Errors: JET_errNotInTransaction, JET_errLogWriteFail (the instance is then
 *  fatal), JET_errLogDiskFull (no space for the log; what the transaction
 *  leaves is told under "transient" above).  The transaction is over in
 *  every case. */
JET_ERR js_txn_commit(js_session *s, unsigned flags);
/** js_txn_commit that also tells where the commit ends in the log: *pos
 *  receives a position to give js_wait_durable (0 when nothing was logged:
 *  a read-only or empty transaction, logging off, or an error).  With
 *  JS_COMMIT_FLAG_LAZY the commit is visible but not yet durable; a
 *  server batching many lazy commits makes them all durable with one
 *  js_wait_durable of the largest position (protocol-level group commit). */
JET_ERR js_txn_commit_pos(js_session *s, unsigned flags, uint64_t *pos);
/** Wait until the log is on disk up to pos (from js_txn_commit_pos); pos 0
 *  returns at once.  On success *durable (may be NULL) receives how far the
 *  log is durable now (>= pos: the flush may have carried later commits
 *  too).  Any thread may call it, also while other threads commit.
 *  Errors: JET_errLogDiskFull (the commits up to pos were kept and
 *  are rewritten by a later flush: their outcome is unknown to the caller
 *  until then), JET_errLogWriteFail (the instance is fatal). */
JET_ERR js_wait_durable(js_instance *inst, uint64_t pos, uint64_t *durable);
/** Roll back: nothing of the transaction stays.  JET_errNotInTransaction. */
JET_ERR js_txn_rollback(js_session *s);
/** Set the savepoint of the open write transaction (replacing the one
 *  before): js_txn_rollback_savepoint undoes what was changed after it, and
 *  a js_put or js_del that fails half-way inside the transaction then undoes
 *  only back to it instead of ending the transaction.  Cheap (a server runs
 *  many commands in one transaction, one savepoint each).
 *  JET_errNotInTransaction without a write transaction. */
JET_ERR js_txn_savepoint(js_session *s);
/** Undo every change made since the savepoint; the transaction stays open
 *  with the savepoint where it was.  Cannot fail for want of memory.
 *  JET_errNotInTransaction, JET_errInvalidParameter (no savepoint set). */
JET_ERR js_txn_rollback_savepoint(js_session *s);

/** Insert or replace.  Outside a transaction it runs in its own
 *  transaction.  Errors: JET_errKeyTooBig (key 0 or >255 bytes: klen 0 gives
 *  JET_errInvalidParameter), JET_errRecordTooBig (value > 1 MiB); nothing is
 *  stored then.  Outside a transaction also the errors of js_txn_begin and
 *  js_txn_commit (JET_errLogDiskFull, JET_errDiskFull). */
JET_ERR js_put(js_session *s, const void *key, size_t klen, const void *val, size_t vlen);
/** Delete.  JET_errRecordNotFound when absent. */
JET_ERR js_del(js_session *s, const void *key, size_t klen);
/** Look up.  *val receives a malloc'd copy (free() it; non-NULL even for a
 *  0-byte value), *vlen its length.  JET_errRecordNotFound when absent. */
JET_ERR js_get(js_session *s, const void *key, size_t klen, void **val, size_t *vlen);
/** Number of keys (committed, plus the session's own uncommitted changes). */
JET_ERR js_count(js_session *s, uint64_t *count);

/** A key named to js_prefetch. */
typedef struct js_keyref {
    const void *key;
    size_t klen;
} js_keyref;
/** A hint that calls on these keys follow soon (a pipeline's next
 *  commands): the leaf pages they will need, if in the buffer pool, start
 *  loading into the CPU cache, all at once, so that their memory latencies
 *  overlap instead of adding up one call after another.  Changes nothing;
 *  up to the first 64 keys are followed.  Its errors (a damaged or
 *  unreadable branch page) are those the calls on the keys meet, and
 *  report, again. */
JET_ERR js_prefetch(js_session *s, const js_keyref *keys, size_t n);

typedef struct js_cursor js_cursor;
/** Open a cursor on the session's view. */
JET_ERR js_cursor_open(js_session *s, js_cursor **out);
/** Position on the first key >= key (klen 0: the first key).
 *  JET_errRecordNotFound when there is none. */
JET_ERR js_cursor_seek(js_cursor *c, const void *key, size_t klen);
/** Move to the next key.  JET_errRecordNotFound at the end. */
JET_ERR js_cursor_next(js_cursor *c);
/** Current key and value; pointers stay valid until the next cursor call. */
JET_ERR js_cursor_key(js_cursor *c, const void **key, size_t *klen);
JET_ERR js_cursor_value(js_cursor *c, const void **val, size_t *vlen);
void js_cursor_close(js_cursor *c);

/* ------------------------------------------------------------------ */
/* Information and offline checks                                       */
/* ------------------------------------------------------------------ */
enum js_db_state {
    JS_DB_JUST_CREATED = 1,
    JS_DB_DIRTY_SHUTDOWN = 2,
    JS_DB_CLEAN_SHUTDOWN = 3,
    JS_DB_BEING_RESTORED = 4
};

typedef struct js_backup_stamp {
    uint32_t gen_low, gen_high;   /* 0,0: none */
    int64_t time;                 /* seconds since the epoch */
} js_backup_stamp;

typedef struct js_info {
    int state;                    /* enum js_db_state */
    uint32_t page_size;
    uint64_t pages;               /* pages in use (high-water mark) */
    char db_signature[40];        /* hex */
    char log_signature[40];       /* hex */
    uint32_t checkpoint_gen;      /* 0 when no edb.chk */
    uint32_t log_gen_min, log_gen_max; /* 0,0 when no log files */
    int circular_log;
    uint64_t log_file_size;
    js_backup_stamp last_full, last_incremental;
    int is_backup_set;            /* PATH was a backup set */
    char backup_type[16];         /* "full" / "incremental" for a set */
    char restored_to[40];         /* restore.info of a restored instance, "" when none */
} js_info;

/** Header facts of an instance directory, a lone .edb file or a backup set
 *  (BACKUP, BACKUP/new or BACKUP/old).  Read-only; works on a mounted
 *  instance's files too. */
JET_ERR js_info_read(const char *path, js_info *out);
/** Print *info as SPEC's `key: value` lines. */
void js_info_print(const js_info *info, void *file /* FILE* */);

typedef struct js_check_report {
    uint64_t pages_checked, pages_bad;
    uint64_t pages_repairable;    /* torn by a crash, with an image in jetsnap.dwb: not bad */
    uint64_t log_files_checked, log_blocks_checked, log_records_checked, log_files_bad;
    uint32_t first_bad_page;      /* valid when pages_bad > 0 */
    char first_error[256];
} js_check_report;

/** Offline check of an instance directory, a backup set or a lone .edb:
 *  every page checksum, every log block checksum and the generation chain.
 *  Zero is corruption where a page is in use (core/store/page.h): every page
 *  below the file's written bound must be valid, and an all-zero one there
 *  fails as "page N of FILE: zeroed".  The bound is the meta page's
 *  high-water mark for a clean-shutdown database, the last checkpoint's
 *  (edb.chk, beside a lone .edb too) for a dirty one, and the one recorded
 *  in a backup copy's header for a set (sets made before it was recorded:
 *  zero pages accepted).  Pages above it may be zero (not written yet, or
 *  unallocated); a non-zero page failing its checksum never may, unless
 *  the instance crashed (no process holds it) and its doublewrite buffer
 *  holds the page's image from a checkpoint write not yet durable (a torn
 *  write, which the next open repairs): those are counted in
 *  pages_repairable, not pages_bad.
 *  Returns JET_errSuccess only if everything passed; otherwise the first
 *  error (JET_errReadVerifyFailure, JET_errLogReadVerifyFailure,
 *  JET_errMissingLogFile, JET_errBadLogSignature); rep->first_error and
 *  js_errdetail() name the page or file. */
JET_ERR js_check(const char *path, js_check_report *rep);

/* ------------------------------------------------------------------ */
/* Backup and restore (JetBackup / JetRestore)                          */
/* ------------------------------------------------------------------ */
/* Shaped like ESE's JET_PFNSTATUS. */
enum js_snp { JS_SNP_RESTORE = 8, JS_SNP_BACKUP = 9 };
enum js_snt { JS_SNT_PROGRESS = 0, JS_SNT_FAIL = 3, JS_SNT_BEGIN = 5, JS_SNT_COMPLETE = 6 };

typedef struct js_progress {
    uint64_t units_done, units_total;   /* units_total is 100 */
    uint64_t bytes_done, bytes_total;
    uint64_t pages_verified, log_records_verified;
    const char *phase;                  /* SPEC section 3 phase names */
    uint32_t gen_low, gen_high;
    JET_ERR err;                        /* with JS_SNT_FAIL */
    const char *message;                /* with JS_SNT_FAIL, may be "" */
    const char *truncated;              /* "none" or "edbX.log-edbY.log" once known */
    uint64_t pace_rate;                 /* bytes/s the pacer holds the copy to, 0: none */
    int pacer_holding;                  /* 1: the pacer is slowing the copy for commits */
} js_progress;

/** A non-zero return cancels the job (JET_errBackupAbortByServer). */
typedef int (*js_status_fn)(void *ctx, int snp, int snt, const js_progress *p);

#define JS_BACKUP_ATOMIC      0x1u
#define JS_BACKUP_INCREMENTAL 0x2u
#define JS_BACKUP_CREATE_DIR  0x4u

/* The event log (ESE event IDs, SPEC section 3). */
enum js_event_level { JS_EV_INFO = 0, JS_EV_WARNING = 1, JS_EV_ERROR = 2 };
typedef struct js_event {
    int64_t time_ms;        /* since the epoch */
    int id;                 /* 210, 211, 213, 214, 215, 220, ... */
    int level;              /* enum js_event_level */
    const char *message;
} js_event;
typedef void (*js_event_fn)(void *ctx, const js_event *ev);
/** Subscribe to the instance's events (one sink; NULL unsubscribes).  The
 *  sink is called from the thread raising the event and must not call back
 *  into the instance. */
void js_set_event_sink(js_instance *inst, js_event_fn fn, void *ctx);

/** Online backup.  dest NULL: truncate logs only.  flags: JS_BACKUP_*.
 *  Runs in the calling thread while clients keep writing.
 *  Errors (SPEC section 6): JET_errBackupInProgress,
 *  JET_errBackupNotAllowedYet, JET_errLoggingDisabled, JET_errInvalidGrbit,
 *  JET_errInvalidParameter, JET_errInvalidPath, JET_errInvalidBackup,
 *  JET_errMissingFullBackup, JET_errMissingFileToBackup,
 *  JET_errBackupDirectoryNotEmpty, JET_errMakeBackupDirectoryFail,
 *  JET_errReadVerifyFailure, JET_errLogReadVerifyFailure, JET_errDiskFull,
 *  JET_errBackupAbortByServer, JET_errClientRequestToStopJetService.
 *  Every page copied is verified: below the written bound of the job's
 *  checkpoint (core/store/page.h) it must be valid, so a zeroed used page fails
 *  with JET_errReadVerifyFailure "page N of jetsnap.edb: zeroed"; the
 *  copy's header records that bound for check and restore.
 *  On failure nothing this job wrote stays and no live log is truncated.
 *  DEST is resolved once, when the job is accepted, and held open: the job
 *  works relative to that directory to the end, so renaming a directory on
 *  the path or putting a symlink in its place while it runs cannot make it
 *  read, write or delete anything elsewhere.  A symlink as DEST's last
 *  component is refused (JET_errInvalidPath); `create` makes DEST in its
 *  (held) parent.  On failure only what this job made is removed. */
JET_ERR js_backup(js_instance *inst, const char *dest, unsigned flags,
                  js_status_fn status, void *ctx);
/** js_backup with DEST confined beneath a root directory (jetsnapfs's
 *  backup_root).  root_fd: the root, open (O_PATH is enough); root: its
 *  absolute path, used only to take DEST's part beneath it.  DEST must be
 *  root or lie under it and is resolved by the kernel beneath root_fd with
 *  no symlink followed on the way (openat2 RESOLVE_BENEATH |
 *  RESOLVE_NO_SYMLINKS; component by component with O_NOFOLLOW where the
 *  kernel lacks openat2).  Outside, through a symlink, or missing (without
 *  `create`, or its parent missing): JET_errInvalidPath.  root_fd -1 is
 *  js_backup. */
JET_ERR js_backup_beneath(js_instance *inst, int root_fd, const char *root, const char *dest,
                          unsigned flags, js_status_fn status, void *ctx);
/** Ask the running backup to stop (it fails with
 *  JET_errBackupAbortByServer).  Any thread.  No job: JET_errInvalidParameter. */
JET_ERR js_backup_cancel(js_instance *inst);

/** Hard recovery of a backup set into target (missing or empty).
 *  logs_dir (may be NULL): later generations to roll forward while they
 *  continue the chain; until_gen (0: no limit): last generation replayed.
 *  Before writing anything it cross-checks backup.info against the set:
 *  signatures, page size, size and first generation against the database
 *  copy's header, and the generations present against gen_low..gen_high
 *  (one outside the range, or one not listed in SHA256SUMS, is
 *  JET_errInvalidBackup; one missing inside, JET_errMissingRestoreLogFiles).
 *  Every page it copies is checked (checksum, page number, and zero below
 *  the copy's written bound, core/store/page.h), and after replay so are the
 *  pages between that bound and the final high-water mark: a failure is
 *  JET_errReadVerifyFailure "page N of FILE: zeroed" (or "checksum
 *  mismatch").  A refused restore removes what it wrote; one cut short
 *  leaves state being-restored, which open refuses.
 *  Errors: JET_errGivenLogFileIsNotContiguous, JET_errMissingRestoreLogFiles,
 *  JET_errStartingRestoreLogTooHigh, JET_errEndingRestoreLogTooLow,
 *  JET_errBadLogSignature, JET_errBadDbSignature, JET_errPageSizeMismatch,
 *  JET_errInvalidBackup, JET_errLogReadVerifyFailure,
 *  JET_errReadVerifyFailure, JET_errInvalidPath.
 *  The set directory (backup, backup/new or backup/old) and target are
 *  resolved once and held open: every file of the set is read, and every
 *  file of target written, relative to them, so a rename or symlink swapped
 *  into either path meanwhile changes nothing.  A symlink as target's last
 *  component is refused (JET_errInvalidPath); a missing target is made in
 *  its held parent.  A failed restore removes only the files it makes, and
 *  target only if it made it. */
JET_ERR js_restore(const char *backup, const char *target, const char *logs_dir,
                   uint32_t until_gen, js_status_fn status, void *ctx);

/** js_restore with the options of SPEC 8. */
typedef struct js_restore_opts {
    const char *logs_dir;   /* roll-forward generations after the set's, or NULL */
    int logs_strict;        /* 0: a gap, foreign signature or broken chain in
                               logs_dir ends the roll-forward quietly (--logs);
                               1: refused with its error (generations fetched
                               by --restore-command: each must continue the set) */
    uint32_t until_gen;     /* 0: no limit */
    int64_t until_us;       /* wall clock, microseconds: stop after the last
                               transaction committed at or before it (0: none);
                               before the set's consistent point:
                               JET_errEndingRestoreLogTooLow */
} js_restore_opts;
/** Restore as js_restore, with opts; TARGET then holds restore.info
 *  (`restored_to: TIME`, the last transaction applied), shown by info. */
JET_ERR js_restore_to(const char *backup, const char *target, const js_restore_opts *opts, js_status_fn status,
                      void *ctx);

/** Verify a backup set: SHA256SUMS, page and log checksums (js_check's
 *  rule: zero below the copy's written bound is corruption), chain, and a
 *  trial restore into a temporary directory (js_restore's checks of the
 *  manifest and of every page).  Errors as js_check and js_restore, the
 *  detail naming the page or file.  *rep may be NULL. */
JET_ERR js_verify(const char *backup, js_check_report *rep, js_status_fn status, void *ctx);

/* ------------------------------------------------------------------ */
/* Fault injection (tests only; affects the calling process)            */
/* ------------------------------------------------------------------ */
enum js_fault_op { JS_FAULT_WRITE = 0, JS_FAULT_FSYNC = 1, JS_FAULT_RENAME = 2, JS_FAULT_ALLOCATE = 3,
                   JS_FAULT_OPS };
/** Make the nth (1-based, counted from now) operation of kind op fail with
 *  errno err (EIO, ENOSPC).  JS_FAULT_ALLOCATE counts reservations of file
 *  space (a new log generation, the growth of jetsnap.edb).  For JS_FAULT_WRITE, tear_at >= 0 writes only
 *  the first tear_at bytes and then fails.  nth 0 disarms.  path_substr
 *  (may be NULL) restricts counting to paths containing it. */
void js_fault_arm(int op, uint64_t nth, int err, long tear_at, const char *path_substr);
/** Disarm every fault. */
void js_fault_reset(void);
/** How many operations of kind op ran since the last reset (matching the
 *  armed path filter, or all). */
uint64_t js_fault_count(int op);

#ifdef __cplusplus
}
#endif
#endif /* JETSNAP_H */

/*
 * mount_int.h - what the files of the FUSE side share (not for the rest of
 * the daemon, which sees mount.h): the mount's state, the open handles and
 * the inode numbers.
 *
 *   mount.c      session lifecycle: mount, loop thread, bounded stop
 *   mountinfo.c  mountinfo and fusectl: find, probe, detach, abort a mount
 *   inode.c      the inode table: fixed inodes, one per live name, attributes
 *   live_view.c  the live view: live/ and its files through core's js_live
 *   snap_view.c  snapshots/ (SPEC 7): mkdir/rmdir, the three files per snapshot
 *   snap_ahead.c a snapshot image stored into the page cache ahead of its reader
 *   handlers.c   fuse_lowlevel_ops: every handler replies exactly once
 *
 *   ino 1 /          dr-xr-xr-x        ino 4 /events   r--r--r--
 *   ino 2 /control   --w-------        ino 5 /live/    as DBDIR, minus w
 *   ino 3 /status    r--r--r--         ino 16+i        live/<name i>, as the file, minus w
 *   ino 6 /snapshots/ rwx------        ino 2^40+4*id+k snapshot id: k 0 its directory,
 *                                       1 jetsnap.edb, 2 snapshot.info, 3 SHA256SUMS
 *
 * Locking: mnt.inst_lock (rwlock) guards mnt.inst; mnt.live_lock guards the
 * live name table; mnt.fh_lock guards the handle list; mnt.note_lock the
 * notifier's queue; mnt.ahead_lock the handles' storing-ahead state.  None
 * is held while another is taken, and none is held across a notify call
 * (mnt.inst_lock is held for reading across a snapshot READ's reply).
 */
#ifndef JS_FS_MOUNT_INT_H
#define JS_FS_MOUNT_INT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include "mount.h"

enum {
    INO_ROOT = 1, INO_CONTROL = 2, INO_STATUS = 3, INO_EVENTS = 4, INO_LIVE = 5,
    INO_SNAPS = 6, INO_LIVE_BASE = 16
};
#define INO_SNAP_BASE ((fuse_ino_t)1 << 40)
enum { SNAP_DIR = 0, SNAP_EDB = 1, SNAP_INFO = 2, SNAP_SUMS = 3 };

enum fh_kind { FH_TEXT, FH_LIVE_DB, FH_LIVE_FILE, FH_CONTROL, FH_DIR, FH_SNAP_DB };

/* FH_SNAP_DB: storing the image ahead of its reader (snap_ahead.c), under
 * mnt.ahead_lock. */
struct mnt_ahead {
    uint64_t size;              /* the image's bytes */
    uint64_t front;             /* end of the stream's furthest READ */
    uint64_t in_order;          /* bytes the stream has read in order */
    uint64_t stored;            /* stored into the page cache up to here */
    uint64_t stream;            /* counts the streams: a READ elsewhere starts one */
    int pusher;                 /* a worker stores ahead for this handle */
    int failed;                 /* a read or a store failed: no more for this handle */
    int closing;                /* RELEASE waits for the pusher */
};

struct mnt_fh {
    struct mnt_fh *prev, *next;     /* mnt.fhs, under mnt.fh_lock */
    enum fh_kind kind;
    js_live_file *lf;           /* FH_LIVE_DB, FH_LIVE_FILE */
    js_snapshot *snap;          /* a snapshot's file (FH_SNAP_DB, or FH_TEXT) */
    char *data;                 /* FH_TEXT, FH_DIR: the snapshot */
    size_t len;
    struct mnt_ahead ahead;     /* FH_SNAP_DB */
};

struct mnt {
    struct fuse_session *se;
    pthread_t loop_thread;
    atomic_int loop_done;
    atomic_int open_handles;    /* opens and opendirs not yet released */
    int ended_fd;
    char *dbdir, *mountpoint;
    js_live *live;              /* DBDIR, for live/ */
    uid_t uid;
    gid_t gid;
    time_t mount_time;
    unsigned conn_minor;        /* fusectl connection number, 0 unknown */
    int unmounted;              /* mnt_unmount() ran (main thread only) */
    int detached;               /*   and nothing of ours is mounted on the path */

    pthread_rwlock_t inst_lock; /* guards inst */
    js_instance *inst;

    struct ctl *ctl;
    struct st_status *st;
    struct ev_log *ev;

    /* Handles a client may still hold when we stop (no RELEASE will come
     * for them): freed by mnt_stop().  fh_lock is a leaf lock. */
    pthread_mutex_t fh_lock;
    struct mnt_fh *fhs;

    /* Storing snapshot images ahead of their readers (snap_ahead.c), when
     * store_ahead (-o snapshot_store_ahead; set at start, then read only):
     * ahead_lock guards every handle's mnt_ahead and ahead_pushers, and
     * is a leaf lock; ahead_cond signals a pusher's end. */
    pthread_mutex_t ahead_lock;
    pthread_cond_t ahead_cond;
    int ahead_pushers;
    int store_ahead;

    pthread_mutex_t live_lock;  /* guards live_names, live_n, live_cap */
    char **live_names;
    size_t live_n, live_cap;

    /* The notifier thread (mount.c): sends entry invalidations that a
     * worker must not send itself.  note_lock guards the queue and
     * note_stop; note_cond signals both ways. */
    pthread_t note_thread;
    int note_started;
    pthread_mutex_t note_lock;
    pthread_cond_t note_cond;
    struct mnt_note *notes;
    int note_stop;
};

#define M(req) ((struct mnt *)fuse_req_userdata(req))
#define FH(fi) ((struct mnt_fh *)(uintptr_t)(fi)->fh)

/* mount.c */
/** snapshots/NAME is gone without the kernel knowing (a `snapshot-delete`
 *  through the control file): have the notifier thread invalidate the
 *  kernel's entry and wait until it has (at most 2 s, then give up: the
 *  entry stays until its timeout).  Call with no lock held, from a worker
 *  answering anything but a request on snapshots/. */
void mnt_notify_gone(struct mnt *m, const char *name);

/* handlers.c */
extern const struct fuse_lowlevel_ops mnt_ops;
/** Unlink and free a handle (NULL is a no-op). */
void mnt_fh_free(struct mnt *m, struct mnt_fh *fh);

/* inode.c */
/** Inode of a live name, added on first sight; 0 when out of memory. */
fuse_ino_t mnt_live_ino(struct mnt *m, const char *name);
/** Copy the name of a live inode; -1 when unknown. */
int mnt_live_name(struct mnt *m, fuse_ino_t ino, char *out, size_t cap);
/** Attributes of the fixed inodes (root, control, status, events, live/
 *  before mnt_live_dir_attr() fills in DBDIR's). */
void mnt_fill_static(struct mnt *m, fuse_ino_t ino, struct stat *st);
/** Attributes of any inode; 0 or an errno. */
int mnt_getattr(struct mnt *m, fuse_ino_t ino, struct stat *st);
/** Free the live name table (mnt_stop). */
void mnt_live_names_free(struct mnt *m);

/* live_view.c */
/** Attributes of live/ itself; 0 or an errno. */
int mnt_live_dir_attr(struct mnt *m, struct stat *st);
/** Attributes of a live file (st_ino set to ino); 0 or an errno. */
int mnt_live_stat(struct mnt *m, const char *name, fuse_ino_t ino, struct stat *st);
/** Add live/'s files to a directory snapshot with add(req, fh, cap, name,
 *  ino, mode); 0 or an errno. */
int mnt_live_list(struct mnt *m, fuse_req_t req, struct mnt_fh *fh, size_t *cap,
                  int (*add)(fuse_req_t, struct mnt_fh *, size_t *, const char *, fuse_ino_t,
                             mode_t));
/** Open live file ino into fh (kind and lf); 0 or an errno. */
int mnt_live_open(struct mnt *m, fuse_ino_t ino, struct mnt_fh *fh);
/** Read an open live file into buf; *got the bytes read; 0 or an errno. */
int mnt_live_read(struct mnt *m, struct mnt_fh *fh, uint64_t off, size_t size, char *buf,
                  size_t *got);

/** Owner, group and mode bits of a DBDIR file as the mount shows them
 *  (write, set-id and sticky bits removed): live/ and snapshots/. */
void mnt_follow_attr(const struct stat *src, struct stat *st);

/* snap_view.c */
/** For an inode of a snapshot: SNAP_DIR..SNAP_SUMS and *id; else -1. */
int mnt_snap_ino_kind(fuse_ino_t ino, uint32_t *id);
/** Attributes of snapshots/ itself. */
void mnt_snaps_dir_attr(struct mnt *m, struct stat *st);
/** Attributes of a snapshot's inode; 0 or an errno. */
int mnt_snap_getattr(struct mnt *m, fuse_ino_t ino, struct stat *st);
/** Lookup in snapshots/ or in a snapshot's directory (timeouts set); 0 or
 *  an errno. */
int mnt_snap_lookup(struct mnt *m, fuse_ino_t parent, const char *name, struct fuse_entry_param *e);
/** Add the entries of snapshots/ or of a snapshot's directory, as
 *  mnt_live_list; 0 or an errno. */
int mnt_snap_list(struct mnt *m, fuse_ino_t ino, fuse_req_t req, struct mnt_fh *fh, size_t *cap,
                  int (*add)(fuse_req_t, struct mnt_fh *, size_t *, const char *, fuse_ino_t, mode_t));
/** mkdir snapshots/NAME by uid: take the snapshot; 0 (e filled) or an errno. */
int mnt_snap_mkdir(struct mnt *m, uid_t uid, const char *name, struct fuse_entry_param *e);
/** rmdir snapshots/NAME by uid; 0 or an errno. */
int mnt_snap_rmdir(struct mnt *m, uid_t uid, const char *name);
/** Open a snapshot's file into fh; 0 or an errno. */
int mnt_snap_open(struct mnt *m, fuse_ino_t ino, struct mnt_fh *fh);
/** Largest READ the kernel sends (max_read): a reply of it and its header
 *  fit a pipe of the default pipe-max-size, so libfuse can splice it. */
#define MNT_MAX_READ (512u << 10)
/** Answer req, a READ of an open jetsnap.edb of a snapshot, splicing the
 *  pages still in the database file (scratch: size + 64 KiB); 0 when
 *  answered, else an errno for the caller to answer with. */
int mnt_snap_reply_read(struct mnt *m, struct mnt_fh *fh, fuse_req_t req, uint64_t off, size_t size, char *scratch);
/** Release fh's snapshot handle (NULL is a no-op). */
void mnt_snap_close(struct mnt *m, struct mnt_fh *fh);
/** Drop what the kernel caches of every invalid snapshot's jetsnap.edb,
 *  so its reads come to the daemon and fail with EIO (SPEC 7).  From the
 *  notifier thread only: the kernel waits for READs in flight, which the
 *  workers answer; no lock held. */
void mnt_snap_drop_invalid(struct mnt *m);

/* snap_ahead.c */
/** Start fh's storing-ahead state for an image of size bytes (open). */
void mnt_ahead_open(struct mnt_fh *fh, uint64_t size);
/** Record a READ of [off, off+size) of fh's image, before it is answered;
 *  1 when the caller is to call mnt_ahead_push after answering it (the
 *  handle's pusher is then claimed, and its RELEASE waits for it). */
int mnt_ahead_note(struct mnt *m, struct mnt_fh *fh, uint64_t off, size_t size);
/** Store fh's image (inode ino) into the kernel's page cache ahead of its
 *  reader until the window is full or the handle closes; buf has room for
 *  MNT_MAX_READ bytes.  Only after mnt_ahead_note returned 1. */
void mnt_ahead_push(struct mnt *m, struct mnt_fh *fh, fuse_ino_t ino, char *buf);
/** Wait until no worker stores ahead for fh (RELEASE, before the snapshot
 *  handle closes); no more storing starts for it. */
void mnt_ahead_close(struct mnt *m, struct mnt_fh *fh);

/* mountinfo.c */
/** Find the topmost FUSE mount at path in /proc/self/mountinfo: 1 and its
 *  minor device number (the fusectl connection), or 0. */
int mnt_find_fuse_mount(const char *path, unsigned *minor_out);
/** Lazily detach path (umount2, or `fusermount3 -u -z` when not root);
 *  0 or an errno. */
int mnt_detach_path(const char *path);
/** Abort the connection through fusectl (mounting it if need be). */
void mnt_fusectl_abort(unsigned conn_minor);

#endif

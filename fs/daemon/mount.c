/*
 * mount.c - fuse_lowlevel_ops of jetsnapfs: a fixed inode table for the
 * root, control, status, events and live/, and one stable inode per live
 * file name.
 *
 *   ino 1 /          dr-xr-xr-x        ino 4 /events   r--r--r--
 *   ino 2 /control   --w-------        ino 5 /live/    as DBDIR, minus w
 *   ino 3 /status    r--r--r--         ino 16+i        live/<name i>, as the file, minus w
 *
 * Modes (SPEC 3): the root, status and events belong to the daemon's user
 * and are readable by everyone the mount admits; control is the daemon
 * owner's alone.  live/ and every file in it carry the owner, group and
 * permission bits of DBDIR and of that file, write bits removed
 * (follow_attr()), so `allow_other` shows the data only to whom DBDIR's own
 * modes would (with the default 0700/0600: nobody but the owner).  The
 * kernel enforces them: the mount always has default_permissions, and
 * attributes are never cached (timeouts 0), so a chmod of DBDIR counts at
 * the next access.  snapshots/ (SPEC 7, not served yet) takes its modes the
 * same way: from DBDIR for the directory, from the snapshot's source files
 * for its files, through follow_attr().
 *
 * Read-only is enforced per file (no `-o ro`, it would block control):
 * every change gets EROFS.  Every file uses direct_io, so reads are never
 * served from a stale page cache and `status`/`events` can report size 0.
 * live/jetsnap.edb is read through js_db_read() (under the engine's page
 * range lock: no torn page); other live files are pread() from DBDIR.
 * Large reads are served into a per-thread buffer handed to fuse_reply_buf.
 *
 * The control file acts on WRITE only (never FLUSH/RELEASE); `echo >`
 * opens with O_TRUNC (ATOMIC_O_TRUNC: no SETATTR), `truncate` sends SETATTR
 * size 0, a no-op.  A `wait` command keeps its fuse_req_t and is answered
 * from the job thread (control.c).  In 3.14 a pending direct-io write holds
 * the inode lock, so a second writer of control queues in the kernel behind
 * a `wait` command until that job ends.
 *
 * Locking: mnt.inst_lock (rwlock) guards mnt.inst; mnt.live_lock guards the
 * live name table.  Neither is held while the other is taken, and neither
 * is held across a reply.
 *
 * Every handler replies exactly once: each path ends in one fuse_reply_*.
 */
#define FUSE_USE_VERSION 312
#include "mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum {
    INO_ROOT = 1, INO_CONTROL = 2, INO_STATUS = 3, INO_EVENTS = 4, INO_LIVE = 5,
    INO_LIVE_BASE = 16
};

enum fh_kind { FH_TEXT, FH_LIVE_DB, FH_LIVE_FD, FH_CONTROL, FH_DIR };

/*
 * Partial pages of live/jetsnap.edb.  With direct_io the kernel splits a
 * read into requests of at most max_pages user pages, so a buffer that is
 * not page aligned (any malloc'd one) makes the requests end and start in
 * the middle of a database page: 1 MiB at offset 16 of a page becomes 1 MiB
 * - 16 bytes, then 16 bytes.  Each request is read under the page-range
 * lock, but at a different moment, so the page cut in two would come back
 * torn.  So a request that covers only part of a database page reads the
 * whole page once and keeps the image in its handle until every byte of it
 * has been served (or PARTIAL_KEEP newer images push it out): the other
 * part then comes from the same image.
 */
#define PARTIAL_KEEP 8

struct partial_page {
    uint64_t pgno;
    uint8_t *img;               /* NULL: slot free */
    size_t len;                 /* bytes of the page (short at end of file) */
    size_t served;              /* bytes handed out from img */
    uint64_t stamp;             /* age, for eviction */
};

struct mnt_fh {
    struct mnt_fh *prev, *next;     /* mnt.fhs, under mnt.fh_lock */
    enum fh_kind kind;
    int fd;                     /* FH_LIVE_FD */
    char *data;                 /* FH_TEXT, FH_DIR: the snapshot */
    size_t len;
    pthread_mutex_t partial_lock;   /* FH_LIVE_DB: guards partial, stamp */
    struct partial_page partial[PARTIAL_KEEP];
    uint64_t stamp;
};

struct mnt {
    struct fuse_session *se;
    pthread_t loop_thread;
    atomic_int loop_done;
    atomic_int open_handles;    /* opens and opendirs not yet released */
    int ended_fd;
    char *dbdir, *mountpoint;
    int db_fd;                  /* O_PATH fd of DBDIR */
    uid_t uid;
    gid_t gid;
    uint32_t page_size;         /* of jetsnap.edb */
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

    pthread_mutex_t live_lock;  /* guards live_names, live_n, live_cap */
    char **live_names;
    size_t live_n, live_cap;
};

#define M(req) ((struct mnt *)fuse_req_userdata(req))
#define FH(fi) ((struct mnt_fh *)(uintptr_t)(fi)->fh)

/* ------------------------------------------------------------------ */
/* Live names                                                           */
/* ------------------------------------------------------------------ */

static int live_name_ok(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 && strcmp(name, JS_LOCK_FILE) != 0;
}

/* Inode of a live name, added on first sight; 0 when out of memory. */
static fuse_ino_t live_ino(struct mnt *m, const char *name)
{
    fuse_ino_t ino = 0;
    size_t i;

    pthread_mutex_lock(&m->live_lock);
    for (i = 0; i < m->live_n; i++)
        if (strcmp(m->live_names[i], name) == 0) {
            ino = INO_LIVE_BASE + i;
            goto out_unlock;
        }
    if (m->live_n == m->live_cap) {
        size_t cap = m->live_cap ? m->live_cap * 2 : 64;
        char **n = realloc(m->live_names, cap * sizeof(*n));
        if (n == NULL)
            goto out_unlock;
        m->live_names = n;
        m->live_cap = cap;
    }
    if ((m->live_names[m->live_n] = strdup(name)) == NULL)
        goto out_unlock;
    ino = INO_LIVE_BASE + m->live_n++;
out_unlock:
    pthread_mutex_unlock(&m->live_lock);
    return ino;
}

/* Copy the name of a live inode; -1 when unknown. */
static int live_name(struct mnt *m, fuse_ino_t ino, char *out, size_t cap)
{
    int rc = -1;

    pthread_mutex_lock(&m->live_lock);
    if (ino >= INO_LIVE_BASE && ino - INO_LIVE_BASE < m->live_n) {
        snprintf(out, cap, "%s", m->live_names[ino - INO_LIVE_BASE]);
        rc = 0;
    }
    pthread_mutex_unlock(&m->live_lock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

/*
 * Owner, group and permission bits of a file of DBDIR as the mount shows
 * them: write bits and set-id/sticky bits removed, nothing added.  The one
 * place live/ (and snapshots/, later) gets its modes from.
 */
static void follow_attr(const struct stat *src, struct stat *st)
{
    st->st_uid = src->st_uid;
    st->st_gid = src->st_gid;
    st->st_mode = (src->st_mode & S_IFMT) | (src->st_mode & 0555);
}

static void fill_static(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
    time_t t = ino == INO_STATUS || ino == INO_EVENTS ? time(NULL) : m->mount_time;

    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    st->st_atime = st->st_mtime = st->st_ctime = t;
    st->st_blksize = 4096;
    switch (ino) {
    case INO_ROOT: st->st_mode = S_IFDIR | 0555; st->st_nlink = 3; break;
    case INO_LIVE: st->st_mode = S_IFDIR | 0500; st->st_nlink = 2; break;  /* live_dir_attr() */
    case INO_CONTROL: st->st_mode = S_IFREG | 0200; st->st_nlink = 1; break;
    default: st->st_mode = S_IFREG | 0444; st->st_nlink = 1; break;
    }
}

/* Attributes of live/ itself: those of DBDIR (follow_attr()); 0 or an
 * errno. */
static int live_dir_attr(struct mnt *m, struct stat *st)
{
    struct stat sb;

    fill_static(m, INO_LIVE, st);
    if (fstat(m->db_fd, &sb) != 0)
        return errno;
    follow_attr(&sb, st);
    return 0;
}

/* Attributes of a live file from DBDIR; 0 or an errno. */
static int live_stat(struct mnt *m, const char *name, fuse_ino_t ino, struct stat *st)
{
    struct stat sb;

    if (fstatat(m->db_fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return errno;
    if (!S_ISREG(sb.st_mode))
        return ENOENT;
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    follow_attr(&sb, st);
    st->st_nlink = 1;
    st->st_size = sb.st_size;
    st->st_blocks = sb.st_blocks;
    st->st_blksize = sb.st_blksize;
    st->st_atim = sb.st_atim;
    st->st_mtim = sb.st_mtim;
    st->st_ctim = sb.st_ctim;
    return 0;
}

static int getattr_any(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
    char name[NAME_MAX + 1];

    if (ino == INO_LIVE)
        return live_dir_attr(m, st);
    if (ino >= INO_ROOT && ino < INO_LIVE) {
        fill_static(m, ino, st);
        return 0;
    }
    if (live_name(m, ino, name, sizeof(name)) != 0)
        return ENOENT;
    return live_stat(m, name, ino, st);
}

/* ------------------------------------------------------------------ */
/* Handlers                                                             */
/* ------------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_background = 64;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct mnt *m = M(req);
    struct fuse_entry_param e;
    fuse_ino_t ino = 0;
    int rc;

    memset(&e, 0, sizeof(e));
    if (parent == INO_ROOT) {
        if (strcmp(name, "control") == 0) ino = INO_CONTROL;
        else if (strcmp(name, "status") == 0) ino = INO_STATUS;
        else if (strcmp(name, "events") == 0) ino = INO_EVENTS;
        else if (strcmp(name, "live") == 0) ino = INO_LIVE;
        if (ino == 0)
            return (void)fuse_reply_err(req, ENOENT);
        if ((rc = getattr_any(m, ino, &e.attr)) != 0)
            return (void)fuse_reply_err(req, rc);
        e.ino = ino;
        e.entry_timeout = 3600;     /* the root's names never change */
        e.attr_timeout = 0;
        return (void)fuse_reply_entry(req, &e);
    }
    if (parent != INO_LIVE)
        return (void)fuse_reply_err(req, parent >= INO_LIVE_BASE || parent == INO_CONTROL ||
                                             parent == INO_STATUS || parent == INO_EVENTS
                                         ? ENOTDIR : ENOENT);
    if (!live_name_ok(name))
        return (void)fuse_reply_err(req, ENOENT);
    /* Stat before numbering: a lookup of a name that does not exist must
     * not grow the table. */
    if ((rc = live_stat(m, name, 0, &e.attr)) != 0)
        return (void)fuse_reply_err(req, rc);
    if ((ino = live_ino(m, name)) == 0)
        return (void)fuse_reply_err(req, ENOMEM);
    e.attr.st_ino = ino;
    e.ino = ino;
    return (void)fuse_reply_entry(req, &e);  /* timeouts 0: sizes change */
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    (void)ino;
    (void)nlookup;
    /* Inode numbers are stable for the life of the mount: nothing to free. */
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    int rc;

    (void)fi;
    if ((rc = getattr_any(M(req), ino, &st)) != 0)
        return (void)fuse_reply_err(req, rc);
    fuse_reply_attr(req, &st, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct stat st;
    const int times = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                      FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;

    (void)fi;
    if (ino != INO_CONTROL)
        return (void)fuse_reply_err(req, EROFS);
    /* `: > control` or truncate(2): size 0 (with time bits) is accepted and
     * does nothing, so the open that precedes a command succeeds. */
    if (fuse_req_ctx(req)->uid != m->uid)
        return (void)fuse_reply_err(req, EACCES);
    if (!(to_set & FUSE_SET_ATTR_SIZE) || attr->st_size != 0 ||
        (to_set & ~(FUSE_SET_ATTR_SIZE | times)) != 0)
        return (void)fuse_reply_err(req, EPERM);
    fill_static(m, INO_CONTROL, &st);
    fuse_reply_attr(req, &st, 0);
}

static void op_refuse_entry(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent;
    (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    op_refuse_entry(req, parent, name);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    op_refuse_entry(req, parent, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    op_refuse_entry(req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    (void)newparent;
    (void)newname;
    (void)flags;
    op_refuse_entry(req, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    op_refuse_entry(req, newparent, newname);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode;
    (void)fi;
    op_refuse_entry(req, parent, name);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino;
    (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    (void)ino;
    (void)mode;
    (void)offset;
    (void)length;
    (void)fi;
    fuse_reply_err(req, EROFS);
}

static struct mnt_fh *fh_new(struct mnt *m, enum fh_kind kind)
{
    struct mnt_fh *fh = calloc(1, sizeof(*fh));
    if (fh != NULL) {
        fh->kind = kind;
        fh->fd = -1;
        pthread_mutex_init(&fh->partial_lock, NULL);
        atomic_fetch_add(&m->open_handles, 1);
        pthread_mutex_lock(&m->fh_lock);
        fh->next = m->fhs;
        if (m->fhs != NULL)
            m->fhs->prev = fh;
        m->fhs = fh;
        pthread_mutex_unlock(&m->fh_lock);
    }
    return fh;
}

static void fh_free(struct mnt *m, struct mnt_fh *fh)
{
    if (fh == NULL)
        return;
    pthread_mutex_lock(&m->fh_lock);
    if (fh->prev != NULL)
        fh->prev->next = fh->next;
    else
        m->fhs = fh->next;
    if (fh->next != NULL)
        fh->next->prev = fh->prev;
    pthread_mutex_unlock(&m->fh_lock);
    if (fh->fd >= 0)
        close(fh->fd);
    for (int i = 0; i < PARTIAL_KEEP; i++)
        free(fh->partial[i].img);
    pthread_mutex_destroy(&fh->partial_lock);
    free(fh->data);
    free(fh);
    atomic_fetch_sub(&m->open_handles, 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct mnt_fh *fh = NULL;
    int acc = fi->flags & O_ACCMODE, rc = 0;
    char name[NAME_MAX + 1];

    if (ino == INO_ROOT || ino == INO_LIVE)
        return (void)fuse_reply_err(req, EISDIR);
    if (ino == INO_CONTROL) {
        /* Root bypasses the 0200 mode (CAP_DAC_OVERRIDE): check the uid. */
        if (fuse_req_ctx(req)->uid != m->uid || acc != O_WRONLY)
            return (void)fuse_reply_err(req, EACCES);
        if ((fh = fh_new(m, FH_CONTROL)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        fi->nonseekable = 1;
        goto out_open;
    }
    if (acc != O_RDONLY || (fi->flags & O_TRUNC))
        return (void)fuse_reply_err(req, EROFS);
    if (ino == INO_STATUS || ino == INO_EVENTS) {
        if ((fh = fh_new(m, FH_TEXT)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        if (ino == INO_STATUS) {
            fh->data = malloc(ST_RENDER_MAX);
            if (fh->data != NULL)
                fh->len = st_render(m->st, fh->data, ST_RENDER_MAX);
        } else {
            fh->data = ev_render(m->ev, &fh->len);
        }
        if (fh->data == NULL) {
            rc = ENOMEM;
            goto out_fail;
        }
        goto out_open;
    }
    if (live_name(m, ino, name, sizeof(name)) != 0)
        return (void)fuse_reply_err(req, ENOENT);
    if (strcmp(name, JS_DB_FILE) == 0) {
        if ((fh = fh_new(m, FH_LIVE_DB)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        goto out_open;
    }
    if ((fh = fh_new(m, FH_LIVE_FD)) == NULL)
        return (void)fuse_reply_err(req, ENOMEM);
    fh->fd = openat(m->db_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fh->fd < 0) {
        rc = errno;
        goto out_fail;
    }
out_open:
    fi->fh = (uintptr_t)fh;
    fi->direct_io = 1;
    if (fuse_reply_open(req, fi) != 0)
        fh_free(m, fh);     /* the opener is gone: no RELEASE will come */
    return;
out_fail:
    fh_free(m, fh);
    fuse_reply_err(req, rc);
}

/* Per-thread read buffer, grown to the largest request (1 MiB with 3.14
 * defaults): no malloc/munmap per read. */
static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;
struct rbuf { size_t cap; char data[]; };

static void rbuf_key_init(void)
{
    pthread_key_create(&rbuf_key, free);
}

static char *rbuf_get(size_t size)
{
    struct rbuf *b;

    pthread_once(&rbuf_once, rbuf_key_init);
    b = pthread_getspecific(rbuf_key);
    if (b == NULL || b->cap < size) {
        free(b);
        b = malloc(sizeof(*b) + size);
        pthread_setspecific(rbuf_key, b);
        if (b == NULL)
            return NULL;
        b->cap = size;
    }
    return b->data;
}

/* Reply with a copy of a handle's snapshot.  The reader may close the file
 * (and a RELEASE on another worker free the snapshot) as soon as the kernel
 * has taken the reply, which happens inside writev(); ASan checks the iovec
 * after writev() returns and would report that as a use after free.  The
 * per-thread buffer outlives the call. */
static int reply_copy(fuse_req_t req, const char *data, size_t size)
{
    char *buf = rbuf_get(size);

    if (buf == NULL)
        return fuse_reply_err(req, ENOMEM);
    memcpy(buf, data, size);
    return fuse_reply_buf(req, buf, size);
}

/* Copy bytes [from, from+n) of database page pgno into dst from the
 * handle's image of that page, reading the whole page first if there is
 * none.  *got receives the bytes copied (short at end of file).  Called
 * with inst_lock held for reading and inst non-NULL; 0 or an errno. */
static int partial_copy(struct mnt *m, struct mnt_fh *fh, uint64_t pgno, size_t from, size_t n,
                        char *dst, size_t *got)
{
    struct partial_page *pp = NULL, *victim = NULL;
    int rc = 0, i;

    *got = 0;
    pthread_mutex_lock(&fh->partial_lock);
    for (i = 0; i < PARTIAL_KEEP && pp == NULL; i++)
        if (fh->partial[i].img != NULL && fh->partial[i].pgno == pgno)
            pp = &fh->partial[i];
    if (pp == NULL) {
        for (i = 0; i < PARTIAL_KEEP; i++)
            if (victim == NULL || fh->partial[i].img == NULL ||
                (victim->img != NULL && fh->partial[i].stamp < victim->stamp))
                victim = &fh->partial[i];
        if (victim->img == NULL && (victim->img = malloc(m->page_size)) == NULL) {
            rc = ENOMEM;
            goto out_unlock;
        }
        {
            JET_ERR err = js_db_read(m->inst, pgno * m->page_size, victim->img, m->page_size,
                                     &victim->len);
            if (err != JET_errSuccess) {
                free(victim->img);
                victim->img = NULL;
                rc = js_err_to_errno(err);
                goto out_unlock;
            }
        }
        victim->pgno = pgno;
        victim->served = 0;
        pp = victim;
    }
    pp->stamp = ++fh->stamp;
    if (from < pp->len) {
        *got = n < pp->len - from ? n : pp->len - from;
        memcpy(dst, pp->img + from, *got);
    }
    pp->served += *got;
    /* Both parts handed out (or nothing more to give): forget the image so
     * a later read sees the page as it is then. */
    if (pp->served >= pp->len || *got < n) {
        free(pp->img);
        pp->img = NULL;
    }
out_unlock:
    pthread_mutex_unlock(&fh->partial_lock);
    return rc;
}

/* Read [off, off+size) of jetsnap.edb into buf: whole pages straight
 * through js_db_read, a page cut by the request's start or end through
 * partial_copy().  inst_lock held for reading, inst non-NULL. */
static int read_live_db(struct mnt *m, struct mnt_fh *fh, uint64_t off, size_t size, char *buf,
                        size_t *got)
{
    const uint64_t ps = m->page_size;
    size_t done = 0, n;
    int rc;

    *got = 0;
    while (done < size) {
        uint64_t pos = off + done, pgno = pos / ps;
        size_t in = (size_t)(pos % ps);
        if (in != 0 || size - done < ps) {
            size_t want = size - done < ps - in ? size - done : (size_t)(ps - in);
            if ((rc = partial_copy(m, fh, pgno, in, want, buf + done, &n)) != 0)
                return rc;
            done += n;
            if (n < want)
                break;      /* end of file */
            continue;
        }
        /* The run of whole pages up to the last whole one. */
        n = (size_t)(((size - done) / ps) * ps);
        {
            JET_ERR err = js_db_read(m->inst, pos, buf + done, n, &n);
            if (err != JET_errSuccess)
                return js_err_to_errno(err);
        }
        done += n;
        if (n == 0 || n % ps != 0)
            break;          /* end of file */
    }
    *got = done;
    return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct mnt_fh *fh = FH(fi);
    size_t got = 0;
    char *buf;

    (void)ino;
    if (off < 0)
        return (void)fuse_reply_err(req, EINVAL);
    switch (fh->kind) {
    case FH_TEXT:
        if ((size_t)off >= fh->len)
            return (void)fuse_reply_buf(req, NULL, 0);
        if (size > fh->len - (size_t)off)
            size = fh->len - (size_t)off;
        return (void)reply_copy(req, fh->data + off, size);
    case FH_LIVE_DB: {
        int rc = EIO;   /* the daemon is stopping: the engine is off limits */
        if ((buf = rbuf_get(size)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        pthread_rwlock_rdlock(&m->inst_lock);
        if (m->inst != NULL)
            rc = read_live_db(m, fh, (uint64_t)off, size, buf, &got);
        pthread_rwlock_unlock(&m->inst_lock);
        if (rc != 0)
            return (void)fuse_reply_err(req, rc);
        return (void)fuse_reply_buf(req, buf, got);
    }
    case FH_LIVE_FD:
        if ((buf = rbuf_get(size)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        while (got < size) {
            ssize_t n = pread(fh->fd, buf + got, size - got, off + (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return (void)fuse_reply_err(req, errno);
            if (n == 0)
                break;
            got += (size_t)n;
        }
        return (void)fuse_reply_buf(req, buf, got);
    default:
        return (void)fuse_reply_err(req, EBADF);
    }
}

struct write_answer {
    fuse_req_t req;
    size_t size;
};

/* ctl_done_fn: answers the WRITE of a control command, from the worker or
 * later from the job thread. */
static void answer_write(void *ctx, int err)
{
    struct write_answer *a = ctx;
    if (err != 0)
        fuse_reply_err(a->req, err);
    else
        fuse_reply_write(a->req, a->size);
    free(a);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct write_answer *a;

    (void)off;
    (void)fi;
    if (ino != INO_CONTROL)
        return (void)fuse_reply_err(req, EROFS);
    if ((a = malloc(sizeof(*a))) == NULL)
        return (void)fuse_reply_err(req, ENOMEM);
    a->req = req;
    a->size = size;
    ctl_submit(m->ctl, buf, size, fuse_req_ctx(req)->uid, answer_write, a);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);     /* never act on FLUSH: it precedes the data */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fh_free(M(req), FH(fi));
    fuse_reply_err(req, 0);
}

/* Directory listing snapshot built at opendir, sliced by offset. */
static int dir_add(fuse_req_t req, struct mnt_fh *fh, size_t *cap, const char *name,
                   fuse_ino_t ino, mode_t mode)
{
    struct stat st;
    size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

    if (fh->len + need > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 4096) + need;
        char *n = realloc(fh->data, ncap);
        if (n == NULL)
            return -1;
        fh->data = n;
        *cap = ncap;
    }
    memset(&st, 0, sizeof(st));
    st.st_ino = ino;
    st.st_mode = mode;
    fuse_add_direntry(req, fh->data + fh->len, *cap - fh->len, name, &st, (off_t)(fh->len + need));
    fh->len += need;
    return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct mnt_fh *fh;
    size_t cap = 0;
    int rc = ENOMEM, dfd;
    DIR *d;
    struct dirent *de;

    if (ino != INO_ROOT && ino != INO_LIVE)
        return (void)fuse_reply_err(req, ENOTDIR);
    if ((fh = fh_new(m, FH_DIR)) == NULL)
        return (void)fuse_reply_err(req, ENOMEM);
    if (dir_add(req, fh, &cap, ".", ino, S_IFDIR) != 0 ||
        dir_add(req, fh, &cap, "..", INO_ROOT, S_IFDIR) != 0)
        goto out_fail;
    if (ino == INO_ROOT) {
        if (dir_add(req, fh, &cap, "control", INO_CONTROL, S_IFREG) != 0 ||
            dir_add(req, fh, &cap, "status", INO_STATUS, S_IFREG) != 0 ||
            dir_add(req, fh, &cap, "events", INO_EVENTS, S_IFREG) != 0 ||
            dir_add(req, fh, &cap, "live", INO_LIVE, S_IFDIR) != 0)
            goto out_fail;
        goto out_open;
    }
    if ((dfd = openat(m->db_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (d = fdopendir(dfd)) == NULL) {
        rc = errno;
        if (dfd >= 0)
            close(dfd);
        goto out_fail;
    }
    rc = 0;
    while ((de = readdir(d)) != NULL && rc == 0) {
        fuse_ino_t lino;
        if (de->d_type != DT_REG || !live_name_ok(de->d_name))
            continue;
        if ((lino = live_ino(m, de->d_name)) == 0 ||
            dir_add(req, fh, &cap, de->d_name, lino, S_IFREG) != 0)
            rc = ENOMEM;
    }
    closedir(d);
    if (rc != 0)
        goto out_fail;
out_open:
    fi->fh = (uintptr_t)fh;
    if (fuse_reply_open(req, fi) != 0)
        fh_free(m, fh);
    return;
out_fail:
    fh_free(m, fh);
    fuse_reply_err(req, rc);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct mnt_fh *fh = FH(fi);

    (void)ino;
    if (off < 0 || (size_t)off >= fh->len)
        return (void)fuse_reply_buf(req, NULL, 0);
    /* Entries are whole: cut at the last entry that fits. */
    {
        size_t end = (size_t)off, next;
        while (end < fh->len) {
            const struct { uint64_t ino, off; uint32_t namelen, type; } *d =
                (const void *)(fh->data + end);
            next = (size_t)d->off;
            if (next - (size_t)off > size)
                break;
            end = next;
        }
        reply_copy(req, fh->data + off, end - (size_t)off);
    }
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fh_free(M(req), FH(fi));
    fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_refuse_entry,
    .rmdir = op_refuse_entry,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .create = op_create,
    .fallocate = op_fallocate,
};

/* ------------------------------------------------------------------ */
/* Mount table                                                          */
/* ------------------------------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for space, ...) in place. */
static void unescape_octal(char *s)
{
    char *r = s, *w = s;
    while (*r != '\0') {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* Find the last (topmost) FUSE mount at path in /proc/self/mountinfo.
 * Returns 1 and its minor device number (the fusectl connection number),
 * 0 when there is none. */
static int find_fuse_mount(const char *path, unsigned *minor_out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;

    if (f == NULL)
        return 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned maj, min;
        char mp[PATH_MAX + 1], *sep, fstype[64];
        if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &maj, &min, mp) != 3)
            continue;
        sep = strstr(line, " - ");
        if (sep == NULL || sscanf(sep + 3, "%63s", fstype) != 1)
            continue;
        unescape_octal(mp);
        if (strcmp(mp, path) == 0 && strncmp(fstype, "fuse", 4) == 0) {
            found = 1;
            *minor_out = min;
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* stat() the mountpoint in a child, so a wedged daemon cannot hang us:
 * 0 it answers, ENOTCONN/other errno it failed, ETIMEDOUT no answer. */
static int probe_mount(const char *path)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    pid_t pid = fork();
    int status, i;

    if (pid < 0)
        return errno;
    if (pid == 0) {
        struct stat sb;
        _exit(stat(path, &sb) == 0 ? 0 : (errno & 0xff));
    }
    for (i = 0; i < 100; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return ETIMEDOUT;
}

static int detach(const char *path)
{
    pid_t pid;
    int status;

    if (umount2(path, MNT_DETACH) == 0)
        return 0;
    if (errno != EPERM)
        return errno;
    /* Not root: the setuid helper may detach a mount we own. */
    pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "-z", "-q", "--", path, (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return EPERM;
    return 0;
}

int mnt_clear_stale(const char *mountpoint)
{
    unsigned minor;
    struct stat sb;
    int rc;

    if (find_fuse_mount(mountpoint, &minor)) {
        rc = probe_mount(mountpoint);
        if (rc == 0)
            return EBUSY;
        return detach(mountpoint);
    }
    /* Not listed (another mount namespace view, or a path spelled
     * differently) but dead all the same. */
    if (stat(mountpoint, &sb) != 0 && errno == ENOTCONN)
        return detach(mountpoint);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Session lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* libfuse's levels are syslog's (FUSE_LOG_EMERG 0 .. FUSE_LOG_DEBUG 7). */
static void fuse_log_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
    vsyslog((int)level, fmt, ap);
}

void mnt_log_to_syslog(void)
{
    fuse_set_log_func(fuse_log_syslog);
}

static void sigusr1_noop(int sig)
{
    (void)sig;
}

void mnt_install_sigusr1(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sigusr1_noop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;            /* no SA_RESTART: sem_wait must see EINTR */
    sigaction(SIGUSR1, &sa, NULL);
}

static void *loop_main(void *arg)
{
    struct mnt *m = arg;
    struct fuse_loop_config *cfg;
    sigset_t set;
    uint64_t one = 1;

    /* Only this thread takes SIGUSR1: mnt_stop() uses it to interrupt the
     * loop's sem_wait once fuse_session_exit() has been called. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    cfg = fuse_loop_cfg_create();
    if (cfg != NULL) {
        fuse_loop_cfg_set_max_threads(cfg, 16);
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_session_loop_mt(m->se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    atomic_store(&m->loop_done, 1);
    if (m->ended_fd >= 0 && write(m->ended_fd, &one, sizeof(one)) < 0) {
        /* Nothing to do: main also polls mnt_loop_ended(). */
    }
    return NULL;
}

/* Append s to buf with ',' and '\' escaped for fuse_opt. */
static void opt_escape(char *buf, size_t cap, const char *s)
{
    size_t n = strlen(buf);
    for (; *s != '\0' && n + 2 < cap; s++) {
        if (*s == ',' || *s == '\\')
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    buf[n] = '\0';
}

int mnt_start(const struct mnt_config *cfg, js_instance *inst, struct ctl *ctl,
              struct st_status *st, struct ev_log *ev, struct mnt **out,
              char *err, size_t errcap)
{
    struct mnt *m = calloc(1, sizeof(*m));
    char opts[PATH_MAX + 256];
    char *argv[4];
    int argc = 0, rc = ENOMEM;
    struct fuse_args args;

    if (m == NULL)
        return snprintf(err, errcap, "out of memory"), ENOMEM;
    m->db_fd = -1;
    m->ended_fd = cfg->ended_fd;
    m->uid = cfg->uid;
    m->gid = cfg->gid;
    m->page_size = cfg->page_size;
    m->inst = inst;
    m->ctl = ctl;
    m->st = st;
    m->ev = ev;
    m->mount_time = time(NULL);
    pthread_rwlock_init(&m->inst_lock, NULL);
    pthread_mutex_init(&m->live_lock, NULL);
    pthread_mutex_init(&m->fh_lock, NULL);
    m->dbdir = strdup(cfg->dbdir);
    m->mountpoint = strdup(cfg->mountpoint);
    if (m->dbdir == NULL || m->mountpoint == NULL) {
        snprintf(err, errcap, "out of memory");
        goto out_free;
    }
    m->db_fd = open(cfg->dbdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (m->db_fd < 0) {
        rc = errno;
        snprintf(err, errcap, "%s: %s", cfg->dbdir, strerror(rc));
        goto out_free;
    }

    snprintf(opts, sizeof(opts), "default_permissions,subtype=jetsnapfs,fsname=jetsnap:");
    opt_escape(opts, sizeof(opts), cfg->dbdir);
    if (cfg->allow_other)
        strcat(opts, ",allow_other");
    if (cfg->auto_unmount)
        strcat(opts, ",auto_unmount");
    argv[argc++] = "jetsnapfs";
    argv[argc++] = "-o";
    argv[argc++] = opts;
    if (cfg->debug)
        argv[argc++] = "-d";
    args.argc = argc;
    args.argv = argv;
    args.allocated = 0;
    m->se = fuse_session_new(&args, &ops, sizeof(ops), m);
    fuse_opt_free_args(&args);
    if (m->se == NULL) {
        rc = EINVAL;
        snprintf(err, errcap, "cannot create the FUSE session");
        goto out_free;
    }
    if (fuse_session_mount(m->se, cfg->mountpoint) != 0) {
        rc = EIO;
        snprintf(err, errcap, "cannot mount %s (see the fuse message above or syslog)",
                 cfg->mountpoint);
        goto out_destroy;
    }
    find_fuse_mount(cfg->mountpoint, &m->conn_minor);
    rc = pthread_create(&m->loop_thread, NULL, loop_main, m);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the FUSE loop: %s", strerror(rc));
        goto out_unmount;
    }
    *out = m;
    return 0;

out_unmount:
    fuse_session_unmount(m->se);
out_destroy:
    fuse_session_destroy(m->se);
out_free:
    if (m->db_fd >= 0)
        close(m->db_fd);
    pthread_rwlock_destroy(&m->inst_lock);
    pthread_mutex_destroy(&m->live_lock);
    pthread_mutex_destroy(&m->fh_lock);
    free(m->dbdir);
    free(m->mountpoint);
    free(m);
    return rc;
}

void mnt_detach_instance(struct mnt *m)
{
    pthread_rwlock_wrlock(&m->inst_lock);
    m->inst = NULL;
    pthread_rwlock_unlock(&m->inst_lock);
}

int mnt_loop_ended(struct mnt *m)
{
    return atomic_load(&m->loop_done);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Last resort: abort the connection through fusectl (mounted or not). */
static void fusectl_abort(struct mnt *m)
{
    char path[96];
    int fd;

    if (m->conn_minor == 0)
        return;
    snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", m->conn_minor);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) == 0)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "1", 1) < 0) {
            /* The connection may already be gone: nothing more to do. */
        }
        close(fd);
    }
}

/* 1 when the kernel connection has ended (the device fd reports POLLERR). */
static int conn_gone(struct mnt *m)
{
    struct pollfd pfd = { fuse_session_fd(m->se), 0, 0 };
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

/*
 * The libfuse 3.14 trap: fuse_session_exit() only sets a flag; the MT
 * loop's control thread sleeps in sem_wait and its workers in
 * read(/dev/fuse), and neither wakes while a client holds a file open (the
 * connection stays up even after a lazy unmount).  So: detach first
 * (mnt_unmount(), which main calls before it releases the instance: new
 * opens fail, the connection ends by itself once the last handle goes),
 * give open handles a moment, then exit and interrupt the loop thread with
 * SIGUSR1 (no SA_RESTART) every 100 ms until it returns (one signal can be
 * lost between the flag check and the wait), fusectl abort as a last
 * resort, join, and only then unmount and destroy: fuse_session_unmount
 * closes the device fd and must never run under live workers.
 */
void mnt_unmount(struct mnt *m)
{
    if (m == NULL || m->unmounted)
        return;
    m->unmounted = 1;
    if (atomic_load(&m->loop_done) || conn_gone(m)) {
        /* The kernel ended the connection (fusermount3 -u): whatever is
         * mounted at MOUNTPOINT now is not ours. */
        m->detached = 1;
        return;
    }
    m->detached = detach(m->mountpoint) == 0;
    if (!m->detached)
        syslog(LOG_WARNING, "%s: cannot detach the mount now; it goes at exit", m->mountpoint);
}

void mnt_stop(struct mnt *m)
{
    int i;

    if (m == NULL)
        return;
    mnt_unmount(m);
    if (!atomic_load(&m->loop_done)) {
        for (i = 0; i < 50 && !atomic_load(&m->loop_done) &&
                    atomic_load(&m->open_handles) > 0; i++)
            sleep_ms(10);
        fuse_session_exit(m->se);
        for (i = 0; i < 15 && !atomic_load(&m->loop_done); i++) {
            pthread_kill(m->loop_thread, SIGUSR1);
            sleep_ms(100);
        }
        if (!atomic_load(&m->loop_done)) {
            fusectl_abort(m);
            for (i = 0; i < 10 && !atomic_load(&m->loop_done); i++) {
                pthread_kill(m->loop_thread, SIGUSR1);
                sleep_ms(100);
            }
        }
    }
    pthread_join(m->loop_thread, NULL);
    /* fuse_session_unmount() skips the umount when the connection is
     * already gone (POLLERR on the device fd).  After our own lazy unmount
     * the path may hold somebody else's mount, so end the connection first
     * (a client still holding a file would lose it at our exit anyway); if
     * that fails, leave the session's mountpoint string behind rather than
     * risk unmounting a stranger. */
    if (m->detached && !conn_gone(m))
        fusectl_abort(m);
    if (!m->detached || conn_gone(m))
        fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    while (m->fhs != NULL)      /* held open by clients to the end */
        fh_free(m, m->fhs);
    close(m->db_fd);
    pthread_rwlock_destroy(&m->inst_lock);
    pthread_mutex_destroy(&m->live_lock);
    pthread_mutex_destroy(&m->fh_lock);
    for (size_t k = 0; k < m->live_n; k++)
        free(m->live_names[k]);
    free(m->live_names);
    free(m->dbdir);
    free(m->mountpoint);
    free(m);
}

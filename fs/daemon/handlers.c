/*
 * handlers.c - fuse_lowlevel_ops of jetsnapfs (SPEC 3): one table, and
 * every handler replies exactly once (each path ends in one fuse_reply_*;
 * with -o snapshot_store_ahead, a READ of a snapshot's jetsnap.edb may go
 * on storing the image ahead of its reader after its reply, snap_ahead.c).
 * The inodes are inode.c's, the files of live/ live_view.c's.
 *
 * Read-only is enforced per file (no `-o ro`, it would block control):
 * every change gets EROFS.  Every file but a snapshot's uses direct_io, so
 * reads are never served from a stale page cache and `status`/`events` can
 * report size 0; a snapshot never changes, so its files are cached.
 * Large reads are served into a per-thread buffer handed to fuse_reply_buf;
 * a snapshot's jetsnap.edb is answered by snap_view.c, which splices the
 * pages still in the database file (fuse_reply_data).  Reads are at most
 * MNT_MAX_READ (512 KiB) so such a reply fits a pipe.
 *
 * The control file acts on WRITE only (never FLUSH/RELEASE); `echo >`
 * opens with O_TRUNC (ATOMIC_O_TRUNC: no SETATTR), `truncate` sends SETATTR
 * size 0, a no-op.  A `wait` command keeps its fuse_req_t and is answered
 * from the job thread (control.c).  In 3.14 a pending direct-io write holds
 * the inode lock, so a second writer of control queues in the kernel behind
 * a `wait` command until that job ends.
 */
#include "mount_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_background = 64;
    /* fuse_reply_data may splice (snapshot reads: snap_view.c), when the
     * reply fits a pipe of pipe-max-size (1 MiB by default): reads are at
     * most MNT_MAX_READ (the max_read mount option, mount.c). */
    conn->max_read = MNT_MAX_READ;
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
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
        else if (strcmp(name, "snapshots") == 0) ino = INO_SNAPS;
        if (ino == 0)
            return (void)fuse_reply_err(req, ENOENT);
        if ((rc = mnt_getattr(m, ino, &e.attr)) != 0)
            return (void)fuse_reply_err(req, rc);
        e.ino = ino;
        e.entry_timeout = 3600;     /* the root's names never change */
        e.attr_timeout = 0;
        return (void)fuse_reply_entry(req, &e);
    }
    if (parent == INO_SNAPS || parent >= INO_SNAP_BASE) {
        if ((rc = mnt_snap_lookup(m, parent, name, &e)) != 0)
            return (void)fuse_reply_err(req, rc);
        return (void)fuse_reply_entry(req, &e);
    }
    if (parent != INO_LIVE)
        return (void)fuse_reply_err(req, parent >= INO_LIVE_BASE || parent == INO_CONTROL ||
                                             parent == INO_STATUS || parent == INO_EVENTS
                                         ? ENOTDIR : ENOENT);
    if (!js_live_name_ok(name))
        return (void)fuse_reply_err(req, ENOENT);
    /* Stat before numbering: a lookup of a name that does not exist must
     * not grow the table. */
    if ((rc = mnt_live_stat(m, name, 0, &e.attr)) != 0)
        return (void)fuse_reply_err(req, rc);
    if ((ino = mnt_live_ino(m, name)) == 0)
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
    if ((rc = mnt_getattr(M(req), ino, &st)) != 0)
        return (void)fuse_reply_err(req, rc);
    fuse_reply_attr(req, &st, ino >= INO_SNAP_BASE ? 3600 : 0);   /* a snapshot never changes */
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
    mnt_fill_static(m, INO_CONTROL, &st);
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
    struct fuse_entry_param e;
    int rc;

    (void)mode;
    if (parent != INO_SNAPS)
        return op_refuse_entry(req, parent, name);
    if ((rc = mnt_snap_mkdir(M(req), fuse_req_ctx(req)->uid, name, &e)) != 0)
        return (void)fuse_reply_err(req, rc);
    fuse_reply_entry(req, &e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (parent != INO_SNAPS)
        return op_refuse_entry(req, parent, name);
    fuse_reply_err(req, mnt_snap_rmdir(M(req), fuse_req_ctx(req)->uid, name));
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

void mnt_fh_free(struct mnt *m, struct mnt_fh *fh)
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
    js_live_close(fh->lf);
    mnt_snap_close(m, fh);
    free(fh->data);
    free(fh);
    atomic_fetch_sub(&m->open_handles, 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct mnt_fh *fh = NULL;
    int acc = fi->flags & O_ACCMODE, rc = 0;

    if (ino == INO_ROOT || ino == INO_LIVE || ino == INO_SNAPS)
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
    if (ino >= INO_SNAP_BASE) {
        /* Immutable: the kernel may keep its cache (no direct_io). */
        if ((fh = fh_new(m, FH_SNAP_DB)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        if ((rc = mnt_snap_open(m, ino, fh)) != 0)
            goto out_fail;
        fi->fh = (uintptr_t)fh;
        fi->keep_cache = 1;
        if (fuse_reply_open(req, fi) != 0)
            mnt_fh_free(m, fh);
        return;
    }
    if ((fh = fh_new(m, FH_LIVE_FILE)) == NULL)
        return (void)fuse_reply_err(req, ENOMEM);
    if ((rc = mnt_live_open(m, ino, fh)) != 0)
        goto out_fail;
out_open:
    fi->fh = (uintptr_t)fh;
    fi->direct_io = 1;
    if (fuse_reply_open(req, fi) != 0)
        mnt_fh_free(m, fh);     /* the opener is gone: no RELEASE will come */
    return;
out_fail:
    mnt_fh_free(m, fh);
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

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct mnt *m = M(req);
    struct mnt_fh *fh = FH(fi);
    size_t got = 0;
    char *buf;

    if (off < 0)
        return (void)fuse_reply_err(req, EINVAL);
    switch (fh->kind) {
    case FH_TEXT:
        if ((size_t)off >= fh->len)
            return (void)fuse_reply_buf(req, NULL, 0);
        if (size > fh->len - (size_t)off)
            size = fh->len - (size_t)off;
        return (void)reply_copy(req, fh->data + off, size);
    case FH_LIVE_DB:
    case FH_LIVE_FILE: {
        int rc;
        if ((buf = rbuf_get(size)) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        if ((rc = mnt_live_read(m, fh, (uint64_t)off, size, buf, &got)) != 0)
            return (void)fuse_reply_err(req, rc);
        return (void)fuse_reply_buf(req, buf, got);
    }
    case FH_SNAP_DB: {
        int rc, push;
        /* Room for a READ and for storing ahead (MNT_MAX_READ), whichever follows. */
        if ((buf = rbuf_get((size > MNT_MAX_READ ? size : MNT_MAX_READ) + (64u << 10))) == NULL)
            return (void)fuse_reply_err(req, ENOMEM);
        push = mnt_ahead_note(m, fh, (uint64_t)off, size);
        if ((rc = mnt_snap_reply_read(m, fh, req, (uint64_t)off, size, buf)) != 0)
            fuse_reply_err(req, rc);
        if (push)
            mnt_ahead_push(m, fh, ino, buf);
        return;
    }
    default:
        return (void)fuse_reply_err(req, EBADF);
    }
}

struct write_answer {
    fuse_req_t req;
    size_t size;
    struct mnt *m;
    char gone[JS_SNAPSHOT_NAME_MAX + 1];   /* a snapshot-delete's NAME, else "" */
};

/* ctl_done_fn: answers the WRITE of a control command, from the worker or
 * later from the job thread.  A snapshot deleted through control leaves
 * its entry in the kernel's cache (rmdir would have removed it): have the
 * notifier drop it before the write returns, so the next stat of
 * snapshots/NAME is ENOENT.  snapshot-delete is answered on the worker,
 * which holds no lock of ours here. */
static void answer_write(void *ctx, int err)
{
    struct write_answer *a = ctx;
    if (err == 0 && a->gone[0] != '\0')
        mnt_notify_gone(a->m, a->gone);
    if (err != 0)
        fuse_reply_err(a->req, err);
    else
        fuse_reply_write(a->req, a->size);
    free(a);
}

/* NAME when buf is a valid snapshot-delete command, else "". */
static void deleted_name(const char *buf, size_t size, char *out, size_t cap)
{
    struct ctl_cmd *cmd = malloc(sizeof(*cmd));
    out[0] = '\0';
    if (cmd != NULL && ctl_parse(buf, size, cmd) == JET_errSuccess &&
        cmd->kind == CTL_SNAPSHOT_DELETE && strlen(cmd->path) < cap)
        snprintf(out, cap, "%s", cmd->path);
    free(cmd);
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
    a->m = m;
    deleted_name(buf, size, a->gone, sizeof(a->gone));
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
    mnt_fh_free(M(req), FH(fi));
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
    int rc = ENOMEM;

    uint32_t sid;
    int snapdir = ino == INO_SNAPS || mnt_snap_ino_kind(ino, &sid) == SNAP_DIR;
    if (ino != INO_ROOT && ino != INO_LIVE && !snapdir)
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
            dir_add(req, fh, &cap, "live", INO_LIVE, S_IFDIR) != 0 ||
            dir_add(req, fh, &cap, "snapshots", INO_SNAPS, S_IFDIR) != 0)
            goto out_fail;
        goto out_open;
    }
    if (snapdir) {
        if ((rc = mnt_snap_list(m, ino, req, fh, &cap, dir_add)) != 0)
            goto out_fail;
        /* A snapshot's own listing never changes; snapshots/ does. */
        if (ino != INO_SNAPS) {
            fi->cache_readdir = 1;
            fi->keep_cache = 1;
        }
        goto out_open;
    }
    rc = mnt_live_list(m, req, fh, &cap, dir_add);
    if (rc != 0)
        goto out_fail;
out_open:
    fi->fh = (uintptr_t)fh;
    if (fuse_reply_open(req, fi) != 0)
        mnt_fh_free(m, fh);
    return;
out_fail:
    mnt_fh_free(m, fh);
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
    mnt_fh_free(M(req), FH(fi));
    fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops mnt_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_refuse_entry,
    .rmdir = op_rmdir,
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

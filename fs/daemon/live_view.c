/*
 * live_view.c - live/: the files of DBDIR as the mount shows them, through
 * the core's live view (js_live_*), so the daemon never opens DBDIR's files
 * itself.  jetsnap.edb is read through the instance under the engine's
 * page-range lock, and the core keeps the page a direct_io request cut in
 * two until its other part is read (no torn page, SPEC 3); other files are
 * read as they are on disk.
 *
 * Modes (SPEC 3): live/ and every file in it carry the owner, group and
 * permission bits of DBDIR and of that file, write bits removed
 * (mnt_follow_attr()), so `allow_other` shows the data only to whom DBDIR's own
 * modes would (with the default 0700/0600: nobody but the owner).  The
 * kernel enforces them: the mount always has default_permissions, and
 * attributes are never cached (timeouts 0), so a chmod of DBDIR counts at
 * the next access.  snapshots/ (SPEC 7, snap_view.c) takes its modes the
 * same way: from DBDIR for a snapshot's directory, from jetsnap.edb for its
 * files, through mnt_follow_attr().
 *
 * Errors reach the reader as the errno of the core's code
 * (js_err_to_errno: JET_errFileNotFound is ENOENT, ...).
 */
#include "mount_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/*
 * Owner, group and permission bits of a file of DBDIR as the mount shows
 * them: write bits and set-id/sticky bits removed, nothing added.  The one
 * place live/ and snapshots/ get their modes from.
 */
void mnt_follow_attr(const struct stat *src, struct stat *st)
{
    st->st_uid = src->st_uid;
    st->st_gid = src->st_gid;
    st->st_mode = (src->st_mode & S_IFMT) | (src->st_mode & 0555);
}

int mnt_live_dir_attr(struct mnt *m, struct stat *st)
{
    struct stat sb;
    JET_ERR err;

    mnt_fill_static(m, INO_LIVE, st);
    if ((err = js_live_stat(m->live, NULL, &sb)) != JET_errSuccess)
        return js_err_to_errno(err);
    mnt_follow_attr(&sb, st);
    return 0;
}

int mnt_live_stat(struct mnt *m, const char *name, fuse_ino_t ino, struct stat *st)
{
    struct stat sb;
    JET_ERR err;

    if ((err = js_live_stat(m->live, name, &sb)) != JET_errSuccess)
        return js_err_to_errno(err);
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    mnt_follow_attr(&sb, st);
    st->st_nlink = 1;
    st->st_size = sb.st_size;
    st->st_blocks = sb.st_blocks;
    st->st_blksize = sb.st_blksize;
    st->st_atim = sb.st_atim;
    st->st_mtim = sb.st_mtim;
    st->st_ctim = sb.st_ctim;
    return 0;
}

struct list_ctx {
    struct mnt *m;
    fuse_req_t req;
    struct mnt_fh *fh;
    size_t *cap;
    int (*add)(fuse_req_t, struct mnt_fh *, size_t *, const char *, fuse_ino_t, mode_t);
    int rc;
};

static int list_one(void *ctx, const char *name)
{
    struct list_ctx *lc = ctx;
    fuse_ino_t ino = mnt_live_ino(lc->m, name);

    if (ino == 0 || lc->add(lc->req, lc->fh, lc->cap, name, ino, S_IFREG) != 0)
        lc->rc = ENOMEM;
    return lc->rc;
}

int mnt_live_list(struct mnt *m, fuse_req_t req, struct mnt_fh *fh, size_t *cap,
                  int (*add)(fuse_req_t, struct mnt_fh *, size_t *, const char *, fuse_ino_t,
                             mode_t))
{
    struct list_ctx lc = { m, req, fh, cap, add, 0 };
    JET_ERR err = js_live_list(m->live, list_one, &lc);

    if (err != JET_errSuccess)
        return js_err_to_errno(err);
    return lc.rc;
}

int mnt_live_open(struct mnt *m, fuse_ino_t ino, struct mnt_fh *fh)
{
    char name[NAME_MAX + 1];
    JET_ERR err;

    if (mnt_live_name(m, ino, name, sizeof(name)) != 0)
        return ENOENT;
    fh->kind = strcmp(name, JS_DB_FILE) == 0 ? FH_LIVE_DB : FH_LIVE_FILE;
    if ((err = js_live_open(m->live, name, &fh->lf)) != JET_errSuccess)
        return js_err_to_errno(err);
    return 0;
}

int mnt_live_read(struct mnt *m, struct mnt_fh *fh, uint64_t off, size_t size, char *buf,
                  size_t *got)
{
    JET_ERR err;
    int rc = EIO;   /* the daemon is stopping: the engine is off limits */

    if (fh->kind == FH_LIVE_FILE) {
        err = js_live_read(fh->lf, NULL, off, buf, size, got);
        return err != JET_errSuccess ? js_err_to_errno(err) : 0;
    }
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL) {
        err = js_live_read(fh->lf, m->inst, off, buf, size, got);
        rc = err != JET_errSuccess ? js_err_to_errno(err) : 0;
    }
    pthread_rwlock_unlock(&m->inst_lock);
    return rc;
}

/*
 * snap_view.c - snapshots/ (SPEC 7): one read-only directory per snapshot
 * of the core (jetsnap.h "Snapshots"), created by mkdir and removed by
 * rmdir, each holding jetsnap.edb (the image, clean-shutdown), snapshot.info
 * and SHA256SUMS.
 *
 * A snapshot never changes, so everything the kernel may cache is fixed for
 * its life: inode numbers come from the snapshot's id, which the store
 * never reuses (so they survive daemon restarts too), sizes are known at
 * creation (SHA256SUMS has a fixed length), mtimes are the creation time.
 * Files open with keep_cache and attributes are cached for an hour
 * (notes/fuse.md item 7); reads of jetsnap.edb then run from the page
 * cache, and with -o snapshot_store_ahead a reader in order finds the
 * image stored there ahead of it (snap_ahead.c).  The entry of NAME in
 * snapshots/ is cached as long: rmdir drops it in the kernel, and a
 * `snapshot-delete` through the control file has the notifier thread
 * invalidate it before the write returns (mnt_notify_gone, mount.c).
 *
 * SHA256SUMS is computed at its first open (never on mkdir's path) and kept
 * with the snapshot in the store (js_snapshot_note_set), so it is computed
 * once for the snapshot's life.
 *
 * Modes: snapshots/ is the daemon owner's alone (0700); a snapshot's
 * directory follows DBDIR and its files follow DBDIR's jetsnap.edb, write
 * bits removed, like live/ (follow_attr, live_view.c).  mkdir and rmdir
 * check the caller's uid themselves: root bypasses modes.
 */
#include "mount_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUMS_LEN 158u   /* 2 x (64 hex, 2 spaces, name, newline) */
#define SNAP_TTL 3600.0

static int errno_of(JET_ERR err)
{
    return js_err_to_errno(err);
}

/* The snapshot whose id is id, from the core's list. */
static int find_id(struct mnt *m, uint32_t id, js_snapshot_info *out)
{
    js_snapshot_info *all = NULL;
    size_t n = 0;
    int rc = ENOENT;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL && js_snapshot_list(m->inst, &all, &n) == JET_errSuccess)
        for (size_t i = 0; i < n; i++)
            if (all[i].id == id) {
                *out = all[i];
                rc = 0;
                break;
            }
    pthread_rwlock_unlock(&m->inst_lock);
    free(all);
    return rc;
}

static void rfc3339(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* snapshot.info: only what never changes. */
static size_t render_info(const js_snapshot_info *si, char *buf, size_t cap)
{
    char created[40], last[40];
    rfc3339(si->created, created, sizeof created);
    if (si->last_commit_time)
        rfc3339(si->last_commit_time, last, sizeof last);
    else
        snprintf(last, sizeof last, "none");
    int n = snprintf(buf, cap,
                     "name: %s\ncreated: %s\ndb_signature: %s\npage_size: %u\npages: %u\n"
                     "log_position: %llu\nlast_commit_time: %s\nversion: 1\n",
                     si->name, created, si->db_signature, si->page_size, si->pages,
                     (unsigned long long)si->log_position, last);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int mnt_snap_ino_kind(fuse_ino_t ino, uint32_t *id)
{
    if (ino < INO_SNAP_BASE)
        return -1;
    *id = (uint32_t)((ino - INO_SNAP_BASE) / 4);
    return (int)((ino - INO_SNAP_BASE) % 4);
}

static fuse_ino_t ino_of(uint32_t id, int kind)
{
    return INO_SNAP_BASE + (fuse_ino_t)id * 4 + (fuse_ino_t)kind;
}

static int attr_of(struct mnt *m, const js_snapshot_info *si, int kind, struct stat *st)
{
    struct stat src;
    JET_ERR err = js_live_stat(m->live, kind == SNAP_DIR ? NULL : JS_DB_FILE, &src);
    if (err != JET_errSuccess)
        return errno_of(err);
    memset(st, 0, sizeof(*st));
    st->st_ino = ino_of(si->id, kind);
    mnt_follow_attr(&src, st);
    st->st_blksize = 4096;
    st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)(si->created / 1000);
    st->st_atim.tv_nsec = st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = (long)(si->created % 1000) * 1000000;
    if (kind == SNAP_DIR) {
        st->st_nlink = 2;
        return 0;
    }
    st->st_nlink = 1;
    if (kind == SNAP_EDB) {
        st->st_size = (off_t)si->pages * si->page_size;
    } else if (kind == SNAP_INFO) {
        char buf[1024];
        st->st_size = (off_t)render_info(si, buf, sizeof buf);
    } else {
        st->st_size = SUMS_LEN;
    }
    st->st_blocks = (st->st_size + 511) / 512;
    return 0;
}

void mnt_snaps_dir_attr(struct mnt *m, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = INO_SNAPS;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    st->st_mode = S_IFDIR | 0700;
    st->st_nlink = 2;
    st->st_blksize = 4096;
    st->st_atime = st->st_mtime = st->st_ctime = m->mount_time;
}

int mnt_snap_getattr(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
    uint32_t id;
    int kind = mnt_snap_ino_kind(ino, &id);
    js_snapshot_info si;
    if (kind < 0 || find_id(m, id, &si) != 0)
        return ENOENT;
    return attr_of(m, &si, kind, st);
}

static const char *const file_names[4] = { NULL, JS_DB_FILE, "snapshot.info", "SHA256SUMS" };

int mnt_snap_lookup(struct mnt *m, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
    js_snapshot_info si;
    uint32_t id;
    int kind = SNAP_DIR, rc;
    memset(e, 0, sizeof(*e));
    if (parent == INO_SNAPS) {
        JET_ERR err = JET_errNotInitialized;
        if (!js_snapshot_name_ok(name))
            return ENOENT;
        pthread_rwlock_rdlock(&m->inst_lock);
        if (m->inst != NULL)
            err = js_snapshot_stat(m->inst, name, &si);
        pthread_rwlock_unlock(&m->inst_lock);
        if (err != JET_errSuccess)
            return ENOENT;
        e->entry_timeout = SNAP_TTL;
    } else {
        if (mnt_snap_ino_kind(parent, &id) != SNAP_DIR)
            return ENOTDIR;
        for (kind = SNAP_EDB; kind <= SNAP_SUMS; kind++)
            if (strcmp(name, file_names[kind]) == 0)
                break;
        if (kind > SNAP_SUMS || find_id(m, id, &si) != 0)
            return ENOENT;
        e->entry_timeout = SNAP_TTL;
    }
    if ((rc = attr_of(m, &si, kind, &e->attr)) != 0)
        return rc;
    e->ino = e->attr.st_ino;
    e->attr_timeout = SNAP_TTL;
    return 0;
}

int mnt_snap_list(struct mnt *m, fuse_ino_t ino, fuse_req_t req, struct mnt_fh *fh, size_t *cap,
                  int (*add)(fuse_req_t, struct mnt_fh *, size_t *, const char *, fuse_ino_t, mode_t))
{
    uint32_t id;
    js_snapshot_info si, *all = NULL;
    size_t n = 0;
    int rc = 0;
    if (ino != INO_SNAPS) {
        if (mnt_snap_ino_kind(ino, &id) != SNAP_DIR || find_id(m, id, &si) != 0)
            return ENOENT;
        for (int k = SNAP_EDB; k <= SNAP_SUMS && rc == 0; k++)
            rc = add(req, fh, cap, file_names[k], ino_of(id, k), S_IFREG) != 0 ? ENOMEM : 0;
        return rc;
    }
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL && js_snapshot_list(m->inst, &all, &n) != JET_errSuccess)
        rc = ENOMEM;
    pthread_rwlock_unlock(&m->inst_lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add(req, fh, cap, all[i].name, ino_of(all[i].id, SNAP_DIR), S_IFDIR) != 0 ? ENOMEM : 0;
    free(all);
    return rc;
}

void mnt_snap_drop_invalid(struct mnt *m)
{
    js_snapshot_info *all = NULL;
    size_t n = 0;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst == NULL || js_snapshot_list(m->inst, &all, &n) != JET_errSuccess)
        n = 0;
    pthread_rwlock_unlock(&m->inst_lock);
    for (size_t i = 0; i < n; i++)
        if (!all[i].valid)   /* ENOENT (nothing cached) is success */
            (void)fuse_lowlevel_notify_inval_inode(m->se, ino_of(all[i].id, SNAP_EDB), 0, 0);
    free(all);
}

int mnt_snap_mkdir(struct mnt *m, uid_t uid, const char *name, struct fuse_entry_param *e)
{
    JET_ERR err = JET_errNotInitialized;
    js_snapshot_info si;
    if (uid != m->uid)
        return EACCES;
    if (!js_snapshot_name_ok(name))
        return EINVAL;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL)
        err = js_snapshot_take(m->inst, name, &si);
    pthread_rwlock_unlock(&m->inst_lock);
    if (err != JET_errSuccess)
        return errno_of(err);
    memset(e, 0, sizeof(*e));
    int rc = attr_of(m, &si, SNAP_DIR, &e->attr);
    if (rc != 0)
        return rc;
    e->ino = e->attr.st_ino;
    e->entry_timeout = SNAP_TTL;
    e->attr_timeout = SNAP_TTL;
    return 0;
}

int mnt_snap_rmdir(struct mnt *m, uid_t uid, const char *name)
{
    JET_ERR err = JET_errNotInitialized;
    if (uid != m->uid)
        return EACCES;
    if (!js_snapshot_name_ok(name))
        return ENOENT;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL)
        err = js_snapshot_delete(m->inst, name);
    pthread_rwlock_unlock(&m->inst_lock);
    return err != JET_errSuccess ? errno_of(err) : 0;
}

/* SHA256SUMS: kept with the snapshot, else computed now and kept. */
static int sums_of(js_snapshot *s, const js_snapshot_info *si, char *out)
{
    uint32_t len = 0;
    if (js_snapshot_note_get(s, out, SUMS_LEN, &len) == JET_errSuccess && len == SUMS_LEN)
        return 0;
    const size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[2][32];
    unsigned dl = 0;
    int rc = 0;
    uint64_t size = (uint64_t)si->pages * si->page_size;
    if (buf == NULL || md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = ENOMEM;
        goto out;
    }
    for (uint64_t off = 0; off < size && rc == 0;) {
        size_t got = 0;
        JET_ERR err = js_snapshot_read(s, off, buf, chunk, &got);
        if (err != JET_errSuccess)
            rc = errno_of(err);
        else if (got == 0)
            rc = EIO;
        else
            EVP_DigestUpdate(md, buf, got);
        off += got;
    }
    if (rc != 0 || !EVP_DigestFinal_ex(md, d[0], &dl)) {
        rc = rc ? rc : EIO;
        goto out;
    }
    char info[1024];
    size_t il = render_info(si, info, sizeof info);
    EVP_Digest(info, il, d[1], &dl, EVP_sha256(), NULL);
    char *p = out;
    for (int f = 0; f < 2; f++) {
        for (int i = 0; i < 32; i++)
            p += sprintf(p, "%02x", d[f][i]);
        p += sprintf(p, "  %s\n", f == 0 ? JS_DB_FILE : "snapshot.info");
    }
    /* Not kept (no space in the store): computed again at the next open. */
    (void)js_snapshot_note_set(s, out, SUMS_LEN);
out:
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

/* A snapshot's jetsnap.edb is read like a plain file (tar, cp, rsync),
 * through the page cache (keep_cache).  A FUSE mount's kernel read-ahead
 * is 128 KiB, so a cold sequential read waits on one or two small
 * requests at a time (0.3-0.5x of a plain file); 4 MiB lets it stream.
 * Set at each open of the file, when the mount's INIT is long done (the
 * kernel lowers it to the INIT reply's max_readahead).  Only root may
 * (sysfs); otherwise reads work as before.  live/ uses direct_io and never
 * reads ahead. */
static void raise_readahead(const struct mnt *m)
{
    char path[64];
    if (m->conn_minor == 0)
        return;
    snprintf(path, sizeof(path), "/sys/class/bdi/0:%u/read_ahead_kb", m->conn_minor);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, "4096", 4) != 4) {
        /* Advice only: the default read-ahead stays. */
    }
    close(fd);
}

int mnt_snap_open(struct mnt *m, fuse_ino_t ino, struct mnt_fh *fh)
{
    uint32_t id;
    int kind = mnt_snap_ino_kind(ino, &id), rc = 0;
    js_snapshot_info si;
    if (kind <= SNAP_DIR || find_id(m, id, &si) != 0)
        return ENOENT;
    JET_ERR err = JET_errNotInitialized;
    pthread_rwlock_rdlock(&m->inst_lock);
    if (m->inst != NULL)
        err = js_snapshot_open(m->inst, si.name, &fh->snap, &si);
    if (err == JET_errSuccess && si.id != id) {   /* a new snapshot of the same name */
        js_snapshot_close(fh->snap);
        fh->snap = NULL;
        err = JET_errOSSnapshotInvalidSnapId;
    }
    pthread_rwlock_unlock(&m->inst_lock);
    if (err != JET_errSuccess)
        return errno_of(err);
    if (!si.valid)
        return EIO;
    fh->kind = kind == SNAP_EDB ? FH_SNAP_DB : FH_TEXT;
    if (kind == SNAP_EDB) {
        mnt_ahead_open(fh, (uint64_t)si.pages * si.page_size);
        raise_readahead(m);
        return 0;
    }
    if ((fh->data = malloc(1024)) == NULL)
        return ENOMEM;
    if (kind == SNAP_INFO) {
        fh->len = render_info(&si, fh->data, 1024);
    } else {
        pthread_rwlock_rdlock(&m->inst_lock);
        rc = m->inst != NULL ? sums_of(fh->snap, &si, fh->data) : EIO;
        pthread_rwlock_unlock(&m->inst_lock);
        fh->len = SUMS_LEN;
    }
    return rc;
}

/* A snapshot read's pieces (js_snapshot_read_pieces) as one FUSE reply,
 * sent from inside the engine's call while its pieces hold.  With splice
 * writes, libfuse splices the file ranges into a pipe and the pipe into
 * /dev/fuse: the kernel copies each byte once, into the page cache of the
 * mount, where pread+writev copied it twice.  libfuse falls back to a
 * read and a writev on its own when the pipe cannot grow to the reply
 * (pipe-max-size, 1 MiB, for a process without CAP_SYS_RESOURCE). */
struct reply_ctx {
    fuse_req_t req;
    struct fuse_bufvec *bv;
    int answered;
};

static JET_ERR emit_reply(void *arg, const js_piece *p, size_t n)
{
    struct reply_ctx *c = arg;
    c->answered = 1;
    if (n == 0) {
        (void)fuse_reply_buf(c->req, NULL, 0);
        return JET_errSuccess;
    }
    c->bv->count = n;
    c->bv->idx = 0;
    c->bv->off = 0;
    for (size_t i = 0; i < n; i++) {
        struct fuse_buf *b = &c->bv->buf[i];
        memset(b, 0, sizeof(*b));
        b->size = p[i].len;
        if (p[i].fd >= 0) {
            b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
            b->fd = p[i].fd;
            b->pos = (off_t)p[i].off;
        } else {
            b->mem = (void *)p[i].mem;
        }
    }
    /* The reader gone (interrupted) is no error of the snapshot's. */
    (void)fuse_reply_data(c->req, c->bv, 0);
    return JET_errSuccess;
}

int mnt_snap_reply_read(struct mnt *m, struct mnt_fh *fh, fuse_req_t req, uint64_t off, size_t size, char *scratch)
{
    size_t cap = size / 4096 + 3;   /* the smallest page size: pieces <= pages + 2 */
    struct reply_ctx c = { .req = req };
    js_piece *pc = malloc(cap * sizeof(*pc));
    c.bv = malloc(sizeof(*c.bv) + cap * sizeof(struct fuse_buf));
    int rc = ENOMEM;
    if (pc != NULL && c.bv != NULL) {
        rc = EIO;
        pthread_rwlock_rdlock(&m->inst_lock);
        if (m->inst != NULL) {
            JET_ERR err = js_snapshot_read_pieces(fh->snap, off, size, scratch, pc, cap, emit_reply, &c);
            rc = err != JET_errSuccess ? errno_of(err) : 0;
        }
        pthread_rwlock_unlock(&m->inst_lock);
    }
    free(pc);
    free(c.bv);
    return c.answered ? 0 : rc;
}

void mnt_snap_close(struct mnt *m, struct mnt_fh *fh)
{
    if (fh->snap == NULL)
        return;
    if (fh->kind == FH_SNAP_DB)
        mnt_ahead_close(m, fh);
    pthread_rwlock_rdlock(&m->inst_lock);
    /* Without the instance (stopping) the handle went with it. */
    if (m->inst != NULL)
        js_snapshot_close(fh->snap);
    pthread_rwlock_unlock(&m->inst_lock);
    fh->snap = NULL;
}

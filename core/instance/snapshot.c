/*
 * snapshot.c - taking, listing, reading and deleting snapshots (jetsnap.h,
 * "Snapshots"); the store that keeps them is core/store/snapstore.c.
 *
 * The instant.  Under the writer lock (so S falls between transactions)
 * take records S = the log position now and the meta page's high-water
 * mark H (the image's size), registers the snapshot with the store (from
 * then on the page write path saves old images for it) and lists the
 * pages dirty in the pool: committed before S but not in the file yet.
 * With a log, those are only marked pending (core/store/snaplazy.c): their
 * version at S is kept when they next change or are written, and after a
 * crash recovery's redo rebuilds it from the log, which take makes durable
 * up to S.  So take costs the same whatever the size of the database or
 * of the dirty set: a list of page numbers, a log flush and one fsync of
 * the store's index.  Without a log the dirty pages are copied under the
 * writer lock and written to the store before take returns.
 * The pages a checkpoint copied before S and has not written yet are
 * listed with them (pool_unwritten_list): the file holds an older version
 * until their write lands, which then carries an LSN before S and makes
 * the file serve them.  Every other page below H is, for this snapshot,
 * what the file holds.  Without a log there are no LSNs, so take also
 * holds ckpt_lock: no write is in flight.  With one, take never waits for
 * a checkpoint.
 *
 * The store is opened with the instance when DBDIR/snapshots exists, else
 * at the first take (under ckpt_lock, so no page write is in flight while
 * the write path's hook appears).
 */
#include "instance/instance.h"
#include "base/cachetrail.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_DEFAULT_MAX 64u

/* A handle reads jetsnap.edb once in order (tar, cp, the digest of
 * SHA256SUMS) and leaves its page cache as it found it (cachetrail.h):
 * through the mount the reader's pages are cached again in the mount's
 * own page cache, so keeping the database file's too doubled the memory a
 * read of a snapshot takes.  Measured (tar of a 1 GiB snapshot, cold, on
 * a 2-CPU VM whose host takes back the guest's free memory): the daemon's
 * CPU 0.25-2.4 s -> 0.21-0.74 s per read.  The difference was its copy
 * into the mount's page cache, landing on memory the host had taken back
 * (a fault in the host per page); pages dropped behind the reader are
 * reused at once instead.
 * Asked 64 MiB ahead, past the kernel's read-ahead of the handle's
 * descriptor (twice read_ahead_kb); nothing within 8 MiB behind the
 * furthest read is dropped, where the mount's read-ahead (4 MiB,
 * snap_view.c) has READs still in flight on other threads. */
#define SNAP_TRAIL_AHEAD (64u << 20)
#define SNAP_TRAIL_LAG (8u << 20)

/* Lock order: trail_lock is a leaf, taken with none of the store's locks
 * held (before and after ss_read, before ss_read_pieces). */
struct js_snapshot {
    js_instance *inst;
    uint32_t id;
    int fd;   /* jetsnap.edb for read_pieces' file ranges, -1: the store's */
    uint64_t size;         /* the image's bytes */
    js_mutex trail_lock;   /* guards trail_started and trail: reads may run on several threads */
    int trail_started;
    cache_trail trail;
};

/* A handle's own descriptor of jetsnap.edb, read sequentially: the kernel
 * reads ahead for it (twice the disk's read_ahead_kb, in large folios)
 * with a read-ahead state no other reader of the file disturbs, and
 * ss_read_pieces no longer asks for its pages (snapread.c: the measured
 * gain).  Advice only: -1 (no descriptor, or the path no longer names the
 * store's file) reads through the store's, as before. */
static int reader_fd(const db_store *st)
{
    struct stat a, b;
    int fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &a) != 0 || fstat(st->fd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        close(fd);
        return -1;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

int js_snapshot_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > JS_SNAPSHOT_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static void on_invalid(void *ctx, const char *name, JET_ERR err)
{
    inst_event((js_instance *)ctx, 2007, JS_EV_ERROR, "snapshot %s is invalid: the store could not keep a page: %s (%d)",
               name, js_errname(err), err);
}

JET_ERR snap_store_open(js_instance *inst, int create)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/snapshots", inst->dir);
    if (!create && stat(path, &st) < 0)
        return JET_errSuccess;
    struct snapstore *ss = NULL;
    JET_ERR err = ss_open(inst->dir, inst->store.page_size, inst->hdr.db_sig, on_invalid, inst, &ss);
    /* Pages a lazy take left pending are rebuilt by recovery; after a
     * clean shutdown none is left, and without a log none can be. */
    int clean = inst->hdr.state == JS_DB_CLEAN_SHUTDOWN;
    if (!err && (clean || !inst_logging(inst)))
        err = ss_settle(ss, clean);
    if (err)
        ss_close(ss);
    else
        inst->store.snap = ss;
    return err;
}

/* The store, opened on first use (under ckpt_lock: no page write in
 * flight while the write path's hook appears).  Once open, no lock: a
 * take never waits for a checkpoint to end. */
static JET_ERR store_get(js_instance *inst, struct snapstore **out)
{
    JET_ERR err = JET_errSuccess;
    if ((*out = atomic_load(&inst->store.snap)) != NULL)
        return JET_errSuccess;
    js_mutex_lock(&inst->ckpt_lock);
    if (!inst->store.snap)
        err = snap_store_open(inst, 1);
    *out = inst->store.snap;
    js_mutex_unlock(&inst->ckpt_lock);
    return err;
}

static JET_ERR check_ready(js_instance *inst)
{
    JET_ERR err = inst_check_usable(inst);
    if (err)
        return err;
    if (js_instance_state(inst) != JS_INST_READY)
        return js_fail(JET_errNotInitialized, "instance %s is still starting or recovering", inst->dir);
    return JET_errSuccess;
}

static void to_info(js_instance *inst, const ss_entry_info *e, js_snapshot_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", e->meta.name);
    out->created = e->meta.created;
    out->log_position = e->meta.log_position;
    out->last_commit_time = e->meta.last_commit_time;
    out->pages = e->meta.pages;
    out->page_size = inst->store.page_size;
    dbh_sig_hex(inst->hdr.db_sig, out->db_signature);
    dbh_sig_hex(e->meta.hdr.log_sig, out->log_signature);
    out->bytes_held = e->pages_saved * inst->store.page_size;
    out->valid = e->invalid == 0;
    out->invalid_err = e->invalid;
    out->open_files = e->opens;
    out->id = e->id;
}

/* Step 1, under the writer lock: the commit point, the registration, the
 * copies of the dirty pages. */
static JET_ERR take_instant(js_instance *inst, struct snapstore *ss, ss_meta *m, uint32_t *id)
{
    uint32_t ps = inst->store.page_size, max = inst->params.snapshot_max ? inst->params.snapshot_max : SNAP_DEFAULT_MAX;
    uint32_t *list = NULL;
    size_t n = 0;
    frame *f = NULL;
    uint8_t *pages = NULL;
    JS_ASSERT_HELD(&inst->eng.writer_lock);
    JET_ERR err = pool_get(&inst->store, PG_META_PGNO, 0, &f);
    if (err)
        return err;
    js_rdlock(&inst->eng.tree_latch);
    m->pages = pg_u32(f->data + META_NEXT);
    uint32_t snap_pages = m->pages;
    js_rwunlock(&inst->eng.tree_latch);
    pool_unpin(&inst->store.pool, f);
    m->log_position = inst_logging(inst) ? log_position_now(&inst->log) : 0;
    m->last_commit_time = inst->eng.last_commit_ms;
    err = ss_begin(ss, m, max, id);
    if (err)
        return err;
    if (inst_logging(inst)) {
        /* Lazy: marks only.  Also the pages a checkpoint copied before S
         * and has yet to write: until their write lands the file holds an
         * older version, so they are the pool's too (their frames, clean
         * and unchanged since the copy, are their version at S). */
        err = pool_unwritten_list(&inst->store.pool, &list, &n);
        if (!err)
            ss_capture(ss, *id, list, NULL, n);   /* owns list */
        else
            ss_abort(ss, *id);
        return err;
    }
    err = pool_dirty_list(&inst->store.pool, &list, &n);
    /* No log to replay them from: one buffer for every dirty page, a memcpy
     * per page, the only work writers wait for. */
    pages = n ? malloc(n * (size_t)ps) : NULL;
    if (!err && n && !pages)
        err = js_fail(JET_errOutOfMemory, "snapshot: copies of %zu dirty pages", n);
    size_t kept = 0;
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n && !err; i++) {
        if (list[i] < 2 || list[i] >= snap_pages)
            continue;
        f = pool_lookup(&inst->store.pool, list[i]);
        if (!f)
            continue;
        if (f->dirty) {
            memcpy(pages + kept * ps, f->data, ps);
            list[kept++] = list[i];
        }
        pool_unpin(&inst->store.pool, f);
    }
    js_rwunlock(&inst->eng.tree_latch);
    if (err) {
        free(list);
        free(pages);
        ss_abort(ss, *id);
        return err;
    }
    ss_capture(ss, *id, list, pages, kept);   /* owns list and pages now */
    return JET_errSuccess;
}

JET_ERR js_snapshot_take(js_instance *inst, const char *name, js_snapshot_info *out)
{
    struct snapstore *ss = NULL;
    ss_meta m;
    uint32_t id = 0;
    if (!js_snapshot_name_ok(name))
        return js_fail(JET_errInvalidParameter, "bad snapshot name: 1..64 of [A-Za-z0-9._-], not starting with '.'");
    JET_ERR err = check_ready(inst);
    if (!err)
        err = store_get(inst, &ss);
    if (err)
        return err;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    m.created = js_time_ms();
    /* Fields that never change after open: read without hdr_lock. */
    m.hdr.page_size = inst->store.page_size;
    m.hdr.flags = inst->hdr.flags;
    m.hdr.created = inst->hdr.created;
    m.hdr.log_file_size = inst->hdr.log_file_size;
    memcpy(m.hdr.db_sig, inst->hdr.db_sig, JS_SIG_LEN);
    dbh_new_signature(m.hdr.log_sig);   /* a copy's own log stream */

    int hold_ckpt = !inst_logging(inst);
    if (hold_ckpt)
        js_mutex_lock(&inst->ckpt_lock);
    js_mutex_lock(&inst->eng.writer_lock);
    err = take_instant(inst, ss, &m, &id);
    js_mutex_unlock(&inst->eng.writer_lock);
    if (hold_ckpt)
        js_mutex_unlock(&inst->ckpt_lock);
    if (err)
        return err;
    /* The snapshot's transactions are durable in the live database too,
     * and a lazy take's pending pages can be rebuilt from the log. */
    if (inst_logging(inst)) {
        err = log_flush(&inst->log, m.log_position);
        if (err) {
            ss_abort(ss, id);
            return err;
        }
    }
    err = ss_commit(ss, id);
    if (err)
        return err;
    inst_event(inst, 2001, JS_EV_INFO, "snapshot %s created: %u pages at log position %llu", name, m.pages,
               (unsigned long long)m.log_position);
    return out ? js_snapshot_stat(inst, name, out) : JET_errSuccess;
}

JET_ERR js_snapshot_list(js_instance *inst, js_snapshot_info **out, size_t *n)
{
    ss_entry_info *e = NULL;
    *out = NULL;
    *n = 0;
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    if (!inst->store.snap)
        return JET_errSuccess;
    JET_ERR err = ss_list(inst->store.snap, &e, n);
    if (err)
        return err;
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out) {
        free(e);
        *n = 0;
        return js_fail(JET_errOutOfMemory, "snapshot list");
    }
    for (size_t i = 0; i < *n; i++)
        to_info(inst, &e[i], &(*out)[i]);
    free(e);
    return JET_errSuccess;
}

JET_ERR js_snapshot_stat(js_instance *inst, const char *name, js_snapshot_info *out)
{
    js_snapshot_info *all = NULL;
    size_t n = 0;
    JET_ERR err = js_snapshot_list(inst, &all, &n);
    if (err)
        return err;
    err = js_fail(JET_errOSSnapshotInvalidSnapId, "no snapshot %s", name ? name : "");
    for (size_t i = 0; i < n; i++)
        if (name && !strcmp(all[i].name, name)) {
            *out = all[i];
            err = JET_errSuccess;
            break;
        }
    if (!err)
        js_errclear();
    free(all);
    return err;
}

JET_ERR js_snapshot_delete(js_instance *inst, const char *name)
{
    JET_ERR err = inst_check_usable(inst);
    if (err)
        return err;
    if (!inst->store.snap)
        return js_fail(JET_errOSSnapshotInvalidSnapId, "no snapshot %s", name ? name : "");
    err = ss_delete(inst->store.snap, name ? name : "");
    if (!err)
        inst_event(inst, 2004, JS_EV_INFO, "snapshot %s deleted", name);
    return err;
}

uint64_t js_snapshot_space(js_instance *inst)
{
    return inst && inst->store.snap ? ss_bytes_held(inst->store.snap) : 0;
}

JET_ERR js_snapshot_open(js_instance *inst, const char *name, js_snapshot **out, js_snapshot_info *info)
{
    ss_entry_info e;
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    if (!inst->store.snap)
        return js_fail(JET_errOSSnapshotInvalidSnapId, "no snapshot %s", name ? name : "");
    js_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return js_fail(JET_errOutOfMemory, "snapshot handle");
    JET_ERR err = ss_ref(inst->store.snap, name ? name : "", &s->id, &e);
    if (err) {
        free(s);
        return err;
    }
    s->inst = inst;
    s->fd = reader_fd(&inst->store);
    s->size = (uint64_t)e.meta.pages * inst->store.page_size;
    js_mutex_init(&s->trail_lock);
    if (info)
        to_info(inst, &e, info);
    *out = s;
    return JET_errSuccess;
}

/* The handle's reader reads, or has read, [off, off+len); len 0: it is
 * about to read.  The trail starts (asking about its first 64 MiB) at the
 * first read, never before it, and not at open: most opens (snapshot.info,
 * SHA256SUMS once computed) read no image. */
static void trail_read(js_snapshot *s, uint64_t off, uint64_t len)
{
    js_mutex_lock(&s->trail_lock);
    if (!s->trail_started) {
        ct_init(&s->trail, s->fd >= 0 ? s->fd : s->inst->store.fd, s->size, SNAP_TRAIL_AHEAD, SNAP_TRAIL_LAG);
        s->trail_started = 1;
    }
    ct_read(&s->trail, off, len);
    js_mutex_unlock(&s->trail_lock);
}

JET_ERR js_snapshot_read(js_snapshot *s, uint64_t off, void *buf, size_t len, size_t *got)
{
    trail_read(s, off, 0);
    JET_ERR err = ss_read(s->inst->store.snap, &s->inst->store, s->id, off, buf, len, got);
    if (!err)
        trail_read(s, off, got ? *got : len);
    return err;
}

JET_ERR js_snapshot_read_pieces(js_snapshot *s, uint64_t off, size_t len, void *scratch, js_piece *pieces, size_t cap,
                                js_emit_fn emit, void *ctx)
{
    /* Told before the read, not after: a consumer replies inside emit, and
     * once the kernel has the reply it may release the file, so another
     * thread may close s before ss_read_pieces returns.  A READ (at most
     * 512 KiB) is within the trail's lag, so nothing it reads is dropped
     * under it. */
    trail_read(s, off, len);
    return ss_read_pieces(s->inst->store.snap, &s->inst->store, s->fd, s->id, off, len, scratch, pieces, cap, emit,
                          ctx);
}

JET_ERR js_snapshot_note_set(js_snapshot *s, const void *data, uint32_t len)
{
    return ss_note_set(s->inst->store.snap, s->id, data, len);
}

JET_ERR js_snapshot_note_get(js_snapshot *s, void *buf, uint32_t cap, uint32_t *len)
{
    return ss_note_get(s->inst->store.snap, s->id, buf, cap, len);
}

void js_snapshot_close(js_snapshot *s)
{
    if (!s)
        return;
    ss_unref(s->inst->store.snap, s->id);
    js_mutex_lock(&s->trail_lock);
    if (s->trail_started)
        ct_finish(&s->trail);   /* before the descriptor it drops through is closed */
    js_mutex_unlock(&s->trail_lock);
    js_mutex_destroy(&s->trail_lock);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

/*
 * live.c - the live view of an instance directory: which files of DBDIR an
 * outsider (the daemon's live/) may show, their attributes, and reads of
 * them at any offset that never return a torn page of jetsnap.edb.  The
 * contract is in jetsnap.h ("Live view").
 *
 * jetsnap.edb is read through js_db_read(), under the page-range lock.  One
 * call is untorn, but a reader's one read(2) may reach us as several calls:
 * with direct_io the kernel splits a read into requests of at most max_pages
 * user pages, so a buffer that is not page aligned (any malloc'd one) makes
 * the requests end and start in the middle of a database page (1 MiB at
 * offset 16 of a page becomes 1 MiB - 16 bytes, then 16 bytes).  Each part
 * would be read at a different moment and the page cut in two could come
 * back torn.  So a read that covers only part of a database page reads the
 * whole page once and keeps the image in the handle until every byte of it
 * has been served (or LIVE_KEEP newer images push it out): the other part
 * then comes from the same image.  Other files are read with os_pread().
 *
 * Locking: js_live_file.partial_lock guards the kept images and the stamp;
 * it is a leaf except that js_db_read() (the page-range lock) runs under it.
 */
#include "instance/instance.h"
#include "base/err.h"
#include "base/os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIVE_KEEP 8

struct partial_page {
    uint64_t pgno;
    uint8_t *img;               /* NULL: slot free */
    size_t len;                 /* bytes of the page (short at end of file) */
    size_t served;              /* bytes handed out from img */
    uint64_t stamp;             /* age, for eviction */
};

struct js_live {
    int dir_fd;                 /* O_PATH fd of DBDIR */
    char *dir;
};

struct js_live_file {
    int fd;                     /* -1 for jetsnap.edb (read through the instance) */
    char *path;                 /* for messages */
    pthread_mutex_t partial_lock;   /* guards partial, stamp */
    struct partial_page partial[LIVE_KEEP];
    uint64_t stamp;
};

JET_ERR js_live_new(const char *dbdir, js_live **out)
{
    js_live *lv;

    if (!dbdir || !out)
        return js_fail(JET_errInvalidParameter, "js_live_new: NULL argument");
    *out = NULL;
    if ((lv = calloc(1, sizeof *lv)) == NULL || (lv->dir = strdup(dbdir)) == NULL) {
        free(lv);
        return js_fail(JET_errOutOfMemory, "live view of %s", dbdir);
    }
    lv->dir_fd = open(dbdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (lv->dir_fd < 0) {
        JET_ERR err = os_err(errno, "open directory", dbdir);
        free(lv->dir);
        free(lv);
        return err;
    }
    *out = lv;
    return JET_errSuccess;
}

void js_live_free(js_live *lv)
{
    if (!lv)
        return;
    close(lv->dir_fd);
    free(lv->dir);
    free(lv);
}

int js_live_name_ok(const char *name)
{
    return name && name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 && strcmp(name, JS_LOCK_FILE) != 0 && strcmp(name, JS_SNAPSHOT_DIR) != 0 &&
           strcmp(name, JS_DWB_FILE) != 0;   /* scratch of the checkpoint, no part of a copy */
}

JET_ERR js_live_stat(js_live *lv, const char *name, struct stat *st)
{
    if (!lv || !st)
        return js_fail(JET_errInvalidParameter, "js_live_stat: NULL argument");
    if (!name) {
        if (fstat(lv->dir_fd, st) != 0)
            return os_err(errno, "stat", lv->dir);
        return JET_errSuccess;
    }
    if (!js_live_name_ok(name))
        return js_fail(JET_errFileNotFound, "%s: not in the live view", name);
    if (fstatat(lv->dir_fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return os_err(errno, "stat", name);
    if (!S_ISREG(st->st_mode))
        return js_fail(JET_errFileNotFound, "%s: not a regular file", name);
    return JET_errSuccess;
}

JET_ERR js_live_list(js_live *lv, int (*fn)(void *ctx, const char *name), void *ctx)
{
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    DIR *d;
    int dfd;

    if (!lv || !fn)
        return js_fail(JET_errInvalidParameter, "js_live_list: NULL argument");
    dfd = openat(lv->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return os_err(errno, "open directory", lv->dir);
    if ((d = fdopendir(dfd)) == NULL) {
        err = os_err(errno, "open directory", lv->dir);
        close(dfd);
        return err;
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_type == DT_REG && js_live_name_ok(de->d_name) && fn(ctx, de->d_name) != 0)
            break;
    closedir(d);
    return err;
}

JET_ERR js_live_open(js_live *lv, const char *name, js_live_file **out)
{
    js_live_file *f;
    JET_ERR err;
    struct stat sb;

    if (!lv || !name || !out)
        return js_fail(JET_errInvalidParameter, "js_live_open: NULL argument");
    *out = NULL;
    if (!js_live_name_ok(name))
        return js_fail(JET_errFileNotFound, "%s: not in the live view", name);
    if ((f = calloc(1, sizeof *f)) == NULL || (f->path = strdup(name)) == NULL) {
        free(f);
        return js_fail(JET_errOutOfMemory, "live file %s", name);
    }
    f->fd = -1;
    pthread_mutex_init(&f->partial_lock, NULL);
    if (strcmp(name, JS_DB_FILE) != 0) {
        f->fd = openat(lv->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (f->fd < 0) {
            err = os_err(errno, "open", name);
            goto out_free;
        }
        if (fstat(f->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            err = js_fail(JET_errFileNotFound, "%s: not a regular file", name);
            goto out_free;
        }
    }
    *out = f;
    return JET_errSuccess;
out_free:
    js_live_close(f);
    return err;
}

void js_live_close(js_live_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < LIVE_KEEP; i++)
        free(f->partial[i].img);
    pthread_mutex_destroy(&f->partial_lock);
    free(f->path);
    free(f);
}

/* Copy bytes [from, from+n) of database page pgno into dst from the
 * handle's image of that page, reading the whole page first if there is
 * none.  *got receives the bytes copied (short at end of file). */
static JET_ERR partial_copy(js_live_file *f, js_instance *inst, uint64_t pgno, size_t from,
                            size_t n, uint8_t *dst, size_t *got)
{
    const uint32_t ps = inst->store.page_size;
    struct partial_page *pp = NULL, *victim = NULL;
    JET_ERR err = JET_errSuccess;
    int i;

    *got = 0;
    pthread_mutex_lock(&f->partial_lock);
    for (i = 0; i < LIVE_KEEP && pp == NULL; i++)
        if (f->partial[i].img != NULL && f->partial[i].pgno == pgno)
            pp = &f->partial[i];
    if (pp == NULL) {
        for (i = 0; i < LIVE_KEEP; i++)
            if (victim == NULL || f->partial[i].img == NULL ||
                (victim->img != NULL && f->partial[i].stamp < victim->stamp))
                victim = &f->partial[i];
        if (victim->img == NULL && (victim->img = malloc(ps)) == NULL) {
            err = js_fail(JET_errOutOfMemory, "live read of %s", JS_DB_FILE);
            goto out_unlock;
        }
        err = js_db_read(inst, pgno * ps, victim->img, ps, &victim->len);
        if (err != JET_errSuccess) {
            free(victim->img);
            victim->img = NULL;
            goto out_unlock;
        }
        victim->pgno = pgno;
        victim->served = 0;
        pp = victim;
    }
    pp->stamp = ++f->stamp;
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
    pthread_mutex_unlock(&f->partial_lock);
    return err;
}

/* jetsnap.edb: whole pages straight through js_db_read, a page cut by the
 * read's start or end through partial_copy(). */
static JET_ERR read_db(js_live_file *f, js_instance *inst, uint64_t off, uint8_t *buf,
                       size_t size, size_t *got)
{
    const uint64_t ps = inst->store.page_size;
    size_t done = 0, n;
    JET_ERR err;

    while (done < size) {
        uint64_t pos = off + done, pgno = pos / ps;
        size_t in = (size_t)(pos % ps);
        if (in != 0 || size - done < ps) {
            size_t want = size - done < ps - in ? size - done : (size_t)(ps - in);
            if ((err = partial_copy(f, inst, pgno, in, want, buf + done, &n)) != JET_errSuccess)
                return err;
            done += n;
            if (n < want)
                break;      /* end of file */
            continue;
        }
        /* The run of whole pages up to the last whole one. */
        n = (size_t)(((size - done) / ps) * ps);
        if ((err = js_db_read(inst, pos, buf + done, n, &n)) != JET_errSuccess)
            return err;
        done += n;
        if (n == 0 || n % ps != 0)
            break;          /* end of file */
    }
    *got = done;
    return JET_errSuccess;
}

JET_ERR js_live_read(js_live_file *f, js_instance *inst, uint64_t off, void *buf, size_t len,
                     size_t *got)
{
    if (!f || !buf || !got)
        return js_fail(JET_errInvalidParameter, "js_live_read: NULL argument");
    *got = 0;
    if (f->fd >= 0)
        return os_pread(f->fd, f->path, buf, len, off, got);
    if (!inst)
        return js_fail(JET_errNotInitialized, "js_live_read: %s needs the instance", JS_DB_FILE);
    return read_db(f, inst, off, buf, len, got);
}

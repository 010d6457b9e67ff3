/*
 * bkset.c - a backup job's set on disk: resolving and holding DEST, making
 * the directory the job writes in, the manifests, publishing (atomic for a
 * full set, staged for an incremental one) and undoing a failed job.  The
 * rules (names resolved once, everything *at() a held directory, cleanup
 * removes only what the job made) are in backup.c's opening comment.
 */
#include "jobs/bkjob.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

JET_ERR bk_note_written(bk_job *j, const char *name)
{
    if (j->nwritten == BK_MAX_WRITTEN)
        return js_fail(JET_errInvalidParameter, "too many files in one backup");
    if (strlen(name) >= sizeof j->written[0])   /* cleanup must unlink exactly this name */
        return js_fail(JET_errInvalidParameter, "file name too long for a backup set: %s", name);
    snprintf(j->written[j->nwritten++], sizeof j->written[0], "%s", name);
    return JET_errSuccess;
}

/* ---------------- validation ---------------- */

/* 1 when the directory fd is dir (dev, ino) or lies beneath it: walked up
 * through ".." from the descriptor, so no path is resolved. */
static int bk_beneath(int fd, dev_t dev, ino_t ino)
{
    int cur = openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC), inside = 0;
    for (int depth = 0; cur >= 0 && depth < 4096; depth++) {
        struct stat st, up;
        if (fstat(cur, &st) < 0)
            break;
        if (st.st_dev == dev && st.st_ino == ino) {
            inside = 1;
            break;
        }
        int next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (next < 0 || fstat(next, &up) < 0 || (up.st_dev == st.st_dev && up.st_ino == st.st_ino)) {
            os_close(next);
            break;   /* the file system's root */
        }
        close(cur);
        cur = next;
    }
    os_close(cur);
    return inside;
}

/* Split path into its parent (into parent, cap bytes) and last component,
 * trailing slashes ignored.  Returns the last component ("" for "/"). */
static const char *bk_split(const char *path, char *parent, size_t cap)
{
    snprintf(parent, cap, "%s", path);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        return "";
    const char *base = path + (slash - parent) + 1;
    if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    return base;
}

/* Resolve DEST once.  On success j->dest_fd holds DEST, or (DEST missing,
 * `create` given) j->parent_fd holds its parent and j->dest_name its name. */
JET_ERR bk_validate_path(bk_job *j, const char *dest, int root_fd, const char *root)
{
    if (!*dest || dest[0] != '/')
        return js_fail(JET_errInvalidParameter, "backup path \"%s\" is not absolute", dest);
    if (strlen(dest) >= PATH_MAX - 64)
        return js_fail(JET_errInvalidParameter, "backup path is too long");
    if (strchr(dest, '\n'))
        return js_fail(JET_errInvalidParameter, "backup path contains a newline");
    snprintf(j->dest, sizeof j->dest, "%s", dest);
    char parent[PATH_MAX], base[sizeof j->dest_name];
    const char *last = bk_split(dest, parent, sizeof parent);
    size_t blen = strcspn(last, "/");
    if (blen >= sizeof base)
        return js_fail(JET_errInvalidParameter, "backup directory name is too long");
    memcpy(base, last, blen);
    base[blen] = '\0';
    int plain = blen && strcmp(base, ".") && strcmp(base, "..");
    JET_ERR err;
    int why = 0;
    if (root_fd >= 0) {
        size_t rlen = strlen(root);
        while (rlen > 1 && root[rlen - 1] == '/')
            rlen--;
        if (!strcmp(root, "/"))
            rlen = 0;
        else if (strncmp(dest, root, rlen) || (dest[rlen] != '/' && dest[rlen] != '\0'))
            return js_fail(JET_errInvalidPath, "%s is outside the backup root %s", dest, root);
        const char *rel = dest + rlen + strspn(dest + rlen, "/");
        err = os_open_beneath(root_fd, rel, dest, &j->dest_fd, &why);
        if (err && why == ENOENT && plain && (j->flags & JS_BACKUP_CREATE_DIR)) {
            /* The parent beneath the root, then DEST made in it. */
            size_t plen = strlen(parent) > rlen ? strlen(parent) - rlen : 0;
            char prel[PATH_MAX];
            snprintf(prel, sizeof prel, "%.*s", (int)plen, parent + rlen);
            err = os_open_beneath(root_fd, prel + strspn(prel, "/"), parent, &j->parent_fd, &why);
            if (err && why == ENOENT)
                return js_fail(JET_errMakeBackupDirectoryFail, "cannot make %s: its parent is missing", dest);
        }
        if (err && why == ENOENT && !(j->flags & JS_BACKUP_CREATE_DIR))
            return js_fail(JET_errInvalidPath, "%s does not exist (add `create` to make it)", dest);
        if (err)
            return err;
    } else if (!plain) {
        /* "/" (or a path ending in . or ..): nothing to refuse a symlink at. */
        err = os_open(dest, O_RDONLY | O_DIRECTORY, 0, &j->dest_fd);
        if (err)
            return js_fail(JET_errInvalidPath, "%s is not a directory: %s", dest, js_errdetail());
    } else {
        err = os_open(parent, O_RDONLY | O_DIRECTORY, 0, &j->parent_fd);
        if (err == JET_errFileNotFound && (j->flags & JS_BACKUP_CREATE_DIR))
            return js_fail(JET_errMakeBackupDirectoryFail, "cannot make %s: its parent is missing", dest);
        if (err)
            return js_fail(JET_errInvalidPath, "%s: its parent is not a directory: %s", dest, js_errdetail());
        int fd = openat(j->parent_fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            j->dest_fd = fd;
        } else if (errno == ENOENT) {
            if (!(j->flags & JS_BACKUP_CREATE_DIR))
                return js_fail(JET_errInvalidPath, "%s does not exist (add `create` to make it)", dest);
        } else if (errno == ENOTDIR || errno == ELOOP) {
            return js_fail(JET_errInvalidPath, "%s is not a directory (a symlink is not followed)", dest);
        } else {
            return os_err(errno, "open", dest);
        }
    }
    if (j->dest_fd >= 0) {
        os_close(j->parent_fd);   /* DEST exists: this job never makes or removes it */
        j->parent_fd = -1;
    }
    snprintf(j->dest_name, sizeof j->dest_name, "%s", base);
    struct stat ist;
    if (stat(j->inst->dir, &ist) == 0 && bk_beneath(j->dest_fd >= 0 ? j->dest_fd : j->parent_fd, ist.st_dev, ist.st_ino))
        return js_fail(JET_errInvalidPath, "%s is inside the instance directory %s", dest, j->inst->dir);
    return JET_errSuccess;
}

/* Make dirfd/name (mkdirat) and open what is there now with O_NOFOLLOW: it
 * is used only if it is an empty directory owned by us, so a swap between
 * the two calls can at most hand us an empty directory in the same place.
 * *st receives its identity, which cleanup checks before removing it. */
static JET_ERR bk_make_dir(int dirfd, const char *name, const char *shown, int *fd, struct stat *st)
{
    JET_ERR err = os_mkdirat(dirfd, name, shown, 0700);
    if (err)
        return js_fail(err == JET_errDiskFull ? err : JET_errMakeBackupDirectoryFail, "cannot make %s: %s", shown,
                       js_errdetail());
    *fd = -1;
    err = os_openat(dirfd, name, shown, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, fd);
    if (!err && (fstat(*fd, st) < 0 || st->st_uid != geteuid() || !os_dir_empty_fd(*fd)))
        err = js_fail(JET_errMakeBackupDirectoryFail, "%s was replaced while it was made", shown);
    if (err) {
        /* What is there now may not be ours: it stays. */
        os_close(*fd);
        *fd = -1;
        return err == JET_errMakeBackupDirectoryFail ? err
                                                     : js_fail(JET_errMakeBackupDirectoryFail, "%s", js_errdetail());
    }
    return JET_errSuccess;
}

/* Remove the directory dirfd/name that this job made, if the name still
 * holds it (made is its identity) and it is empty.  Best effort. */
static void bk_remove_made_dir(int dirfd, const char *name, const struct stat *made)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) && st.st_dev == made->st_dev &&
        st.st_ino == made->st_ino)
        (void)os_unlinkat_quiet(dirfd, name, AT_REMOVEDIR);
}

/* backup.info and SHA256SUMS into work. */
JET_ERR bk_write_manifests(bk_job *j)
{
    char text[2048], hex[65];
    size_t len = mf_info_render(&j->info, text, sizeof text);
    j->wrote_manifests = 1;
    JET_ERR err = os_write_file_durable_at(j->work_fd, j->work, "backup.info", text, len, 0600);
    if (err)
        return err;
    mf_hash *h = mf_hash_new();
    if (!h)
        return js_fail(JET_errOutOfMemory, "hash");
    mf_hash_update(h, text, len);
    mf_hash_final(h, hex);
    err = mf_sums_set(j->sums, "backup.info", hex);
    if (!err)
        err = mf_sums_writeat(j->work_fd, j->work, j->sums);
    return err;
}

JET_ERR bk_prepare_dirs(bk_job *j)
{
    JET_ERR err;
    int incremental = (j->flags & JS_BACKUP_INCREMENTAL) != 0;
    int atomic = (j->flags & JS_BACKUP_ATOMIC) != 0;
    if (j->dest_fd < 0) {
        err = bk_make_dir(j->parent_fd, j->dest_name, j->dest, &j->dest_fd, &j->dest_st);
        if (err)
            return err;
        j->created_dest = 1;
    }
    if (atomic) {
        /* Full or incremental: a whole set is built here, then swapped in. */
        j->work_name = "temp";
        snprintf(j->target, sizeof j->target, "%s/new", j->dest);
    } else if (incremental) {
        j->work_name = ".jetsnap-incremental";
    } else {
        if (!os_dir_empty_fd(j->dest_fd))
            return js_fail(JET_errBackupDirectoryNotEmpty, "%s is not empty (use `atomic`, or an empty directory)",
                           j->dest);
        snprintf(j->work, sizeof j->work, "%s", j->dest);
        j->work_fd = dup(j->dest_fd);
        if (j->work_fd < 0)
            return os_err(errno, "dup", j->dest);
        j->work_is_dest = 1;
        return JET_errSuccess;
    }
    snprintf(j->work, sizeof j->work, "%s/%s", j->dest, j->work_name);
    err = os_rmtreeat(j->dest_fd, j->work_name, j->work);   /* a leftover of an interrupted job */
    if (err)
        return err;
    err = bk_make_dir(j->dest_fd, j->work_name, j->work, &j->work_fd, &j->work_st);
    if (err)
        return err;
    j->created_work = 1;
    return JET_errSuccess;
}

/* Undo a failed job: unlink, in the directory it wrote in, the names it
 * made there, then the directories it made (see the top of the file). */
void bk_cleanup(bk_job *j)
{
    static const char *const made[] = { "backup.info", "SHA256SUMS" };
    static const char *const prev[] = { ".prev.info", ".prev.sums" };
    if (j->work_fd >= 0 && (j->created_work || j->work_is_dest)) {
        for (size_t i = 0; i < j->nwritten; i++)
            (void)os_unlinkat_quiet(j->work_fd, j->written[i], 0);   /* best effort: the job already failed */
        for (size_t i = 0; j->wrote_manifests && i < 2; i++)
            (void)os_unlinkat_quiet(j->work_fd, made[i], 0);
        for (size_t i = 0; j->linked_prev && i < 2; i++)
            (void)os_unlinkat_quiet(j->work_fd, prev[i], 0);
    }
    if (j->created_work)
        bk_remove_made_dir(j->dest_fd, j->work_name, &j->work_st);
    if (j->created_dest)
        bk_remove_made_dir(j->parent_fd, j->dest_name, &j->dest_st);
}

/* Publish a set built in DEST/temp (atomic jobs), or make a plain one
 * durable.  Atomic: new -> old, temp -> new, fsync DEST.  Until that fsync
 * succeeds every step is undone on failure, so the previous set stays as it
 * was; after it the new set is the published one and removing DEST/old is
 * housekeeping (a crash that brings old back is harmless: restore prefers
 * new, and the next atomic job removes a leftover old first).  Every step
 * is relative to the held DEST. */
JET_ERR bk_publish_full(bk_job *j)
{
    JET_ERR err = os_fsync_fd(j->work_fd, j->work);
    if (err || !(j->flags & JS_BACKUP_ATOMIC)) {
        if (!err && j->created_dest) {
            char parent[PATH_MAX];
            snprintf(parent, sizeof parent, "%s/..", j->dest);
            err = os_fsync_fd(j->parent_fd, parent);
        }
        return err;
    }
    char newd[PATH_MAX], oldd[PATH_MAX];
    struct stat st;
    int had_new = 0, moved_new = 0;
    snprintf(newd, sizeof newd, "%s/new", j->dest);
    snprintf(oldd, sizeof oldd, "%s/old", j->dest);
    err = os_rmtreeat(j->dest_fd, "old", oldd);
    if (err)
        return err;
    had_new = fstatat(j->dest_fd, "new", &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (had_new) {
        err = os_renameat(j->dest_fd, "new", j->dest_fd, "old", oldd);
        if (err)
            return err;
    }
    err = os_renameat(j->dest_fd, j->work_name, j->dest_fd, "new", newd);
    if (!err) {
        moved_new = 1;
        err = os_fsync_fd(j->dest_fd, j->dest);
    }
    if (err) {
        /* Undo, best effort: the job has already failed with err. */
        if (moved_new)
            (void)os_renameat_quiet(j->dest_fd, "new", j->dest_fd, j->work_name);
        if (had_new)
            (void)os_renameat_quiet(j->dest_fd, "old", j->dest_fd, "new");
        (void)os_fsync_fd(j->dest_fd, j->dest);
        return err;
    }
    j->created_work = 0;   /* it is the published set now */
    if (had_new && os_rmtreeat(j->dest_fd, "old", oldd) != JET_errSuccess)
        inst_event(j->inst, 227, JS_EV_WARNING, "could not remove the previous set %s: %s", oldd, js_errdetail());
    return JET_errSuccess;
}

/* Atomic incremental: the new set in DEST/temp shares the previous set's
 * files through hard links, so publishing it is the same swap as a full
 * backup.  Only regular files are linked, and each link is recorded as made
 * by this job (cleanup unlinks it from DEST/temp). */
JET_ERR bk_share_previous_set(bk_job *j)
{
    int rd = openat(j->target_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = rd < 0 ? NULL : fdopendir(rd);
    if (!d) {
        JET_ERR e = os_err(errno, "opendir", j->target);
        os_close(rd);
        return e;
    }
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    while (!err && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "backup.info") || !strcmp(de->d_name, "SHA256SUMS"))
            continue;
        char to[PATH_MAX];
        struct stat st;
        if (fstatat(j->target_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (fstatat(j->work_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            continue;   /* this job's own copy of a generation wins */
        snprintf(to, sizeof to, "%s/%s", j->work, de->d_name);
        err = bk_note_written(j, de->d_name);
        if (!err)
            err = os_linkat(j->target_fd, de->d_name, j->work_fd, de->d_name, to);
    }
    closedir(d);
    return err;
}

/* Plain incremental: move the staged logs and manifests into DEST.  Every
 * step before the final fsync is undone on failure (the previous manifests
 * are kept as hard links for that), so a failed job leaves DEST as it was. */
JET_ERR bk_publish_incremental(bk_job *j)
{
    char to[PATH_MAX], t_info[PATH_MAX], t_sums[PATH_MAX], shown[PATH_MAX];
    size_t moved = 0;
    int info_moved = 0, sums_moved = 0;
    snprintf(t_info, sizeof t_info, "%s/backup.info", j->target);
    snprintf(t_sums, sizeof t_sums, "%s/SHA256SUMS", j->target);
    JET_ERR err = bk_write_manifests(j);
    if (!err) {
        j->linked_prev = 1;
        snprintf(shown, sizeof shown, "%s/.prev.info", j->work);
        err = os_linkat(j->target_fd, "backup.info", j->work_fd, ".prev.info", shown);
    }
    if (!err) {
        snprintf(shown, sizeof shown, "%s/.prev.sums", j->work);
        err = os_linkat(j->target_fd, "SHA256SUMS", j->work_fd, ".prev.sums", shown);
    }
    for (; !err && moved < j->nwritten; moved++) {
        snprintf(to, sizeof to, "%s/%s", j->target, j->written[moved]);
        err = os_renameat(j->work_fd, j->written[moved], j->target_fd, j->written[moved], to);
        if (err)
            break;
    }
    if (!err) {
        err = os_renameat(j->work_fd, "SHA256SUMS", j->target_fd, "SHA256SUMS", t_sums);
        sums_moved = !err;
    }
    if (!err) {
        err = os_renameat(j->work_fd, "backup.info", j->target_fd, "backup.info", t_info);
        info_moved = !err;
    }
    if (!err)
        err = os_fsync_fd(j->target_fd, j->target);
    if (err) {
        /* Undo, best effort: the job has already failed with err.  Only the
         * names this job moved into the set are touched. */
        if (info_moved)
            (void)os_renameat_quiet(j->work_fd, ".prev.info", j->target_fd, "backup.info");
        if (sums_moved)
            (void)os_renameat_quiet(j->work_fd, ".prev.sums", j->target_fd, "SHA256SUMS");
        for (size_t i = 0; i < moved; i++)
            (void)os_unlinkat_quiet(j->target_fd, j->written[i], 0);
        (void)os_fsync_fd(j->target_fd, j->target);
        return err;
    }
    /* Published: the staging directory holds only the two links now. */
    (void)os_unlinkat_quiet(j->work_fd, ".prev.info", 0);
    (void)os_unlinkat_quiet(j->work_fd, ".prev.sums", 0);
    j->linked_prev = 0;
    j->nwritten = 0;
    j->wrote_manifests = 0;
    bk_remove_made_dir(j->dest_fd, j->work_name, &j->work_st);
    j->created_work = 0;
    return JET_errSuccess;
}


/*
 * os.c - the core's only door to the file system, and the fault seam.
 *
 * Fault injection: js_fault_arm() sets, per operation kind (write, fsync,
 * rename, allocate), the ordinal of the call that fails and the errno it fails with;
 * a write may also be torn (its first tear_at bytes reach the file).  The
 * counters are process-wide because the seam sits below every instance; they
 * are only ever armed by tests.
 */
#include "base/os.h"
#include "base/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fault_slot {
    uint64_t count;     /* operations seen since reset (matching filter) */
    uint64_t fire_at;   /* 0: disarmed */
    int err;
    long tear_at;
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER; /* guards fault_* */
static struct fault_slot fault_slots[JS_FAULT_OPS];
static char fault_filter[256];

void js_fault_arm(int op, uint64_t nth, int err, long tear_at, const char *path_substr)
{
    if (op < 0 || op >= JS_FAULT_OPS)
        return;
    pthread_mutex_lock(&fault_lock);
    fault_slots[op].fire_at = nth ? fault_slots[op].count + nth : 0;
    fault_slots[op].err = err;
    fault_slots[op].tear_at = tear_at;
    snprintf(fault_filter, sizeof fault_filter, "%s", path_substr ? path_substr : "");
    pthread_mutex_unlock(&fault_lock);
}

void js_fault_reset(void)
{
    pthread_mutex_lock(&fault_lock);
    memset(fault_slots, 0, sizeof fault_slots);
    fault_filter[0] = '\0';
    pthread_mutex_unlock(&fault_lock);
}

uint64_t js_fault_count(int op)
{
    uint64_t n = 0;
    if (op < 0 || op >= JS_FAULT_OPS)
        return 0;
    pthread_mutex_lock(&fault_lock);
    n = fault_slots[op].count;
    pthread_mutex_unlock(&fault_lock);
    return n;
}

/* Count one operation; returns the errno to inject (0: none) and the tear
 * point through *tear. */
static int fault_check(int op, const char *path, long *tear)
{
    int inject = 0;
    pthread_mutex_lock(&fault_lock);
    if (fault_filter[0] == '\0' || (path && strstr(path, fault_filter))) {
        struct fault_slot *s = &fault_slots[op];
        s->count++;
        if (s->fire_at && s->count == s->fire_at) {
            inject = s->err ? s->err : EIO;
            if (tear)
                *tear = s->tear_at;
        }
    }
    pthread_mutex_unlock(&fault_lock);
    return inject;
}

/* The one errno -> ESE map, shared with the programs through jetsnap.h. */
JET_ERR js_err_from_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT: return JET_errDiskFull;
    case EACCES:
    case EPERM: return JET_errFileAccessDenied;
    case ENOENT: return JET_errFileNotFound;
    default: return JET_errDiskIO;
    }
}

JET_ERR os_err(int e, const char *what, const char *path)
{
    return js_fail(js_err_from_errno(e), "%s %s: %s", what, path ? path : "", strerror(e));
}

JET_ERR os_open(const char *path, int flags, mode_t mode, int *fd)
{
    int f = open(path, flags | O_CLOEXEC, mode);
    if (f < 0)
        return os_err(errno, "open", path);
    *fd = f;
    return JET_errSuccess;
}

JET_ERR os_reopen(int fd, const char *path, int flags, int *out)
{
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int f = open(self, flags | O_CLOEXEC);
    if (f < 0)
        return os_err(errno, "reopen", path);
    *out = f;
    return JET_errSuccess;
}

void os_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

JET_ERR os_pread(int fd, const char *path, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return os_err(errno, "read", path);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    if (got)
        *got = done;
    else if (done < len)
        return js_fail(JET_errDiskIO, "read %s: short read at offset %llu", path,
                       (unsigned long long)(off + done));
    return JET_errSuccess;
}

JET_ERR os_pwrite(int fd, const char *path, const void *buf, size_t len, uint64_t off)
{
    long tear = -1;
    int inject = fault_check(JS_FAULT_WRITE, path, &tear);
    size_t limit = len;
    if (inject && tear >= 0 && (size_t)tear < len)
        limit = (size_t)tear;
    else if (inject)
        limit = 0;
    size_t done = 0;
    while (done < limit) {
        ssize_t n = pwrite(fd, (const char *)buf + done, limit - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return os_err(errno, "write", path);
        }
        done += (size_t)n;
    }
    if (inject)
        return os_err(inject, "write", path);
    return JET_errSuccess;
}

JET_ERR os_writeback_behind(int fd, const char *path, uint64_t off, uint64_t len, uint64_t behind, int drop)
{
    const unsigned wait = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
    if (off < behind)
        return JET_errSuccess;
    if (sync_file_range(fd, (off64_t)(off - behind), (off64_t)len, wait) < 0 && errno != ENOSYS && errno != EINVAL)
        return os_err(errno, "write back", path);
    if (drop)
        (void)posix_fadvise(fd, (off_t)(off - behind), (off_t)len, POSIX_FADV_DONTNEED);
    return JET_errSuccess;
}

void os_cache_drop(int fd, uint64_t off, uint64_t len)
{
    (void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

int os_cache_resident(int fd, uint64_t off, size_t len)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || len == 0)
        return -1;
    uint64_t start = off - off % (uint64_t)pg;
    size_t span = (size_t)(off + len - start);
    size_t npg = (span + (size_t)pg - 1) / (size_t)pg;
    unsigned char vec[4096];   /* 16 MiB of 4 KiB pages: a batch of the largest pages */
    if (npg > sizeof vec)
        return -1;
    void *m = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)start);
    if (m == MAP_FAILED)
        return -1;
    int any = -1;
    if (mincore(m, span, vec) == 0) {
        any = 0;
        for (size_t i = 0; i < npg && !any; i++)
            any = vec[i] & 1;
    }
    munmap(m, span);
    return any;
}

/* ioprio_set(2) has no libc wrapper; the values are the kernel's ABI. */
#define OS_IOPRIO_WHO_PROCESS 1
#define OS_IOPRIO_CLASS_SHIFT 13
#define OS_IOPRIO_CLASS_IDLE 3

int os_io_priority_idle(void)
{
    long prev = syscall(SYS_ioprio_get, OS_IOPRIO_WHO_PROCESS, 0);
    if (prev < 0)
        return -1;
    if (syscall(SYS_ioprio_set, OS_IOPRIO_WHO_PROCESS, 0, OS_IOPRIO_CLASS_IDLE << OS_IOPRIO_CLASS_SHIFT) < 0)
        return -1;
    return (int)prev;
}

void os_io_priority_restore(int prev)
{
    if (prev >= 0)
        (void)syscall(SYS_ioprio_set, OS_IOPRIO_WHO_PROCESS, 0, prev);
}

JET_ERR os_fsync(int fd, const char *path)
{
    int inject = fault_check(JS_FAULT_FSYNC, path, NULL);
    if (inject)
        return os_err(inject, "fsync", path);
    if (fdatasync(fd) < 0)
        return os_err(errno, "fsync", path);
    return JET_errSuccess;
}

JET_ERR os_fsync_dir(const char *dir)
{
    int inject = fault_check(JS_FAULT_FSYNC, dir, NULL);
    if (inject)
        return os_err(inject, "fsync", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return os_err(errno, "open directory", dir);
    JET_ERR err = JET_errSuccess;
    if (fsync(fd) < 0)
        err = os_err(errno, "fsync", dir);
    close(fd);
    return err;
}

JET_ERR os_rename(const char *from, const char *to)
{
    int inject = fault_check(JS_FAULT_RENAME, to, NULL);
    if (inject)
        return os_err(inject, "rename", to);
    if (rename(from, to) < 0)
        return os_err(errno, "rename", from);
    return JET_errSuccess;
}

JET_ERR os_unlink(const char *path, int missing_ok)
{
    if (unlink(path) < 0 && !(missing_ok && errno == ENOENT))
        return os_err(errno, "unlink", path);
    return JET_errSuccess;
}

JET_ERR os_allocate(int fd, const char *path, uint64_t len)
{
    int inject = fault_check(JS_FAULT_ALLOCATE, path, NULL);
    if (inject)
        return os_err(inject, "allocate", path);
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc == 0)
        return JET_errSuccess;
    if (rc != EOPNOTSUPP && rc != EINVAL)
        return os_err(rc, "allocate", path);
    /* File systems without fallocate: extend with a hole; the first writes
     * then allocate, which is slower but still correct. */
    if (ftruncate(fd, (off_t)len) < 0)
        return os_err(errno, "truncate", path);
    return JET_errSuccess;
}

JET_ERR os_write_zeros(int fd, const char *path, uint64_t off, uint64_t len)
{
    enum { ZERO_CHUNK = 1 << 20 };
    /* The log's spare asks for 64 KiB at a time: zero no more than that. */
    uint8_t *zero = calloc(1, len < ZERO_CHUNK ? (size_t)len + 1 : ZERO_CHUNK);
    JET_ERR err = zero ? JET_errSuccess : js_fail(JET_errOutOfMemory, "zeros for %s", path);
    for (uint64_t done = 0; !err && done < len; done += ZERO_CHUNK) {
        size_t n = len - done < ZERO_CHUNK ? (size_t)(len - done) : ZERO_CHUNK;
        err = os_pwrite(fd, path, zero, n, off + done);
    }
    free(zero);
    return err;
}

JET_ERR os_punch_hole(int fd, const char *path, uint64_t off, uint64_t len)
{
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
        errno != EOPNOTSUPP)
        return os_err(errno, "punch hole in", path);
    return JET_errSuccess;
}

JET_ERR os_truncate(int fd, const char *path, uint64_t len)
{
    if (ftruncate(fd, (off_t)len) < 0)
        return os_err(errno, "truncate", path);
    return JET_errSuccess;
}

JET_ERR os_size(int fd, const char *path, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return os_err(errno, "stat", path);
    *size = (uint64_t)st.st_size;
    return JET_errSuccess;
}

JET_ERR os_mkdir(const char *path, mode_t mode, int exist_ok)
{
    if (mkdir(path, mode) == 0)
        return JET_errSuccess;
    if (errno == EEXIST && exist_ok) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return JET_errSuccess;
        return js_fail(JET_errInvalidPath, "%s exists and is not a directory", path);
    }
    return os_err(errno, "mkdir", path);
}

int os_dir_empty(const char *path, int *exists)
{
    DIR *d = opendir(path);
    if (exists)
        *exists = d != NULL || errno != ENOENT;
    if (!d)
        return errno == ENOENT;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

JET_ERR os_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return JET_errSuccess;
        if (errno == ENOTDIR)
            return os_unlink(path, 1);
        return os_err(errno, "opendir", path);
    }
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    char child[PATH_MAX];
    while (err == JET_errSuccess && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(child, &st) < 0)
            err = os_err(errno, "stat", child);
        else if (S_ISDIR(st.st_mode))
            err = os_rmtree(child);
        else
            err = os_unlink(child, 1);
    }
    closedir(d);
    if (err == JET_errSuccess && rmdir(path) < 0 && errno != ENOENT)
        err = os_err(errno, "rmdir", path);
    return err;
}

JET_ERR os_write_file_durable(const char *dir, const char *name, const void *buf, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int fd = -1;
    JET_ERR err = os_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode, &fd);
    if (err)
        goto out;
    err = os_pwrite(fd, tmp, buf, len, 0);
    if (!err)
        err = os_fsync(fd, tmp);
    os_close(fd);
    if (!err)
        err = os_rename(tmp, final);
    if (!err)
        err = os_fsync_dir(dir);
out:
    if (err)
        unlink(tmp);
    return err;
}

/* ---------------- directory-relative operations ---------------- */

JET_ERR os_openat(int dirfd, const char *name, const char *shown, int flags, mode_t mode, int *fd)
{
    int f = openat(dirfd, name, flags | O_CLOEXEC, mode);
    if (f < 0)
        return os_err(errno, "open", shown);
    *fd = f;
    return JET_errSuccess;
}

/* The walk for kernels without openat2 (before 5.6): each component is
 * opened with O_NOFOLLOW, so a symlink anywhere fails with ELOOP (or
 * ENOTDIR with O_PATH), and ".." is refused rather than checked. */
static int open_beneath_walk(int root_fd, const char *rel, int *fd)
{
    char comp[NAME_MAX + 1];
    int cur = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return errno;
    const char *p = rel;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        if (n > NAME_MAX) {
            close(cur);
            return ENAMETOOLONG;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            close(cur);
            return EXDEV;
        }
        int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (next < 0) {
            struct stat st;
            /* O_PATH|O_NOFOLLOW on a symlink with O_DIRECTORY: ENOTDIR;
             * tell a symlink (an escape attempt) from a plain file. */
            if (e == ENOTDIR && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                e = EXDEV;
            if (e == ELOOP)
                e = EXDEV;
            close(cur);
            return e;
        }
        close(cur);
        cur = next;
    }
    *fd = cur;
    return 0;
}

JET_ERR os_open_beneath(int root_fd, const char *rel, const char *shown, int *fd, int *why)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    int e = 0;
    int f = (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof how);
    if (f < 0) {
        e = errno;
        if (e == ENOSYS)
            e = open_beneath_walk(root_fd, rel, &f);
        else if (e == ELOOP)
            e = EXDEV;   /* RESOLVE_NO_SYMLINKS met a symlink */
    }
    if (e == 0) {
        /* The O_PATH descriptor names the directory; reopen it through
         * itself for reading and fsync (no path is resolved). */
        int rd = openat(f, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        e = rd < 0 ? errno : 0;
        close(f);
        f = rd;
    }
    if (why)
        *why = e;
    if (e == 0) {
        *fd = f;
        return JET_errSuccess;
    }
    if (e == EXDEV)
        return js_fail(JET_errInvalidPath, "%s: outside the backup root or through a symlink", shown);
    if (e == ENOENT || e == ENOTDIR)
        return js_fail(JET_errInvalidPath, "%s: %s", shown, strerror(e));
    return os_err(e, "open", shown);
}

JET_ERR os_mkdirat(int dirfd, const char *name, const char *shown, mode_t mode)
{
    if (mkdirat(dirfd, name, mode) < 0)
        return os_err(errno, "mkdir", shown);
    return JET_errSuccess;
}

/* unlinkat(2); flags 0 or AT_REMOVEDIR; a missing
 * entry is success when missing_ok. */
static JET_ERR os_unlinkat(int dirfd, const char *name, const char *shown, int flags, int missing_ok)
{
    if (unlinkat(dirfd, name, flags) < 0 && !(missing_ok && errno == ENOENT))
        return os_err(errno, flags & AT_REMOVEDIR ? "rmdir" : "unlink", shown);
    return JET_errSuccess;
}

JET_ERR os_renameat(int fromfd, const char *from, int tofd, const char *to, const char *shown_to)
{
    int inject = fault_check(JS_FAULT_RENAME, shown_to, NULL);
    if (inject)
        return os_err(inject, "rename", shown_to);
    if (renameat(fromfd, from, tofd, to) < 0)
        return os_err(errno, "rename", shown_to);
    return JET_errSuccess;
}

JET_ERR os_mkdtemp(char *tmpl)
{
    if (!mkdtemp(tmpl))
        return os_err(errno, "mkdtemp", tmpl);
    return JET_errSuccess;
}

int os_unlinkat_quiet(int dirfd, const char *name, int flags)
{
    return unlinkat(dirfd, name, flags) < 0 ? errno : 0;
}

int os_renameat_quiet(int fromfd, const char *from, int tofd, const char *to)
{
    return renameat(fromfd, from, tofd, to) < 0 ? errno : 0;
}

JET_ERR os_linkat(int fromfd, const char *from, int tofd, const char *to, const char *shown_to)
{
    if (linkat(fromfd, from, tofd, to, 0) < 0)
        return os_err(errno, "link", shown_to);
    return JET_errSuccess;
}

JET_ERR os_fsync_fd(int fd, const char *shown)
{
    int inject = fault_check(JS_FAULT_FSYNC, shown, NULL);
    if (inject)
        return os_err(inject, "fsync", shown);
    if (fsync(fd) < 0)
        return os_err(errno, "fsync", shown);
    return JET_errSuccess;
}

int os_dir_empty_fd(int fd)
{
    int rd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rd < 0)
        return 0;
    DIR *d = fdopendir(rd);
    if (!d) {
        close(rd);
        return 0;
    }
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

/* Depth bounds the descriptors a hostile tree can make us hold. */
static JET_ERR rmtreeat_depth(int dirfd, const char *name, const char *shown, int depth)
{
    if (depth > 32)
        return js_fail(JET_errInvalidPath, "%s: directory tree too deep to remove", shown);
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return JET_errSuccess;
        if (errno == ENOTDIR || errno == ELOOP)
            return js_fail(JET_errInvalidPath, "%s is not a directory: not removed", shown);
        return os_err(errno, "open directory", shown);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        JET_ERR e = os_err(errno, "opendir", shown);
        close(fd);
        return e;
    }
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    char child[PATH_MAX];
    while (err == JET_errSuccess && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(child, sizeof child, "%s/%s", shown, de->d_name);
        struct stat st;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            err = errno == ENOENT ? JET_errSuccess : os_err(errno, "stat", child);
        else if (S_ISDIR(st.st_mode))
            err = rmtreeat_depth(fd, de->d_name, child, depth + 1);
        else
            err = os_unlinkat(fd, de->d_name, child, 0, 1);
    }
    closedir(d);
    if (err == JET_errSuccess)
        err = os_unlinkat(dirfd, name, shown, AT_REMOVEDIR, 1);
    return err;
}

JET_ERR os_rmtreeat(int dirfd, const char *name, const char *shown)
{
    return rmtreeat_depth(dirfd, name, shown, 0);
}

JET_ERR os_write_file_durable_at(int dirfd, const char *shown_dir, const char *name, const void *buf, size_t len,
                                 mode_t mode)
{
    char tmp[NAME_MAX + 1], shown_tmp[PATH_MAX], shown[PATH_MAX];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    snprintf(shown_tmp, sizeof shown_tmp, "%s/%s", shown_dir, tmp);
    snprintf(shown, sizeof shown, "%s/%s", shown_dir, name);
    int fd = -1;
    JET_ERR err = os_openat(dirfd, tmp, shown_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode, &fd);
    if (err)
        return err;
    err = os_pwrite(fd, shown_tmp, buf, len, 0);
    if (!err)
        err = os_fsync(fd, shown_tmp);
    os_close(fd);
    if (!err)
        err = os_renameat(dirfd, tmp, dirfd, name, shown);
    if (!err)
        err = os_fsync_fd(dirfd, shown_dir);
    if (err)
        (void)unlinkat(dirfd, tmp, 0);
    return err;
}

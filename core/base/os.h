/*
 * os.h - the only file-I/O layer of the core.  Every pread, pwrite, fsync,
 * rename and unlink of the engine goes through here, so tests can fail the
 * Nth write, fsync or rename (EIO, ENOSPC) or tear a write at a chosen byte.
 * Errors come back as ESE codes with js_errdetail() naming the path.
 */
#ifndef JS_OS_H
#define JS_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "jetsnap.h"

/** Translate errno e into an ESE code (ENOSPC/EDQUOT: JET_errDiskFull,
 *  EACCES/EPERM: JET_errFileAccessDenied, ENOENT: JET_errFileNotFound,
 *  else JET_errDiskIO) and set the detail "<what> <path>: strerror". */
JET_ERR os_err(int e, const char *what, const char *path);

/** open(2); *fd receives the descriptor (O_CLOEXEC is added). */
JET_ERR os_open(const char *path, int flags, mode_t mode, int *fd);
/** A second, independent open of the file behind fd (its own offset and
 *  read-ahead state), through /proc/self/fd, so renaming the file's path
 *  does not matter; flags as open(2)'s. */
JET_ERR os_reopen(int fd, const char *path, int flags, int *out);
/** close(2), ignoring -1. */
void os_close(int fd);
/** Read exactly len bytes at off unless the file ends; *got (may be NULL)
 *  receives the count.  A short read with got == NULL is JET_errDiskIO. */
JET_ERR os_pread(int fd, const char *path, void *buf, size_t len, uint64_t off, size_t *got);
/** Write all len bytes at off (fault seam: write). */
JET_ERR os_pwrite(int fd, const char *path, const void *buf, size_t len, uint64_t off);
/** A long sequential copy's writeback, called after each chunk
 *  [off, off+len) is written: start writing that chunk back, then wait
 *  for the chunk `behind` bytes earlier (sync_file_range with both waits)
 *  and, if drop, remove it from the page cache.  The copy's dirty data
 *  stays at about `behind` bytes, so its final fsync (and any log fsync
 *  queued behind it) never waits for a large writeback, and the disk
 *  writes while the copy reads.  Not durable (no metadata, no cache
 *  flush): the copy's fsync still decides. */
JET_ERR os_writeback_behind(int fd, const char *path, uint64_t off, uint64_t len, uint64_t behind, int drop);
/** Drop [off, off+len) of fd from the page cache (posix_fadvise DONTNEED):
 *  a copy that passes through once does not evict the live working set.
 *  Clean pages only; a hint that never fails. */
void os_cache_drop(int fd, uint64_t off, uint64_t len);
/** 1 when any page of [off, off+len) of fd is in the page cache (mincore
 *  of a read-only mapping), 0 when none is, -1 when unknown. */
int os_cache_resident(int fd, uint64_t off, size_t len);
/** Give the calling thread's I/O the idle class (ioprio_set(2)), so the
 *  disk serves every other request before it (mq-deadline and BFQ honour
 *  it; a waiting idle request is still aged in).  Returns the previous
 *  priority for os_io_priority_restore, -1 when it could not be set. */
int os_io_priority_idle(void);
/** Put back the priority os_io_priority_idle returned (ignoring -1). */
void os_io_priority_restore(int prev);
/** fdatasync (fault seam: fsync). */
JET_ERR os_fsync(int fd, const char *path);
/** fsync of a directory (fault seam: fsync). */
JET_ERR os_fsync_dir(const char *dir);
/** rename(2) (fault seam: rename). */
JET_ERR os_rename(const char *from, const char *to);
/** unlink(2); a missing file is success when missing_ok. */
JET_ERR os_unlink(const char *path, int missing_ok);
/** Reserve len bytes (fallocate, falling back to writing zeros). */
JET_ERR os_allocate(int fd, const char *path, uint64_t len);
/** Write zeros over [off, off+len) (fault seam: write).  For a file
 *  appended to with fdatasync after each write (a log generation): blocks
 *  fallocate only reserved are "unwritten" extents, and the first write of
 *  each turns the fdatasync into two serial writes (the data, then the
 *  inode whose extent map changed); written ones cost the data alone. */
JET_ERR os_write_zeros(int fd, const char *path, uint64_t off, uint64_t len);
/** Free [off, off+len) of a file without changing its size (the space
 *  of a deleted snapshot's page images); a file system without hole
 *  punching keeps the space and it is success. */
JET_ERR os_punch_hole(int fd, const char *path, uint64_t off, uint64_t len);
/** ftruncate(2) to len bytes. */
JET_ERR os_truncate(int fd, const char *path, uint64_t len);
/** File size. */
JET_ERR os_size(int fd, const char *path, uint64_t *size);
/** mkdir(2) with mode; an existing directory is success when exist_ok. */
JET_ERR os_mkdir(const char *path, mode_t mode, int exist_ok);
/** 1 when path is an empty directory or does not exist (*exists, may be
 *  NULL, tells which), 0 when it has entries or cannot be read. */
int os_dir_empty(const char *path, int *exists);
/** Remove a directory tree (files and subdirectories). Missing is success. */
JET_ERR os_rmtree(const char *path);
/** Write a whole small file durably: temp, fsync, rename, fsync dir. */
JET_ERR os_write_file_durable(const char *dir, const char *name, const void *buf, size_t len, mode_t mode);

/* Directory-relative operations.  A job that writes into a directory holds
 * that directory open and names everything relative to the descriptor, so
 * no rename or symlink swapped into the path after the directory was
 * opened can redirect a create, rename or removal (core/backup.c).  `shown`
 * is the path used only for messages and the fault filter: it is never
 * resolved. */

/** openat(2) (O_CLOEXEC is added); *fd receives the descriptor. */
JET_ERR os_openat(int dirfd, const char *name, const char *shown, int flags, mode_t mode, int *fd);
/** Open the directory rel beneath root_fd, refusing any resolution that
 *  leaves root_fd or crosses a symlink: openat2(RESOLVE_BENEATH |
 *  RESOLVE_NO_SYMLINKS), or where the kernel lacks openat2 a walk that opens
 *  one component at a time with O_NOFOLLOW | O_DIRECTORY and refuses "..".
 *  rel "" or "." is root_fd itself.  Refusals are JET_errInvalidPath with
 *  *why (may be NULL) set to EXDEV (escape or symlink), ENOENT or ENOTDIR. */
JET_ERR os_open_beneath(int root_fd, const char *rel, const char *shown, int *fd, int *why);
/** mkdirat(2) (an existing entry is an error: the caller must know it made
 *  the directory). */
JET_ERR os_mkdirat(int dirfd, const char *name, const char *shown, mode_t mode);
/** renameat(2) (fault seam: rename, matched against shown_to). */
JET_ERR os_renameat(int fromfd, const char *from, int tofd, const char *to, const char *shown_to);
/** linkat(2) without following a symlink at from. */
JET_ERR os_linkat(int fromfd, const char *from, int tofd, const char *to, const char *shown_to);
/** fsync(2) of an open directory (or file) (fault seam: fsync). */
JET_ERR os_fsync_fd(int fd, const char *shown);
/** 1 when the open directory fd has no entries, 0 when it has or cannot be
 *  read.  fd keeps its position (a separate description is read). */
int os_dir_empty_fd(int fd);
/** Remove the directory tree dirfd/name: name is opened with O_NOFOLLOW |
 *  O_DIRECTORY, its entries are removed with unlinkat relative to that
 *  descriptor, subdirectories likewise (never through a symlink), then the
 *  directory itself.  Missing is success; name not a directory (a symlink
 *  included) is JET_errInvalidPath and nothing is removed. */
JET_ERR os_rmtreeat(int dirfd, const char *name, const char *shown);
/** os_write_file_durable into an open directory. */
JET_ERR os_write_file_durable_at(int dirfd, const char *shown_dir, const char *name, const void *buf, size_t len,
                                 mode_t mode);

/** mkdtemp(3): tmpl ends in XXXXXX, which become the new directory's name. */
JET_ERR os_mkdtemp(char *tmpl);

/** Cleanup forms of unlinkat and renameat, for undoing a failed job: they
 *  set no error detail (the job's own must stay) and return the errno (0:
 *  done).  Not counted by the fault seam: a test arms the failure that
 *  starts the cleanup, never one inside it. */
int os_unlinkat_quiet(int dirfd, const char *name, int flags);
int os_renameat_quiet(int fromfd, const char *from, int tofd, const char *to);

#endif

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
/** close(2), ignoring -1. */
void os_close(int fd);
/** Read exactly len bytes at off unless the file ends; *got (may be NULL)
 *  receives the count.  A short read with got == NULL is JET_errDiskIO. */
JET_ERR os_pread(int fd, const char *path, void *buf, size_t len, uint64_t off, size_t *got);
/** Write all len bytes at off (fault seam: write). */
JET_ERR os_pwrite(int fd, const char *path, const void *buf, size_t len, uint64_t off);
/** Start writeback of [off, off+len) without waiting (sync_file_range), so
 *  a long copy's final fsync has little left to do.  A hint: never fails. */
void os_writeback(int fd, uint64_t off, uint64_t len);
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
/** File size. */
JET_ERR os_size(int fd, const char *path, uint64_t *size);
/** mkdir(2) with mode; an existing directory is success when exist_ok. */
JET_ERR os_mkdir(const char *path, mode_t mode, int exist_ok);
/** Hard link (same file system); used to keep or share set files without
 *  copying them. */
JET_ERR os_link(const char *from, const char *to);
/** 1 when path is an empty directory or does not exist (*exists, may be
 *  NULL, tells which), 0 when it has entries or cannot be read. */
int os_dir_empty(const char *path, int *exists);
/** Remove a directory tree (files and subdirectories). Missing is success. */
JET_ERR os_rmtree(const char *path);
/** Write a whole small file durably: temp, fsync, rename, fsync dir. */
JET_ERR os_write_file_durable(const char *dir, const char *name, const void *buf, size_t len, mode_t mode);

#endif

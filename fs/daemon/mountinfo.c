/*
 * mountinfo.c - the kernel's view of our mount: find a FUSE mount in
 * /proc/self/mountinfo, probe it from a child (a wedged daemon cannot hang
 * us), detach it lazily, and abort its connection through fusectl as a
 * last resort.  Used at start (mnt_clear_stale) and at stop (mount.c).
 */
#include "mount_int.h"
#include "proto/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Find the last (topmost) FUSE mount at path in /proc/self/mountinfo.
 * Returns 1 and its minor device number (the fusectl connection number),
 * 0 when there is none. */
int mnt_find_fuse_mount(const char *path, unsigned *minor_out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;

    if (f == NULL)
        return 0;
    while (getline(&line, &cap, f) > 0) {
        struct proto_mount mi;
        if (proto_mountinfo_line(line, &mi) == 0 && strcmp(mi.mountpoint, path) == 0 &&
            strncmp(mi.fstype, "fuse", 4) == 0) {
            found = 1;
            *minor_out = mi.minor;
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

int mnt_detach_path(const char *path)
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

    if (mnt_find_fuse_mount(mountpoint, &minor)) {
        rc = probe_mount(mountpoint);
        if (rc == 0)
            return EBUSY;
        return mnt_detach_path(mountpoint);
    }
    /* Not listed (another mount namespace view, or a path spelled
     * differently) but dead all the same. */
    if (stat(mountpoint, &sb) != 0 && errno == ENOTCONN)
        return mnt_detach_path(mountpoint);
    return 0;
}

/* Last resort: abort the connection through fusectl (mounted or not). */
void mnt_fusectl_abort(unsigned conn_minor)
{
    char path[96];
    int fd;

    if (conn_minor == 0)
        return;
    snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", conn_minor);
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

/*
 * inode.c - the inode table of the mount: fixed inodes for the root,
 * control, status, events and live/, and one stable inode per live file
 * name, numbered on first sight and kept for the life of the mount (FORGET
 * frees nothing).  The map of inodes and modes is in mount_int.h.
 *
 * Modes (SPEC 3): the root, status and events belong to the daemon's user
 * and are readable by everyone the mount admits; control is the daemon
 * owner's alone.  live/ and its files follow DBDIR (live_view.c).
 */
#include "mount_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fuse_ino_t mnt_live_ino(struct mnt *m, const char *name)
{
    fuse_ino_t ino = 0;
    size_t i;

    pthread_mutex_lock(&m->live_lock);
    for (i = 0; i < m->live_n; i++)
        if (strcmp(m->live_names[i], name) == 0) {
            ino = INO_LIVE_BASE + i;
            goto out_unlock;
        }
    if (m->live_n == m->live_cap) {
        size_t cap = m->live_cap ? m->live_cap * 2 : 64;
        char **n = realloc(m->live_names, cap * sizeof(*n));
        if (n == NULL)
            goto out_unlock;
        m->live_names = n;
        m->live_cap = cap;
    }
    if ((m->live_names[m->live_n] = strdup(name)) == NULL)
        goto out_unlock;
    ino = INO_LIVE_BASE + m->live_n++;
out_unlock:
    pthread_mutex_unlock(&m->live_lock);
    return ino;
}

int mnt_live_name(struct mnt *m, fuse_ino_t ino, char *out, size_t cap)
{
    int rc = -1;

    pthread_mutex_lock(&m->live_lock);
    if (ino >= INO_LIVE_BASE && ino - INO_LIVE_BASE < m->live_n) {
        snprintf(out, cap, "%s", m->live_names[ino - INO_LIVE_BASE]);
        rc = 0;
    }
    pthread_mutex_unlock(&m->live_lock);
    return rc;
}

void mnt_live_names_free(struct mnt *m)
{
    for (size_t k = 0; k < m->live_n; k++)
        free(m->live_names[k]);
    free(m->live_names);
    m->live_names = NULL;
    m->live_n = m->live_cap = 0;
}

void mnt_fill_static(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
    time_t t = ino == INO_STATUS || ino == INO_EVENTS ? time(NULL) : m->mount_time;

    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    st->st_atime = st->st_mtime = st->st_ctime = t;
    st->st_blksize = 4096;
    switch (ino) {
    case INO_ROOT: st->st_mode = S_IFDIR | 0555; st->st_nlink = 3; break;
    case INO_LIVE: st->st_mode = S_IFDIR | 0500; st->st_nlink = 2; break;  /* mnt_live_dir_attr() */
    case INO_CONTROL: st->st_mode = S_IFREG | 0200; st->st_nlink = 1; break;
    default: st->st_mode = S_IFREG | 0444; st->st_nlink = 1; break;
    }
}

int mnt_getattr(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
    char name[NAME_MAX + 1];

    if (ino == INO_LIVE)
        return mnt_live_dir_attr(m, st);
    if (ino == INO_SNAPS) {
        mnt_snaps_dir_attr(m, st);
        return 0;
    }
    if (ino >= INO_SNAP_BASE)
        return mnt_snap_getattr(m, ino, st);
    if (ino >= INO_ROOT && ino < INO_LIVE) {
        mnt_fill_static(m, ino, st);
        return 0;
    }
    if (mnt_live_name(m, ino, name, sizeof(name)) != 0)
        return ENOENT;
    return mnt_live_stat(m, name, ino, st);
}

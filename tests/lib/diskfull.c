/*
 * diskfull.c - scratch roots and numbered keys of the disk-full suites
 * (see diskfull.h).
 */
#include "diskfull.h"
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

char tl_df_root[64];
static int root_mounted;   /* tl_df_root is a tmpfs */

void tl_df_sweep(void)
{
    js_fault_reset();
    if (root_mounted) {
        umount2(tl_df_root, MNT_DETACH);
        root_mounted = 0;
    }
    if (tl_df_root[0])
        tl_rmrf(tl_df_root);
    tl_df_root[0] = '\0';
}

void tl_df_sweep_stale(void)
{
    DIR *d = opendir("/tmp");
    struct dirent *de;

    while (d && (de = readdir(d)) != NULL) {
        int pid;
        char path[512];
        /* The owner's pid is in the name: sweep only the dead's. */
        if (sscanf(de->d_name, "jsdf-%d-", &pid) != 1 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "/tmp/%s", de->d_name);
        umount2(path, MNT_DETACH);   /* fails harmlessly when it is no mount */
        tl_rmrf(path);
    }
    if (d)
        closedir(d);
}

void tl_df_plain_root(void)
{
    snprintf(tl_df_root, sizeof tl_df_root, "/tmp/jsdf-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(tl_df_root));
}

void tl_df_mount_tmpfs(unsigned size_kib)
{
    char opts[64];

    tl_df_plain_root();
    snprintf(opts, sizeof opts, "size=%uk,mode=0700", size_kib);
    cr_assert_eq(mount("tmpfs", tl_df_root, "tmpfs", MS_NOSUID | MS_NODEV, opts), 0, "mount tmpfs on %s: %s",
                 tl_df_root, strerror(errno));
    root_mounted = 1;
}

void tl_df_side_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "/tmp/jsdf-%d-%s-XXXXXX", (int)getpid(), name);
    cr_assert_not_null(mkdtemp(out));
}

int tl_df_key_of(char *k, size_t cap, long n)
{
    return snprintf(k, cap, "key:%08ld", n);
}

void tl_df_val_of(unsigned char *v, long n)
{
    for (size_t i = 0; i < TL_DF_VAL_LEN; i++)
        v[i] = (unsigned char)(n * 31 + (long)i);
}

JET_ERR tl_df_put_key(js_session *s, long n)
{
    char k[32];
    unsigned char v[TL_DF_VAL_LEN];
    int kl = tl_df_key_of(k, sizeof k, n);

    tl_df_val_of(v, n);
    return js_put(s, k, (size_t)kl, v, sizeof v);
}

void tl_df_expect_key(js_session *s, long n)
{
    char k[32];
    unsigned char want[TL_DF_VAL_LEN];
    int kl = tl_df_key_of(k, sizeof k, n);
    void *v = NULL;
    size_t vl = 0;
    JET_ERR e = js_get(s, k, (size_t)kl, &v, &vl);

    cr_assert_eq(e, JET_errSuccess, "acknowledged key %s: %s (%s)", k, js_errname(e), js_errdetail());
    tl_df_val_of(want, n);
    cr_assert(vl == TL_DF_VAL_LEN && memcmp(v, want, TL_DF_VAL_LEN) == 0, "key %s has the wrong value", k);
    free(v);
}

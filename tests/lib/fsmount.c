/*
 * fsmount.c - jetsnapfs mounted for real (see fsmount.h).
 */
#include "fsmount.h"
#include "respcl.h"
#include "proc.h"
#include "testlib.h"
#include "../../fs/daemon/control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char tl_root[PATH_MAX], tl_dbdir[PATH_MAX], tl_mnt[PATH_MAX], tl_bk[PATH_MAX];
char tl_log[PATH_MAX], tl_sock[PATH_MAX], tl_daemon_bin[PATH_MAX];
pid_t tl_daemon_pid = -1;

static int fuse_usable(void)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int tl_is_mounted(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192], mp[PATH_MAX];
    int found = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "%*u %*u %*s %*s %4095s", mp) == 1 && strcmp(mp, path) == 0 &&
            strstr(line, " - fuse") != NULL)
            found = 1;
    fclose(f);
    return found;
}

void tl_fs_setup(const char *name, int root_mode)
{
    char t[PATH_MAX];

    if (!fuse_usable())
        cr_skip_test("/dev/fuse cannot be opened");
    snprintf(t, sizeof t, "/tmp/%s.XXXXXX", name);
    cr_assert_not_null(mkdtemp(t));
    cr_assert_not_null(realpath(t, tl_root));
    if (root_mode != 0)
        cr_assert_eq(chmod(tl_root, (mode_t)root_mode), 0);
    tl_pathf(tl_dbdir, "%s/db", tl_root);
    tl_pathf(tl_mnt, "%s/mnt", tl_root);
    tl_pathf(tl_bk, "%s/bk", tl_root);
    tl_pathf(tl_log, "%s/daemon.log", tl_root);
    tl_pathf(tl_sock, "%s/jetsnap.sock", tl_dbdir);
    cr_assert_eq(mkdir(tl_mnt, 0755), 0);
    cr_assert_eq(mkdir(tl_bk, 0755), 0);
    tl_build_bin(tl_daemon_bin, "jetsnapfs");
    tl_daemon_pid = -1;
}

void tl_fs_mount_setup(void)
{
    tl_fs_setup("jetsnap-fs", 0);
}

void tl_fs_unmount(void)
{
    if (tl_daemon_pid > 0) {
        kill(tl_daemon_pid, SIGKILL);
        waitpid(tl_daemon_pid, NULL, 0);
        tl_daemon_pid = -1;
    }
    if (tl_root[0] == '\0')
        return;
    for (int i = 0; i < 50 && tl_is_mounted(tl_mnt); i++) {
        umount2(tl_mnt, MNT_DETACH);
        tl_sleep_ms(20);
    }
}

void tl_fs_teardown(void)
{
    tl_fs_unmount();
    if (tl_root[0] != '\0')
        tl_rmrf(tl_root);
}

void tl_fs_dump_log(void)
{
    char *l = tl_slurp(tl_log, NULL);

    if (l != NULL && *l != '\0')
        fprintf(stderr, "---- daemon output (%s):\n%s----\n", tl_log, l);
    free(l);
}

pid_t tl_fs_exec(int fg, const char *opts, int flags, char *env)
{
    pid_t pid = fork();

    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(tl_log, O_WRONLY | O_CREAT | (flags & TL_LOG_APPEND ? O_APPEND : O_TRUNC), 0644);
        if (fd >= 0) {
            if (flags & TL_LOG_STDOUT)
                dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (env != NULL)
            putenv(env);
        if (fg)
            execl(tl_daemon_bin, tl_daemon_bin, "-f", "-o", opts, tl_dbdir, tl_mnt, (char *)NULL);
        else
            execl(tl_daemon_bin, tl_daemon_bin, "-o", opts, tl_dbdir, tl_mnt, (char *)NULL);
        _exit(127);
    }
    return pid;
}

void tl_fs_spawn(const char *opts, int wait_idle)
{
    int64_t end = tl_now_ms() + 15000;
    struct stat sb;
    int status;

    tl_daemon_pid = tl_fs_exec(1, opts, TL_LOG_APPEND | TL_LOG_STDOUT, NULL);
    while (!tl_is_mounted(tl_mnt) || stat(tl_mnt, &sb) != 0) {
        if (waitpid(tl_daemon_pid, &status, WNOHANG) == tl_daemon_pid) {
            tl_daemon_pid = -1;
            tl_fs_dump_log();
            cr_assert_fail("daemon exited before mounting (status %d)", status);
        }
        cr_assert(tl_now_ms() < end, "not mounted after 15 s");
        tl_sleep_ms(10);
    }
    if (wait_idle)
        tl_wait_state("idle", 30000, NULL);
}

void tl_fs_start_opts(const char *opts, int wait_idle)
{
    char o[1024];

    snprintf(o, sizeof(o), "auto_unmount%s%s", opts[0] ? "," : "", opts);
    tl_fs_spawn(o, wait_idle);
}

void tl_fs_start(void)
{
    tl_fs_start_opts("create", 1);
}

void tl_fs_wait_ping(const char *sock)
{
    int64_t end = tl_now_ms() + 20000;
    int status;

    while (!tl_resp_ping(sock)) {
        if (tl_daemon_pid > 0 && waitpid(tl_daemon_pid, &status, WNOHANG) == tl_daemon_pid) {
            tl_daemon_pid = -1;
            tl_fs_dump_log();
            cr_assert_fail("daemon exited before answering (status %d)", status);
        }
        cr_assert(tl_now_ms() < end, "no PONG on %s after 20 s", sock);
        tl_sleep_ms(10);
    }
}

int tl_fs_stop(int sig, int64_t *ms)
{
    int64_t t0 = tl_now_ms();
    int status;

    cr_assert(tl_daemon_pid > 0);
    status = tl_stop(tl_daemon_pid, sig, 20000);
    tl_daemon_pid = -1;
    if (ms != NULL)
        *ms = tl_now_ms() - t0;
    return status;
}

char *tl_mnt_file(const char *name)
{
    char p[PATH_MAX];

    tl_pathf(p, "%s/%s", tl_mnt, name);
    return tl_slurp(p, NULL);
}

int tl_status_value(const char *status, const char *key, char *out, size_t cap)
{
    char pat[64];
    const char *p, *e;

    snprintf(pat, sizeof(pat), "%s: ", key);
    for (p = status; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, pat, strlen(pat)) == 0) {
            p += strlen(pat);
            e = strchr(p, '\n');
            snprintf(out, cap, "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
            return 0;
        }
    return -1;
}

void tl_status_get(const char *key, char *out, size_t cap)
{
    char *s = tl_mnt_file("status");

    if (s == NULL) {
        int e = errno;
        tl_fs_dump_log();
        cr_assert_fail("cannot read status: %s", strerror(e));
    }
    cr_assert_eq(tl_status_value(s, key, out, cap), 0, "no key %s in status:\n%s", key, s);
    free(s);
}

void tl_wait_state(const char *states, long timeout_ms, char *state_out)
{
    char st[64], pat[80], hay[256];
    int64_t end = tl_now_ms() + timeout_ms;

    snprintf(hay, sizeof(hay), "|%s|", states);
    for (;;) {
        tl_status_get("state", st, sizeof(st));
        snprintf(pat, sizeof(pat), "|%s|", st);
        if (strstr(hay, pat) != NULL)
            break;
        cr_assert(tl_now_ms() < end, "status state stayed '%s', wanted %s", st, states);
        tl_sleep_ms(20);
    }
    if (state_out != NULL)
        strcpy(state_out, st);
}

int tl_ctl_shell(const char *shell, const char *cmd, char *err, size_t errcap)
{
    char ctl[PATH_MAX], errfile[PATH_MAX];
    int status;
    pid_t pid;

    tl_pathf(ctl, "%s/control", tl_mnt);
    tl_pathf(errfile, "%s/sh.err", tl_root);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(shell, shell, "-c", "echo \"$1\" > \"$2\"", "sh", cmd, ctl, (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (err != NULL) {
        char *e = tl_slurp(errfile, NULL);
        snprintf(err, errcap, "%s", e != NULL ? e : "");
        free(e);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tl_ctl_write(const char *cmd)
{
    char ctl[PATH_MAX], line[CTL_CMD_MAX + 2];
    int fd, rc = 0;
    size_t n = (size_t)snprintf(line, sizeof(line), "%s\n", cmd);

    tl_pathf(ctl, "%s/control", tl_mnt);
    fd = open(ctl, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (write(fd, line, n) != (ssize_t)n)
        rc = errno;
    close(fd);
    return rc;
}

void tl_ctl_refused(const char *cmd, int e)
{
    char err[1024];
    int rc;

    rc = tl_ctl_shell("/bin/bash", cmd, err, sizeof(err));
    cr_expect_neq(rc, 0, "'%s' accepted through the shell", cmd);
    cr_expect(strstr(err, strerror(e)) != NULL, "'%s': shell said '%s', wanted %s", cmd, err,
              strerror(e));
    rc = tl_ctl_write(cmd);
    cr_expect_eq(rc, e, "'%s': errno %d (%s), wanted %d (%s)", cmd, rc, strerror(rc), e,
                 strerror(e));
}

int tl_list_dir(const char *path, char names[][NAME_MAX + 1], int max, int regular_only)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL && n < max) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (regular_only && de->d_type != DT_REG)
            continue;
        snprintf(names[n++], NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, NAME_MAX + 1, (int (*)(const void *, const void *))strcmp);
    return n;
}

int tl_count_entries(const char *path)
{
    char names[64][NAME_MAX + 1];

    return tl_list_dir(path, names, 64, 0);
}

void tl_fill_instance(int n, size_t vsize)
{
    js_instance *inst;
    js_session *s;
    js_params prm;
    char key[32];
    uint8_t *v = malloc(vsize);
    uint64_t x = 88172645463325252ull;

    cr_assert_not_null(v);
    cr_assert_eq(js_create(tl_dbdir, NULL), JET_errSuccess, "%s", js_errdetail());
    js_params_default(&prm);
    prm.commit_mode = JS_COMMIT_LAZY;   /* js_close makes it all durable */
    cr_assert_eq(js_open(tl_dbdir, &prm, &inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_session_open(inst, &s), JET_errSuccess);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < vsize; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[j] = (uint8_t)x;
        }
        snprintf(key, sizeof(key), "k%06d", i);
        cr_assert_eq(js_put(s, key, strlen(key), v, vsize), JET_errSuccess, "%s", js_errdetail());
    }
    js_session_close(s);
    cr_assert_eq(js_close(inst), JET_errSuccess);
    free(v);
}

int tl_events_have(const char *events, int id)
{
    char pat[32];

    snprintf(pat, sizeof(pat), "Z %d ", id);
    return strstr(events, pat) != NULL;
}

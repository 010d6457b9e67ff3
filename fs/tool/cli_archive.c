/*
 * cli_archive.c - the restore side of continuous archiving (SPEC 8) in
 * `jetsnap restore` and `jetsnap verify`: --restore-command fetches the
 * generations after the set's last one, by name, into a private temporary
 * directory until the command fails; the engine then replays them strictly
 * (signature, chain and every block checked, a bad one refused with its
 * error); --until-time parses RFC 3339.
 */
#include "cli.h"
#include "proto/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* sh -c cmd, stdin /dev/null, output to our stderr; 0 on exit status 0. */
static int run_sh(const char *cmd)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || dup2(fd, 0) < 0 || dup2(2, 1) < 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int cli_fetch_generations(const char *backup, const char *cmd, char *dir, size_t cap, uint32_t *n)
{
    js_info info;
    const char *tmp = getenv("TMPDIR");
    *n = 0;
    /* A failing command ends the roll-forward, so its exit status must not
     * be lost: with SIGCHLD ignored (inherited) the kernel would reap it
     * and every fetch would look failed.  Cannot fail for SIGCHLD. */
    (void)signal(SIGCHLD, SIG_DFL);
    JET_ERR err = js_info_read(backup, &info);
    if (err)
        return err;
    snprintf(dir, cap, "%s/jetsnap-fetch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return js_fail(js_err_from_errno(errno), "cannot make a directory for fetched generations: %s",
                       strerror(errno));
    for (uint32_t g = info.log_gen_max + 1; g != 0; g++) {
        char name[32], path[PATH_MAX], line[8192];
        snprintf(name, sizeof name, "edb%08X.log", g);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (proto_expand_command(cmd, path, name, line, sizeof line) != 0)
            return js_fail(JET_errInvalidParameter, "--restore-command is too long once expanded");
        if (run_sh(line) != 0 || access(path, F_OK) != 0) {
            unlink(path);   /* a partial file is no generation */
            break;
        }
        (*n)++;
    }
    fprintf(stderr, "restore: fetched %u generation%s after %08X\n", *n, *n == 1 ? "" : "s",
            info.log_gen_max);
    return JET_errSuccess;
}

void cli_fetch_cleanup(const char *dir)
{
    char line[PATH_MAX + 16];
    if (dir[0] == '\0')
        return;
    snprintf(line, sizeof line, "rm -rf '%s'", dir);   /* mkdtemp's name: no quote in it */
    (void)run_sh(line);
}

int cli_parse_rfc3339(const char *s, int64_t *us)
{
    struct tm tm;
    char *p;
    memset(&tm, 0, sizeof tm);
    if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL && (p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm)) == NULL)
        return -1;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 6; digits++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    time_t t = timegm(&tm);
    *us = ((int64_t)t - off) * 1000000 + frac;
    return 0;
}

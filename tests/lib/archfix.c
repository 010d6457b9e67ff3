/*
 * archfix.c - the archiving tests' shared fixture (archfix.h).
 */
#include "archfix.h"
#include "fsmount.h"
#include "respcl.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

char tl_arch[PATH_MAX];

void tl_arch_start(const char *extra, const char *cmd)
{
    char o[4096];
    tl_pathf(tl_arch, "%s/archive", tl_root);
    if (mkdir(tl_arch, 0700) != 0)
        cr_assert_eq(errno, EEXIST, "mkdir %s: %s", tl_arch, strerror(errno));
    snprintf(o, sizeof o, "create,log_file_size=64K%s%s,archive_command=%s", extra[0] ? "," : "", extra, cmd);
    tl_fs_start_opts(o, 1);
}

void tl_arch_set_key(const char *k, const char *v)
{
    tl_client *c = tl_cl_open(tl_sock);
    tl_cl_cmd(c, "SET", k, v, NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_close(c);
}

void tl_arch_fill(int from, int n)
{
    tl_client *c = tl_cl_open(tl_sock);
    char key[32], *val = malloc(4001);
    cr_assert_not_null(val);
    memset(val, 'v', 4000);
    val[4000] = '\0';
    for (int i = from; i < from + n; i++) {
        snprintf(key, sizeof key, "k%06d", i);
        tl_cl_cmd(c, "SET", key, val, NULL);
        EXPECT(c, "+OK\r\n");
    }
    free(val);
    tl_cl_close(c);
}

long tl_arch_status_gen(const char *key)
{
    char v[256];
    tl_status_get(key, v, sizeof v);
    return strcmp(v, "-") == 0 ? -1 : strtol(v, NULL, 16);
}

int64_t tl_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tl_rfc3339_us(int64_t us, char *out, size_t cap)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

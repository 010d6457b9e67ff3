/*
 * jstool.c - the `jetsnap` tool run as a subprocess (see jstool.h).
 */
#include <criterion/criterion.h>

#include "jstool.h"
#include "proc.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char tl_jetsnap_bin[PATH_MAX];

void tl_cli_setup(void)
{
    tl_tmp_setup("jetsnap-cli");
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
}

static pid_t cli_spawn(const char *cwd, int out, int err, const char *const *args)
{
    const char *argv[32];
    int n = 0;

    argv[n++] = tl_jetsnap_bin;
    while (args[n - 1] && n < 31) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    return tl_spawn(cwd, out, err, argv);
}

pid_t tl_cli_spawn_bg(const char *cwd, int *out, int *err, const char *const *args)
{
    *out = tl_memfd();
    *err = tl_memfd();
    return cli_spawn(cwd, *out, *err, args);
}

void tl_cli_run(struct tl_run *r, const char *cwd, const char *const *args)
{
    int out = tl_memfd(), err = tl_memfd();
    pid_t pid = cli_spawn(cwd, out, err, args);

    r->status = tl_reap(pid, 60000);
    r->out = tl_slurp_fd(out, &r->outlen);
    r->err = tl_slurp_fd(err, NULL);
    close(out);
    close(err);
}

void tl_run_free(struct tl_run *r)
{
    free(r->out);
    free(r->err);
}

void tl_cli_wait_output(int fd, const char *want)
{
    char *got = NULL;

    for (int i = 0; i < 1000; i++) {
        free(got);
        got = tl_slurp_fd(fd, NULL);
        if (strstr(got, want))
            break;
        usleep(10000);
    }
    cr_assert_not_null(strstr(got, want), "never printed '%s'; got: %s", want, got);
    free(got);
}

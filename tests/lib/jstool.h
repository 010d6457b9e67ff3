/*
 * jstool.h - the `jetsnap` tool run as a subprocess by the cli suites:
 * $BUILD/jetsnap started with stdin from /dev/null and its stdout and
 * stderr collected, each test in its own scratch directory (tl_tmp).
 */
#ifndef TL_JSTOOL_H
#define TL_JSTOOL_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

extern char tl_jetsnap_bin[PATH_MAX];   /* absolute path of $BUILD/jetsnap */

/* What a finished run of the tool left. */
struct tl_run {
    int status;                 /* exit status, or 128+signal */
    char *out, *err;            /* its stdout and stderr (malloc'd) */
    size_t outlen;
};

/* The cli suites' .init: tl_tmp ("jetsnap-cli") and tl_jetsnap_bin. */
void tl_cli_setup(void);

/* Start `jetsnap ARGS` (args NULL-terminated) in cwd (NULL: ours), stdin
 * from /dev/null, stdout and stderr into fresh memfds returned in *out and
 * *err (read them with tl_slurp_fd while it runs). */
pid_t tl_cli_spawn_bg(const char *cwd, int *out, int *err, const char *const *args);

/* Wait (10 s at most) until the output a tool started by tl_cli_spawn_bg
 * wrote to fd contains want; fails the test otherwise. */
void tl_cli_wait_output(int fd, const char *want);

/* Run `jetsnap ARGS` in cwd to completion (60 s at most) into *r. */
void tl_cli_run(struct tl_run *r, const char *cwd, const char *const *args);

/* Free what a run collected. */
void tl_run_free(struct tl_run *r);

/* Run `jetsnap ARG...` in our directory into *r. */
#define RUN(r, ...) tl_cli_run((r), NULL, (const char *const[]){ __VA_ARGS__, NULL })

/* Run `jetsnap ARG...` and require exit 0. */
#define RUN_OK(...) do {                                                        \
        struct tl_run r_;                                                       \
        RUN(&r_, __VA_ARGS__);                                                  \
        cr_assert_eq(r_.status, 0, "exit %d, stderr: %s", r_.status, r_.err);   \
        tl_run_free(&r_);                                                       \
    } while (0)

#endif

/*
 * proc.h - running programs from a test: shell commands, a program with
 * its output captured, a child started in the background and reaped with
 * a deadline.  Exit statuses are given as a shell gives them: the exit
 * code, or 128 + the signal that killed the program.
 */
#ifndef TL_PROC_H
#define TL_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Run the printf-formatted command with /bin/sh (system(3)); its exit
 * code, 128 when it did not exit. */
int tl_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The standard output of the printf-formatted shell command (malloc'd,
 * NUL-terminated); asserts the command could be started. */
char *tl_sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Start argv[0] (a path; argv NULL-terminated) with stdin from /dev/null,
 * stdout and stderr into the descriptors out and err, in directory cwd
 * (NULL: ours).  The child exits 126 when it cannot set that up, 127 when
 * the exec fails. */
pid_t tl_spawn(const char *cwd, int out, int err, const char *const *argv);

/* Wait for pid at most timeout_ms; SIGKILL it and fail the test if it
 * overstays.  Its exit status. */
int tl_reap(pid_t pid, int timeout_ms);

/* Send sig to pid and wait for it at most timeout_ms; fail the test
 * (after a SIGKILL) if it is still there.  Its raw wait status. */
int tl_stop(pid_t pid, int sig, long timeout_ms);

/* An anonymous file (memfd, close-on-exec) to collect a child's output. */
int tl_memfd(void);

/* Run prog with the NULL-terminated arguments that follow (found on PATH),
 * output to /dev/null, to completion; its exit code, -1 when it did not
 * exit. */
int tl_run(const char *prog, ...);

/* Run argv (found on PATH) with stdin fed from in[0..inlen) and stdout
 * into out (at most outcap - 1 bytes, NUL-terminated); its exit status. */
int tl_run_io(char *const argv[], const char *in, size_t inlen, char *out, size_t outcap);

#endif

/*
 * proc.c - running programs from a test (see proc.h).
 */
#include "proc.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int tl_sh(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

char *tl_sh_out(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    size_t cap = 4096, len = 0, n;
    char *out;
    va_list ap;
    FILE *f;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    out = malloc(cap);
    cr_assert_not_null(out);
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
            cr_assert_not_null(out);
        }
    }
    out[len] = '\0';
    pclose(f);
    return out;
}

pid_t tl_spawn(const char *cwd, int out, int err, const char *const *argv)
{
    pid_t pid = fork();

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);

        if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int tl_reap(pid_t pid, int timeout_ms)
{
    int st = 0;

    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            break;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("process %d did not finish within %d ms", (int)pid, timeout_ms);
        }
        usleep(10000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tl_stop(pid_t pid, int sig, long timeout_ms)
{
    int64_t end = tl_now_ms() + timeout_ms;
    int status = -1;

    kill(pid, sig);
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (tl_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("process %d still running %ld ms after signal %d", (int)pid, timeout_ms,
                           sig);
        }
        tl_sleep_ms(5);
    }
    return status;
}

int tl_memfd(void)
{
    int fd = memfd_create("jetsnap-test-output", MFD_CLOEXEC);

    cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
    return fd;
}

int tl_run(const char *prog, ...)
{
    const char *argv[16];
    va_list ap;
    pid_t pid;
    int n = 0, status;

    argv[n++] = prog;
    va_start(ap, prog);
    while (n < 15 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(prog, (char *const *)argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int tl_run_io(char *const argv[], const char *in, size_t inlen, char *out, size_t outcap)
{
    int pin[2], pout[2], st;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    cr_assert_eq(pipe(pin), 0);
    cr_assert_eq(pipe(pout), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        close(pin[1]);
        close(pout[0]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s (scripts/deps.sh installs it)\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    if (in && inlen)
        cr_assert_eq(write(pin[1], in, inlen), (ssize_t)inlen);
    close(pin[1]);
    while (got + 1 < outcap && (n = read(pout[0], out + got, outcap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(pout[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

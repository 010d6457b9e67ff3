/*
 * test_crash.c - a forked child commits durably and is SIGKILLed at random
 * moments; after each kill the parent reopens (crash recovery) and checks
 * that every acknowledged commit is there and that no rolled-back or
 * unacknowledged transaction is partly visible.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "testlib.h"

#define ROUNDS 100

static js_params crash_params(void)
{
    js_params p;
    js_params_default(&p);
    p.commit_mode = JS_COMMIT_DURABLE;
    p.log_file_size = 64 << 10;     /* rolls often: crashes land inside rolls too */
    p.cache_size = 4 << 20;
    p.checkpoint_ms = 20;           /* and inside checkpoints */
    return p;
}

/* The child: transactions of two keys a:N and b:N (plus a value that grows
 * into overflow pages now and then), acknowledged to the parent through the
 * pipe after commit returns; every fifth transaction is rolled back. */
static void child_main(const char *dir, int ackfd, long start)
{
    js_params p = crash_params();
    js_instance *inst;
    js_session *s;
    if (js_open(dir, &p, &inst) || js_session_open(inst, &s))
        _exit(3);
    static unsigned char val[20000];
    for (long n = start;; n++) {
        char ka[32], kb[32];
        int kal = snprintf(ka, sizeof ka, "a:%08ld", n), kbl = snprintf(kb, sizeof kb, "b:%08ld", n);
        size_t vl = (n % 17 == 0) ? 12000 : (size_t)(n % 300);
        memset(val, (int)(n & 0xff), vl);
        if (js_txn_begin(s, 0))
            _exit(4);
        if (js_put(s, ka, (size_t)kal, val, vl) || js_put(s, kb, (size_t)kbl, val, vl))
            _exit(5);
        if (n % 5 == 4) {
            char kr[32];
            int krl = snprintf(kr, sizeof kr, "r:%08ld", n);
            if (js_put(s, kr, (size_t)krl, "x", 1) || js_txn_rollback(s))
                _exit(6);
            continue;
        }
        if (js_txn_commit(s, 0))
            _exit(7);
        if (write(ackfd, &n, sizeof n) != sizeof n)
            _exit(8);
    }
}

/* Everything acknowledged is present whole, nothing is half there, nothing
 * rolled back is there.  Returns the next sequence number to use. */
static long verify(const char *dir, long acked_max, long first)
{
    js_params p = crash_params();
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    long last_present = first - 1;
    js_cursor *c;
    OK(js_cursor_open(s, &c));
    JET_ERR e = js_cursor_seek(c, NULL, 0);
    long na = 0, nb = 0;
    while (e == JET_errSuccess) {
        const void *k, *v;
        size_t kl, vl;
        OK(js_cursor_key(c, &k, &kl));
        OK(js_cursor_value(c, &v, &vl));
        const char *ks = k;
        cr_assert(ks[0] == 'a' || ks[0] == 'b', "unexpected key %.*s (rolled back?)", (int)kl, ks);
        long n = strtol(ks + 2, NULL, 10);
        size_t want = (n % 17 == 0) ? 12000 : (size_t)(n % 300);
        cr_assert_eq(vl, want, "key %.*s has %zu bytes", (int)kl, ks, vl);
        cr_assert(vl == 0 || ((const unsigned char *)v)[vl - 1] == (unsigned char)(n & 0xff));
        if (ks[0] == 'a') {
            na++;
            if (n > last_present)
                last_present = n;
        } else {
            nb++;
        }
        e = js_cursor_next(c);
    }
    cr_assert_eq(e, JET_errRecordNotFound);
    js_cursor_close(c);
    cr_assert_eq(na, nb, "a transaction is partly visible: %ld a-keys, %ld b-keys", na, nb);
    /* Every acknowledged transaction is there; at most the one in flight
     * beyond it (committed, not yet acknowledged) may be there too. */
    cr_assert(last_present >= acked_max, "acknowledged %ld but only %ld present", acked_max, last_present);
    for (long n = 0; n <= acked_max; n++) {
        if (n % 5 == 4)
            continue;
        char ka[32];
        int kal = snprintf(ka, sizeof ka, "a:%08ld", n);
        void *v;
        size_t vl;
        e = js_get(s, ka, (size_t)kal, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "acknowledged key %s lost", ka);
        free(v);
    }
    js_session_close(s);
    OK(js_close(inst));
    return last_present + 1;
}

Test(crash, sigkill_during_durable_commits, .timeout = 900)
{
    char *dir = tl_tmpdir("jscrash");
    char inst_dir[64];
    snprintf(inst_dir, sizeof inst_dir, "%s/db", dir);
    js_params p = crash_params();
    OK(js_create(inst_dir, &p));
    unsigned seed = (unsigned)time(NULL);
    long next = 0, acked_max = -1;
    for (int round = 0; round < ROUNDS; round++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(inst_dir, fds[1], next);
        }
        close(fds[1]);
        /* Kill after a random number of acknowledgements (1..40) or a random
         * delay after the first one, whichever comes first.  The delay runs
         * from the first acknowledgement, not the fork: opening (recovery)
         * takes as long as it takes (longer under ASan), and a delay eaten
         * by it left a round one commit. */
        int want = 1 + rand_r(&seed) % 40;
        int delay_ms = 1 + rand_r(&seed) % 60;
        long first_ms = -1;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int got = 0;
        for (;;) {
            struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
            clock_gettime(CLOCK_MONOTONIC, &now);
            long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            if (got >= want || el >= 10000)
                break;
            if (first_ms >= 0 && el - first_ms >= delay_ms)
                break;
            if (poll(&pfd, 1, 1) == 1) {
                long n;
                ssize_t r = read(fds[0], &n, sizeof n);
                if (r != sizeof n)
                    break;
                acked_max = n;
                if (got++ == 0)
                    first_ms = el;
            }
        }
        kill(pid, SIGKILL);
        /* Acknowledgements already in the pipe were acknowledged too. */
        long n;
        while (read(fds[0], &n, sizeof n) == sizeof n)
            acked_max = n;
        close(fds[0]);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child ended by itself (status %d): an engine call failed", st);
        next = verify(inst_dir, acked_max, 0);
        if (next % 5 == 4)
            next++;
    }
    cr_assert(acked_max > ROUNDS * 5, "too few commits (%ld) to mean anything", acked_max);
    cr_log_info("%d rounds, %ld transactions acknowledged", ROUNDS, acked_max);
    js_check_report rep;
    OK(js_check(inst_dir, &rep));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

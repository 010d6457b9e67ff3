/*
 * archive.c - the archiver thread (archive.h, SPEC 8): which generation is
 * next, running the command with a clean environment and a timeout, the
 * backoff, the durable state file and the archive_timeout roll.
 */
#include "archive.h"
#include "events.h"
#include "proto/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARC_BACKOFF_MAX_S 60
#define ARC_CMD_TIMEOUT_DEFAULT_S 300
#define ARC_POLL_MS 200
#define ARC_STATE "archive.state"
#define ARC_NICE 10
/* ioprio_set(2) has no libc wrapper; the values are the kernel's ABI. */
#define ARC_IOPRIO_WHO_PROCESS 1   /* with 0: the calling thread */
#define ARC_IOPRIO_CLASS_BE 2
#define ARC_IOPRIO_CLASS_SHIFT 13
#define ARC_IOPRIO_BE_LOWEST 7

/* Event ids of the archiver (the daemon's own range). */
enum { EV_ARC_FAIL = 260, EV_ARC_RECOVERED = 261, EV_ARC_START = 262, EV_ARC_ROLL = 263 };

/* archive_lag_s needs the first commit of the oldest generation not yet
 * archived, which the daemon sees only while that generation is open.
 * Generations >= gen (up to the next entry's) hold no commit older than
 * first_ms: the open generation's first commit as last seen before it
 * closed, or, for one that was opened and closed between two looks, the
 * earlier look's time.  So the age is over-stated by at most one look's
 * interval, never under-stated.  Entries are added as generations close and
 * dropped as they are archived; a full table keeps the older entry for
 * the newer generations (over-stating, again). */
#define ARC_EST_MAX 1024
struct arc_est {
    uint32_t gen;
    int64_t first_ms;
};

struct arc {
    js_instance *inst;
    struct ev_log *ev;
    char *command;
    char dbdir[PATH_MAX];
    uint64_t cmd_timeout_s, timeout_s;
    char *envp[3];              /* PATH=..., HOME=..., NULL */
    pthread_t thread;
    int stop_fd;                /* eventfd: arc_stop wakes nap() */
    int ino_fd;                 /* inotify on DBDIR (-1: none): a generation
                                   renamed into place wakes nap() */
    pthread_mutex_t lock;       /* guards stop and st */
    int stop;
    struct arc_status st;
    /* The thread's own. */
    int64_t roll_retry_at;      /* mono ms: no archive_timeout roll before */
    int roll_failing;           /* the last one failed (and said so) */
    uint32_t next;              /* next generation to archive */
    uint32_t seen;              /* newest closed generation seen */
    int64_t prev_first, prev_t; /* at the last look: the open generation's
                                   first commit (0: none yet) and the time */
    struct arc_est est[ARC_EST_MAX];
    size_t nest;
};


static int64_t mono_ms(void)
{
    return js_mono_ms();
}

/* Read DBDIR/archive.state: the newest generation archived, 0 when none. */
static uint32_t state_read(const struct arc *a)
{
    char path[PATH_MAX + 32];
    unsigned g = 0;
    snprintf(path, sizeof path, "%s/%s", a->dbdir, ARC_STATE);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    if (fscanf(f, "last_gen %x", &g) != 1)
        g = 0;
    fclose(f);
    return g;
}

/* Replace DBDIR/archive.state atomically and durably. */
static int state_write(const struct arc *a, uint32_t gen)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 32], line[32];
    snprintf(path, sizeof path, "%s/%s", a->dbdir, ARC_STATE);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", a->dbdir, ARC_STATE);
    int n = snprintf(line, sizeof line, "last_gen %08X\n", gen);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -1;
    close(fd);
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc != 0) {
        int e = errno;
        (void)unlink(tmp);  /* a cleanup: the error reported is the first one */
        errno = e;
    }
    if (rc == 0 && (fd = open(a->dbdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    return rc;
}

/* Start `sh -c cmd` in a process group of its own, standard input from
 * /dev/null, output into out_fd, no other descriptor, every signal at its
 * default.  posix_spawn, not fork: it shares the daemon's memory until the
 * exec instead of copying its page tables and marking every page of the
 * buffer pool copy-on-write (each page a committer then touches faults
 * until the child has exec'd). */
static int spawn_command(struct arc *a, const char *cmd, int out_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    char *argv[] = { "sh", "-c", (char *)cmd, NULL };
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 2)) == 0 &&
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&at, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&at, &all)) == 0 &&
        (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) == 0)
        rc = posix_spawn(pid, "/bin/sh", &fa, &at, argv, a->envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* The command is background work: it runs at nice ARC_NICE and the lowest
 * best-effort I/O priority, so its copy yields the CPUs and (with an I/O
 * scheduler that has classes) the disk to the committers.  Not the idle
 * class: under steady writes that could starve it, and the loss window
 * would grow without bound.  The shell must start with them (a command
 * that reads its own priority, or forks at once, would otherwise race a
 * change made after the spawn), so it is spawned by a short-lived thread
 * that lowers its own priorities first: a child inherits them from the
 * thread that creates it.  Not the archiver thread itself, whose
 * archive_timeout rolls write the log the committers wait for.  Best
 * effort, deliberately unchecked: failing only leaves the default
 * priority, which is correct, just less polite. */
struct spawn_low {
    struct arc *a;
    const char *cmd;
    int out_fd;
    pid_t pid;
    int rc;
};

static void *spawn_low_main(void *arg)
{
    struct spawn_low *r = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), ARC_NICE);
    (void)syscall(SYS_ioprio_set, ARC_IOPRIO_WHO_PROCESS, 0,
                  ARC_IOPRIO_CLASS_BE << ARC_IOPRIO_CLASS_SHIFT | ARC_IOPRIO_BE_LOWEST);
    r->rc = spawn_command(r->a, r->cmd, r->out_fd, &r->pid);
    return NULL;
}

/* spawn_command at the command's priorities (above). */
static int spawn_low(struct arc *a, const char *cmd, int out_fd, pid_t *pid)
{
    struct spawn_low r = { .a = a, .cmd = cmd, .out_fd = out_fd, .pid = 0, .rc = 0 };
    pthread_t t;
    int rc = pthread_create(&t, NULL, spawn_low_main, &r);
    if (rc != 0)
        return rc;
    pthread_join(t, NULL);
    *pid = r.pid;
    return r.rc;
}

/* Keep what fits of the command's output in out (used bytes so far in
 * *used, cap including the NUL); the rest is read and dropped. */
static int drain(int fd, char *out, size_t cap, size_t *used)
{
    char buf[1024];
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got == 0)
            return 1;   /* end of file: every writer is gone */
        if (got < 0)
            return errno == EINTR ? 0 : errno == EAGAIN ? 0 : 1;
        for (ssize_t i = 0; i < got && *used + 1 < cap; i++)
            out[(*used)++] = buf[i];
    }
}

/* Run cmd; 0 on exit status 0.  Its output (bounded) goes to out; *why
 * says how it failed.  The command has ended when the shell has: a
 * background process it left behind may keep the pipe open, and is not
 * waited for.  Stops early (killing the group) at the timeout or when
 * asked to stop. */
static int run_command(struct arc *a, const char *cmd, char *out, size_t cap, char *why, size_t whycap)
{
    int pfd[2], status = 0, pidfd = -1, rc = -1;
    size_t used = 0;
    pid_t pid = 0;
    out[0] = why[0] = '\0';
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(why, whycap, "pipe: %s", strerror(errno));
        return -1;
    }
    /* Only the read end: the command may expect a blocking stdout. */
    int err = fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0 ? spawn_low(a, cmd, pfd[1], &pid) : errno;
    close(pfd[1]);
    if (err != 0) {
        snprintf(why, whycap, "cannot run /bin/sh: %s", strerror(err));
        close(pfd[0]);
        return -1;
    }
    /* Readable when the shell exits (Linux 5.3); else the loop polls. */
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int64_t deadline = mono_ms() + (int64_t)a->cmd_timeout_s * 1000;
    int pipe_open = 1, killed = 0, stopping = 0, lost = 0;
    for (;;) {
        struct pollfd p[2] = { { .fd = pipe_open ? pfd[0] : -1, .events = POLLIN },
                               { .fd = pidfd, .events = POLLIN } };
        (void)poll(p, 2, pidfd >= 0 ? ARC_POLL_MS : 20);
        if (pipe_open && drain(pfd[0], out, cap, &used))
            pipe_open = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r < 0 && errno != EINTR) {
            /* Reaped by someone else (SIGCHLD ignored): the exit status is
             * unknown, so it is not a success. */
            lost = errno;
            break;
        }
        if (r == pid)
            break;
        pthread_mutex_lock(&a->lock);
        stopping = a->stop;
        pthread_mutex_unlock(&a->lock);
        if (stopping || mono_ms() >= deadline) {
            kill(-pid, SIGKILL);
            killed = 1;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
    }
    if (pipe_open)
        (void)drain(pfd[0], out, cap, &used);   /* what the shell wrote last */
    out[used] = '\0';
    close(pfd[0]);
    if (pidfd >= 0)
        close(pidfd);
    if (killed)
        snprintf(why, whycap, stopping ? "stopped with the daemon"
                                       : "timed out after %llu s: process group killed",
                 (unsigned long long)a->cmd_timeout_s);
    else if (lost)
        snprintf(why, whycap, "exit status lost: %s", strerror(lost));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = 0;
    else if (WIFEXITED(status))
        snprintf(why, whycap, "exit status %d", WEXITSTATUS(status));
    else
        snprintf(why, whycap, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return rc;
}

/* Sleep up to ms, until a file is renamed into DBDIR (a roll), or until
 * stopped; 1 when stopped. */
static int nap(struct arc *a, int64_t ms)
{
    struct pollfd p[2] = { { .fd = a->stop_fd, .events = POLLIN }, { .fd = a->ino_fd, .events = POLLIN } };
    if (poll(p, 2, (int)ms) > 0 && (p[1].revents & POLLIN)) {
        /* The events only wake us: the listing says what changed. */
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(a->ino_fd, buf, sizeof buf) > 0)
            ;
    }
    pthread_mutex_lock(&a->lock);
    int stop = a->stop;
    pthread_mutex_unlock(&a->lock);
    return stop;
}

/* archive_timeout: roll a generation holding a commit older than it.  No
 * commit since the last roll: nothing to do (no empty generations).  A
 * failed roll (no space for the next generation) is retried a second
 * later and said once, not at every look. */
static void maybe_roll(struct arc *a)
{
    if (a->timeout_s == 0 || js_instance_state(a->inst) != JS_INST_READY || mono_ms() < a->roll_retry_at)
        return;
    int64_t first = js_log_first_commit_ms(a->inst);
    if (first == 0 || js_time_ms() - first < (int64_t)a->timeout_s * 1000)
        return;
    JET_ERR err = js_log_roll(a->inst, NULL);
    if (err == JET_errSuccess) {
        if (a->roll_failing)
            ev_add(a->ev, EV_ARC_ROLL, JS_EV_INFO, "archive_timeout: the log rolls again");
        a->roll_failing = 0;
        return;
    }
    a->roll_retry_at = mono_ms() + 1000;
    if (!a->roll_failing)
        ev_add(a->ev, EV_ARC_ROLL, JS_EV_WARNING, "archive_timeout: log roll failed, retried every second: %s (%d): %s",
               js_errname(err), err, js_errdetail());
    a->roll_failing = 1;
}

/* Ship generation gen once; 0 on success. */
static int ship_one(struct arc *a, uint32_t gen, int *failing)
{
    char path[PATH_MAX], cmd[8192], why[256], *out = malloc(ARC_OUTPUT_MAX + 1);
    if (out == NULL)
        return -1;
    js_log_gen_path(a->inst, gen, path, sizeof path);
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int rc;
    if (proto_expand_command(a->command, path, name, cmd, sizeof cmd) != 0) {
        snprintf(why, sizeof why, "archive_command too long once expanded");
        out[0] = '\0';
        rc = -1;
    } else {
        rc = run_command(a, cmd, out, ARC_OUTPUT_MAX + 1, why, sizeof why);
    }
    if (rc == 0 && state_write(a, gen) != 0) {
        snprintf(why, sizeof why, "cannot record it in %s/%s: %s", a->dbdir, ARC_STATE, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        if (*failing)
            ev_add(a->ev, EV_ARC_RECOVERED, JS_EV_INFO, "archiving works again: %s archived", name);
        *failing = 0;
        js_log_archive_pin(a->inst, gen + 1);
        pthread_mutex_lock(&a->lock);
        a->st.last_gen = gen;
        a->st.last_error[0] = '\0';
        pthread_mutex_unlock(&a->lock);
    } else {
        int stopping;
        pthread_mutex_lock(&a->lock);
        stopping = a->stop;
        snprintf(a->st.last_error, sizeof a->st.last_error, "%s: %s", name, why);
        pthread_mutex_unlock(&a->lock);
        if (!stopping)
            ev_add(a->ev, EV_ARC_FAIL, JS_EV_WARNING, "archiving %s failed (%s), will retry; output: %s",
                   name, why, out[0] ? out : "(none)");
        *failing = 1;
    }
    free(out);
    return rc;
}

static void est_add(struct arc *a, uint32_t gen, int64_t first_ms)
{
    if (a->nest < ARC_EST_MAX)
        a->est[a->nest++] = (struct arc_est){ gen, first_ms };
}

/* Record what closed since the last look: f is the open generation's first
 * commit now (read before the listing, so a roll in between makes f older
 * than the truth, not newer), max_gen the newest closed generation. */
static void est_note(struct arc *a, int64_t now, int64_t f, uint32_t max_gen)
{
    if (max_gen > a->seen) {
        est_add(a, a->seen + 1, a->prev_first ? a->prev_first : a->prev_t);
        if (max_gen > a->seen + 1)
            est_add(a, a->seen + 2, a->prev_t);
        a->seen = max_gen;
    }
    a->prev_first = f;
    a->prev_t = now;
}

/* The age of the oldest commit not archived, in ms. */
static uint64_t lag_ms(struct arc *a, int64_t now, int64_t f, uint32_t max_gen)
{
    size_t drop = 0;
    while (drop + 1 < a->nest && a->est[drop + 1].gen <= a->next)
        drop++;
    if (drop) {
        memmove(a->est, a->est + drop, (a->nest - drop) * sizeof a->est[0]);
        a->nest -= drop;
    }
    int64_t oldest = f;
    if (max_gen >= a->next && a->nest && a->est[0].gen <= a->next)
        oldest = a->est[0].first_ms;
    return oldest > 0 && now > oldest ? (uint64_t)(now - oldest) : 0;
}

/* Look at the log: what closed, and the status from it. */
static uint32_t look(struct arc *a)
{
    uint32_t min_gen = 0, max_gen = 0;
    int64_t now = js_time_ms(), f = js_log_first_commit_ms(a->inst);
    if (js_log_closed_range(a->inst, &min_gen, &max_gen) != JET_errSuccess)
        min_gen = max_gen = 0;
    est_note(a, now, f, max_gen);
    uint64_t pending = max_gen >= a->next ? (uint64_t)(max_gen - a->next + 1) : 0;
    uint64_t lag = lag_ms(a, now, f, max_gen);
    pthread_mutex_lock(&a->lock);
    a->st.pending = pending;
    a->st.lag_ms = lag;
    pthread_mutex_unlock(&a->lock);
    return max_gen;
}

static void *arc_main(void *arg)
{
    struct arc *a = arg;
    int failing = 0;
    int64_t retry_at = 0, backoff_s = 1;
    for (;;) {
        maybe_roll(a);
        uint32_t max_gen = look(a);
        if (max_gen >= a->next && mono_ms() >= retry_at) {
            if (ship_one(a, a->next, &failing) == 0) {
                a->next++;
                backoff_s = 1;
                retry_at = 0;
                continue;
            }
            retry_at = mono_ms() + backoff_s * 1000;
            backoff_s = backoff_s * 2 > ARC_BACKOFF_MAX_S ? ARC_BACKOFF_MAX_S : backoff_s * 2;
        }
        if (nap(a, ARC_POLL_MS))
            break;
    }
    return NULL;
}

static char *env_entry(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    size_t n = strlen(name) + strlen(v ? v : fallback) + 2;
    char *e = malloc(n);
    if (e != NULL)
        snprintf(e, n, "%s=%s", name, v ? v : fallback);
    return e;
}

static void arc_free(struct arc *a)
{
    free(a->command);
    free(a->envp[0]);
    free(a->envp[1]);
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    if (a->ino_fd >= 0)
        close(a->ino_fd);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static struct arc *arc_new(const struct arc_config *cfg, js_instance *inst, struct ev_log *ev)
{
    struct arc *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    a->inst = inst;
    a->ev = ev;
    a->cmd_timeout_s = cfg->command_timeout_s ? cfg->command_timeout_s : ARC_CMD_TIMEOUT_DEFAULT_S;
    a->timeout_s = cfg->timeout_s;
    snprintf(a->dbdir, sizeof a->dbdir, "%s", cfg->dbdir);
    a->command = strdup(cfg->command);
    a->envp[0] = env_entry("PATH", "/usr/local/bin:/usr/bin:/bin");
    a->envp[1] = env_entry("HOME", "/");
    a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    /* Without inotify (no instances left, say) the archiver still finds
     * closed generations, ARC_POLL_MS later. */
    a->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (a->ino_fd >= 0 && inotify_add_watch(a->ino_fd, a->dbdir, IN_MOVED_TO) < 0) {
        close(a->ino_fd);
        a->ino_fd = -1;
    }
    if (a->command == NULL || a->envp[0] == NULL || a->envp[1] == NULL || a->stop_fd < 0) {
        arc_free(a);
        return NULL;
    }
    return a;
}

/* Generations already closed at start: their first commits are unknown;
 * the best bound left is when the generation before the first of them
 * closed (its file's time), else when that one itself closed. */
static int64_t closed_before_ms(struct arc *a, uint32_t gen)
{
    char path[PATH_MAX];
    struct stat sb;
    for (uint32_t g = gen - 1; g <= gen; g++) {
        js_log_gen_path(a->inst, g, path, sizeof path);
        if (g > 0 && stat(path, &sb) == 0)
            return (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    }
    return js_time_ms();
}

JET_ERR arc_start(const struct arc_config *cfg, js_instance *inst, struct ev_log *ev, struct arc **out)
{
    *out = NULL;
    if (cfg->command == NULL || cfg->command[0] == '\0')
        return JET_errSuccess;
    /* The command's exit status is what says "archived": with SIGCHLD
     * ignored (inherited from whoever started us) the kernel reaps the
     * child itself and that status is lost.  Cannot fail for SIGCHLD. */
    (void)signal(SIGCHLD, SIG_DFL);
    struct arc *a = arc_new(cfg, inst, ev);
    if (a == NULL)
        return js_fail(JET_errOutOfMemory, "archiver: %s", strerror(errno));
    uint32_t min_gen = 0, max_gen = 0, last = state_read(a);
    JET_ERR err = js_log_closed_range(inst, &min_gen, &max_gen);
    if (err) {
        arc_free(a);
        return err;
    }
    a->next = last + 1;
    a->st.last_gen = last;
    if (min_gen && a->next < min_gen) {
        if (last)
            ev_add(ev, EV_ARC_START, JS_EV_WARNING, "archive: edb%08X.log to edb%08X.log were deleted "
                   "before they were archived", a->next, min_gen - 1);
        a->next = min_gen;
    }
    a->seen = max_gen;
    a->prev_t = js_time_ms();
    if (max_gen >= a->next)
        est_add(a, a->next, closed_before_ms(a, a->next));
    js_log_archive_pin(inst, a->next);
    ev_add(ev, EV_ARC_START, JS_EV_INFO, "archiving from edb%08X.log", a->next);
    int rc = pthread_create(&a->thread, NULL, arc_main, a);
    if (rc != 0) {
        js_log_archive_pin(inst, 0);
        arc_free(a);
        return js_fail(JET_errOutOfMemory, "archiver thread: %s", strerror(rc));
    }
    *out = a;
    return JET_errSuccess;
}

void arc_stop(struct arc *a)
{
    uint64_t one = 1;
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = 1;
    pthread_mutex_unlock(&a->lock);
    /* An eventfd counter cannot be full after one write. */
    (void)!write(a->stop_fd, &one, sizeof one);
    pthread_join(a->thread, NULL);
    arc_free(a);
}

void arc_get_status(struct arc *a, struct arc_status *out)
{
    pthread_mutex_lock(&a->lock);
    *out = a->st;
    pthread_mutex_unlock(&a->lock);
}

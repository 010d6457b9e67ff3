/*
 * main.c - jetsnapfs: options, lifecycle and signals of the daemon.
 *
 * Start-up, in this order (SPEC 1):
 *   parse options (usage error: exit 2) -> fork unless -f (the parent waits
 *   on a pipe and exits 0 only once the mount and every listen endpoint
 *   answer, so `jetsnapfs ... && redis-cli -s DBDIR/jetsnap.sock ping`
 *   works; if start-up fails it exits with the child's status, the child
 *   having printed why) -> canonical DBDIR, refuse MOUNTPOINT and DBDIR
 *   nested in each other -> create the instance if asked -> js_instance_new,
 *   waiting up to INSTANCE_WAIT_MS while another process still holds it
 *   (a daemon that is stopping), then JET_errDatabaseInUse -> clear a stale
 *   mount of MOUNTPOINT -> mount and start the FUSE loop thread ->
 *   js_instance_start (recovery) in a thread, so `status` says `recovering`
 *   meanwhile -> when it is done, backups are allowed and the RESP server
 *   listens -> only then: ready (one byte to the waiting parent, READY=1 to
 *   systemd through sd_notify when NOTIFY_SOCKET is set).
 *
 * Shutdown, on SIGTERM/SIGINT/SIGHUP (through a signalfd: every thread
 * blocks them) or when the loop ends (fusermount3 -u):
 *   STOPPING=1 to systemd -> refuse new control commands (ESHUTDOWN) ->
 *   wait for recovery if it is still running -> stop the RESP server (it
 *   ends its sessions and unlinks each socket it bound, if the path is still
 *   that socket) -> lazily detach MOUNTPOINT -> stop live reads from calling
 *   the engine -> js_close (stops a running job with
 *   JET_errClientRequestToStopJetService, checkpoints, marks clean, and
 *   releases the instance lock last) -> join the job thread (it answers a
 *   `wait` writer through the detached mount) -> bounded FUSE shutdown
 *   (mount.c).  Exit 0, or 1 when start-up, recovery or the close failed.
 *
 * Why this order: the instance lock is what a daemon started next waits
 * for, so everything that names a path (the socket, MOUNTPOINT) is given up
 * before it; after js_close this process touches no path a successor may
 * own.  `fusermount3 -u MNT; jetsnapfs DBDIR MNT` thus either gets a daemon
 * that answers on its socket or JET_errDatabaseInUse, never a daemon whose
 * socket the old one removed.
 */
#include "archive.h"
#include "control.h"
#include "events.h"
#include "mount.h"
#include "opts.h"
#include "redis/server.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

/* How long a starting daemon waits for the instance lock held by another
 * process (typically the previous daemon, still checkpointing on its way
 * out) before it gives up with JET_errDatabaseInUse. */
#define INSTANCE_WAIT_MS 10000

struct daemon {
    struct fs_opts o;
    char dbdir[PATH_MAX], mountpoint[PATH_MAX], backup_root[PATH_MAX];
    int ready_fd;               /* pipe to the waiting parent, or -1 */
    int daemonized;             /* stderr is /dev/null: report to syslog */
    js_instance *inst;
    struct ev_log *ev;
    struct st_status *st;
    struct arc *arc;            /* the archiver, NULL without archive_command */
    struct ctl *ctl;
    struct mnt *mnt;
    srv_server *srv;
    int start_fd;               /* eventfd: js_instance_start returned */
    int ended_fd;               /* eventfd: the FUSE loop returned */
    pthread_t start_thread;
    int start_joinable;
    JET_ERR start_err;          /* written by the start thread before start_fd */
};

static void report(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct daemon *d, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!d->daemonized)
        fprintf(stderr, "jetsnapfs: %s\n", msg);
    syslog(LOG_ERR, "%s", msg);
}

static void report_jet(struct daemon *d, const char *what, JET_ERR err)
{
    const char *detail = js_errdetail();
    report(d, "%s: %s (%d): %s", what, js_errname(err), err,
           detail[0] != '\0' ? detail : js_errmsg(err));
}

/* Lexical normalisation of an absolute path ("//", ".", ".."). */
static void normalize(const char *in, char *out)
{
    size_t n = 0;
    const char *p = in;

    while (*p != '\0') {
        const char *e;
        size_t len;
        while (*p == '/')
            p++;
        for (e = p; *e != '\0' && *e != '/'; e++)
            ;
        len = (size_t)(e - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
        } else if (len > 0 && !(len == 1 && p[0] == '.') && n + 1 + len < PATH_MAX) {
            out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = e;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
}

/* Absolute, lexically normal form of path (relative to the cwd). */
static int absolute(const char *path, char *out)
{
    char cwd[PATH_MAX], tmp[PATH_MAX * 2];

    if (path[0] == '/') {
        snprintf(tmp, sizeof(tmp), "%s", path);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return errno;
        snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path);
    }
    if (strlen(tmp) >= PATH_MAX)
        return ENAMETOOLONG;
    normalize(tmp, out);
    return 0;
}

/* Canonical path: symlinks of the deepest existing ancestor resolved, the
 * missing rest appended as written. */
static int canonical(const char *path, char *out)
{
    char abs[PATH_MAX], head[PATH_MAX], real[PATH_MAX];
    const char *tail = "";
    char *cut;
    int rc;

    if ((rc = absolute(path, abs)) != 0)
        return rc;
    snprintf(head, sizeof(head), "%s", abs);
    for (;;) {
        if (realpath(head, real) != NULL)
            break;
        if (errno != ENOENT)
            return errno;
        cut = strrchr(head, '/');
        if (cut == NULL || cut == head) {
            snprintf(real, sizeof(real), "/");
            tail = abs + 1;
            break;
        }
        *cut = '\0';
        tail = abs + (cut - head) + 1;
    }
    if (tail[0] == '\0') {
        snprintf(out, PATH_MAX, "%s", real);
        return 0;
    }
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/",
                         tail) >= PATH_MAX)
        return ENAMETOOLONG;
    return 0;
}

static int within(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return 1;
    return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* fork() and let the parent wait until the child reports the mount ready
 * (one byte on the pipe) or dies; the parent exits with the child's
 * verdict.  Returns in the child with *ready_fd set. */
static void fork_and_wait(int *ready_fd)
{
    int p[2], status;
    pid_t pid;
    char b;
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("jetsnapfs: pipe");
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        perror("jetsnapfs: fork");
        exit(1);
    }
    if (pid == 0) {
        close(p[0]);
        setsid();   /* no terminal signals from now on */
        *ready_fd = p[1];
        return;
    }
    close(p[1]);
    do
        n = read(p[0], &b, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        exit(0);
    /* The child died or failed before mounting: it printed why. */
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        exit(WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
    exit(1);
}

/* Mount and every endpoint answer: tell systemd (a no-op without
 * NOTIFY_SOCKET) and the waiting parent, which then exits 0. */
static void announce_ready(struct daemon *d)
{
    int fd;
    char b = 0;

    sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s", d->dbdir, d->mountpoint);
    if (d->ready_fd < 0)
        return;
    /* From here on nobody reads our stderr: errors go to syslog. */
    if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (chdir("/") != 0) {
        /* Paths are canonical already; the cwd only pins a filesystem. */
    }
    d->daemonized = 1;
    mnt_log_to_syslog();
    if (write(d->ready_fd, &b, 1) != 1)
        syslog(LOG_WARNING, "could not notify the starting process");
    close(d->ready_fd);
    d->ready_fd = -1;
}

static void *start_main(void *arg)
{
    struct daemon *d = arg;
    uint64_t one = 1;

    d->start_err = js_instance_start(d->inst);
    if (d->start_err != JET_errSuccess)
        report_jet(d, "recovery failed", d->start_err);
    if (write(d->start_fd, &one, sizeof(one)) != sizeof(one))
        syslog(LOG_ERR, "start notification lost");
    return NULL;
}

static size_t backup_info(void *ctx, char *buf, size_t cap)
{
    return st_render(ctx, buf, cap);
}

/* DBDIR and the lexical MOUNTPOINT, checked against each other before
 * anything is created or locked. */
static int prepare_paths(struct daemon *d)
{
    char abs_db[PATH_MAX];
    int rc;

    /* Lexical only: a stale mount at MOUNTPOINT makes every look at it
     * fail with ENOTCONN, and it is cleared only once we hold the instance
     * (prepare_mountpoint()). */
    if ((rc = absolute(d->o.mountpoint, d->mountpoint)) != 0) {
        report(d, "%s: %s", d->o.mountpoint, strerror(rc));
        return -1;
    }
    if ((rc = absolute(d->o.dbdir, abs_db)) != 0 || (rc = canonical(d->o.dbdir, d->dbdir)) != 0) {
        report(d, "%s: %s", d->o.dbdir, strerror(rc));
        return -1;
    }
    if (within(d->mountpoint, d->dbdir) || within(d->dbdir, d->mountpoint) ||
        within(d->mountpoint, abs_db) || within(abs_db, d->mountpoint)) {
        report(d, "MOUNTPOINT %s and DBDIR %s must not lie inside each other", d->mountpoint,
               d->dbdir);
        return -1;
    }
    return 0;
}

/* Wait up to ms for a signal on sfd; 1 when one came (it stays queued). */
static int signal_within(int sfd, int ms)
{
    struct pollfd pf = { sfd, POLLIN, 0 };
    return poll(&pf, 1, ms) == 1;
}

/* Create the instance if asked, then open it.  While another process holds
 * it, retry for up to INSTANCE_WAIT_MS (a stopping daemon releases it last,
 * after its socket and mount are gone), unless a signal asks us to stop. */
static int acquire_instance(struct daemon *d, int sfd)
{
    struct stat sb;
    char path[PATH_MAX + 32];
    int64_t deadline = js_mono_ms() + INSTANCE_WAIT_MS;
    int told = 0;
    JET_ERR err;

    snprintf(path, sizeof(path), "%s/%s", d->dbdir, JS_DB_FILE);
    if (d->o.create && stat(path, &sb) != 0 && errno == ENOENT) {
        err = js_create(d->dbdir, &d->o.params);
        if (err != JET_errSuccess) {
            report_jet(d, d->dbdir, err);
            return -1;
        }
    }
    for (;;) {
        err = js_instance_new(d->dbdir, &d->o.params, &d->inst);
        if (err != JET_errDatabaseInUse || js_mono_ms() >= deadline)
            break;
        if (!told) {
            syslog(LOG_NOTICE, "%s is open in another process: waiting up to %d s for it",
                   d->dbdir, INSTANCE_WAIT_MS / 1000);
            sd_notifyf(0, "STATUS=waiting for %s (open in another process)", d->dbdir);
            told = 1;
        }
        if (signal_within(sfd, 25))
            break;
    }
    if (err != JET_errSuccess) {
        report_jet(d, d->dbdir, err);
        d->inst = NULL;
        return -1;
    }
    return 0;
}

/* MOUNTPOINT (stale mount cleared, canonical, a directory) and
 * backup_root, once the instance is ours. */
static int prepare_mountpoint(struct daemon *d)
{
    struct stat sb;
    int rc;

    if ((rc = mnt_clear_stale(d->mountpoint)) != 0) {
        report(d, "%s: %s", d->mountpoint,
               rc == EBUSY ? "already mounted by a live filesystem" : strerror(rc));
        return -1;
    }
    if ((rc = canonical(d->o.mountpoint, d->mountpoint)) != 0 ||
        (rc = stat(d->mountpoint, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR) != 0) {
        report(d, "mountpoint %s: %s", d->o.mountpoint, strerror(rc));
        return -1;
    }
    if (within(d->mountpoint, d->dbdir) || within(d->dbdir, d->mountpoint)) {
        report(d, "MOUNTPOINT %s and DBDIR %s must not lie inside each other", d->mountpoint,
               d->dbdir);
        return -1;
    }
    if (d->o.backup_root != NULL) {
        if ((rc = canonical(d->o.backup_root, d->backup_root)) != 0 ||
            (rc = stat(d->backup_root, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR) != 0) {
            report(d, "backup_root=%s: %s", d->o.backup_root, strerror(rc));
            return -1;
        }
        if (within(d->backup_root, d->mountpoint)) {
            report(d, "backup_root %s lies inside MOUNTPOINT", d->backup_root);
            return -1;
        }
    }
    return 0;
}

/* Serve until a signal, the end of the FUSE session or a failed start:
 * finish the start when the start thread reports (recovery done: backups
 * allowed, sockets listening, ready announced).  Returns the exit status. */
static int serve(struct daemon *d, int sfd)
{
    int exit_code = 0;
    JET_ERR jerr;

    for (;;) {
        struct pollfd pf[3] = {
            { sfd, POLLIN, 0 }, { d->ended_fd, POLLIN, 0 }, { d->start_fd, POLLIN, 0 } };
        if (poll(pf, d->start_joinable ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            report(d, "poll: %s", strerror(errno));
            exit_code = 1;
            break;
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si))
                syslog(LOG_INFO, "signal %u: stopping", si.ssi_signo);
            break;
        }
        if (pf[1].revents & POLLIN) {
            syslog(LOG_INFO, "%s was unmounted: stopping", d->mountpoint);
            break;
        }
        if (d->start_joinable && (pf[2].revents & POLLIN)) {
            pthread_join(d->start_thread, NULL);
            d->start_joinable = 0;
            if (d->start_err != JET_errSuccess) {
                exit_code = 1;  /* start_main() reported why */
                break;
            }
            srv_limits lim = {
                .maxclients = (size_t)d->o.maxclients,
                .client_buffer_total = (size_t)d->o.client_buffer_total,
                .timeout = (unsigned)d->o.timeout,
                .commit_lazy = d->o.params.commit_mode == JS_COMMIT_LAZY,
            };
            jerr = srv_start_limits(d->inst, (const char *const *)d->o.listen, d->o.n_listen,
                                    backup_info, d->st, &lim, &d->srv);
            if (jerr != JET_errSuccess) {
                report_jet(d, "listen", jerr);
                d->srv = NULL;
                exit_code = 1;
                break;
            }
            /* Only now: status "idle" promises the endpoints answer. */
            st_set_recovering(d->st, 0);
            ctl_set_ready(d->ctl, 1);
            announce_ready(d);
        }
    }
    return exit_code;
}

static int run(struct daemon *d, const sigset_t *sigs)
{
    struct ctl_config cc;
    struct mnt_config mc;
    char err[512];
    int sfd = -1, exit_code = 1, rc;
    JET_ERR jerr;

    d->start_fd = eventfd(0, EFD_CLOEXEC);
    d->ended_fd = eventfd(0, EFD_CLOEXEC);
    sfd = signalfd(-1, sigs, SFD_CLOEXEC);
    d->ev = ev_new(1);
    d->st = st_new();
    if (d->start_fd < 0 || d->ended_fd < 0 || sfd < 0 || d->ev == NULL || d->st == NULL) {
        report(d, "out of resources: %s", strerror(errno));
        goto out_free;
    }
    if (prepare_paths(d) != 0 || acquire_instance(d, sfd) != 0)
        goto out_free;
    if (prepare_mountpoint(d) != 0)
        goto out_close;
    js_set_event_sink(d->inst, ev_sink, d->ev);
    st_set_instance(d->st, d->inst);

    memset(&cc, 0, sizeof(cc));
    cc.owner = getuid();
    cc.dbdir = d->dbdir;
    cc.mountpoint = d->mountpoint;
    cc.backup_root = d->o.backup_root != NULL ? d->backup_root : NULL;
    cc.no_log = d->o.params.no_log;
    cc.circular_log = d->o.params.circular_log;
    if ((jerr = ctl_new(&cc, d->inst, d->st, &d->ctl)) != JET_errSuccess) {
        report_jet(d, "control", jerr);
        goto out_close;
    }

    memset(&mc, 0, sizeof(mc));
    mc.dbdir = d->dbdir;
    mc.mountpoint = d->mountpoint;
    mc.uid = getuid();
    mc.gid = getgid();
    mc.allow_other = d->o.allow_other;
    mc.store_ahead = d->o.snapshot_store_ahead;
    mc.auto_unmount = d->o.auto_unmount;
    mc.debug = d->o.debug;
    mc.ended_fd = d->ended_fd;
    if ((rc = mnt_start(&mc, d->inst, d->ctl, d->st, d->ev, &d->mnt, err, sizeof(err))) != 0) {
        report(d, "%s", err);
        goto out_close;
    }
    struct arc_config ac = { .dbdir = d->dbdir, .command = d->o.archive_command,
                             .command_timeout_s = d->o.archive_command_timeout,
                             .timeout_s = d->o.archive_timeout };
    if ((jerr = arc_start(&ac, d->inst, d->ev, &d->arc)) != JET_errSuccess) {
        report_jet(d, "archiver", jerr);
        goto out_unmount;
    }
    st_set_archiver(d->st, d->arc);
    st_set_recovering(d->st, 1);
    if ((rc = pthread_create(&d->start_thread, NULL, start_main, d)) != 0) {
        report(d, "cannot start recovery: %s", strerror(rc));
        goto out_unmount;
    }
    d->start_joinable = 1;
    syslog(LOG_INFO, "mounted %s on %s", d->dbdir, d->mountpoint);
    sd_notify(0, "STATUS=recovering");

    exit_code = serve(d, sfd);

    sd_notify(0, "STOPPING=1\nSTATUS=stopping: checkpoint and clean shutdown");
    ctl_shutdown(d->ctl);
    if (d->start_joinable) {
        pthread_join(d->start_thread, NULL);
        d->start_joinable = 0;
    }
    /* Every path a successor may take over is given up before js_close
     * releases the instance it waits for: the sockets (each unlinked only
     * if the path still names the socket this process bound), then
     * MOUNTPOINT. */
    srv_stop(d->srv);
    d->srv = NULL;
out_unmount:
    st_set_archiver(d->st, NULL);
    arc_stop(d->arc);
    d->arc = NULL;
    mnt_unmount(d->mnt);
    mnt_detach_instance(d->mnt);
out_close:
    st_set_instance(d->st, NULL);
    jerr = js_close(d->inst);
    d->inst = NULL;
    if (jerr != JET_errSuccess) {
        report_jet(d, "close", jerr);
        exit_code = 1;
    }
    if (d->ctl != NULL)
        ctl_join(d->ctl);
    mnt_stop(d->mnt);
    d->mnt = NULL;
out_free:
    ctl_free(d->ctl);
    st_free(d->st);
    ev_free(d->ev);
    if (sfd >= 0)
        close(sfd);
    if (d->start_fd >= 0)
        close(d->start_fd);
    if (d->ended_fd >= 0)
        close(d->ended_fd);
    if (exit_code == 0)
        syslog(LOG_INFO, "stopped");
    return exit_code;
}

int main(int argc, char **argv)
{
    struct daemon d;
    char err[256];
    sigset_t sigs;
    int rc;

    memset(&d, 0, sizeof(d));
    d.ready_fd = -1;
    d.start_fd = d.ended_fd = -1;
    if (opts_parse(argc, argv, &d.o, err, sizeof(err)) != 0) {
        fprintf(stderr, "jetsnapfs: %s\nTry 'jetsnapfs --help'.\n", err);
        opts_free(&d.o);
        return 2;
    }
    if (d.o.show_help || d.o.show_version) {
        if (d.o.show_help)
            opts_usage(stdout);
        else
            printf("jetsnapfs %s (libfuse 3 low-level API)\n", OPTS_VERSION);
        opts_free(&d.o);
        return 0;
    }
    if (!d.o.foreground)
        fork_and_wait(&d.ready_fd);

    /* Before any thread: every thread inherits this mask, so the signals
     * reach only the signalfd, and SIGUSR1 only the FUSE loop thread (which
     * unblocks it). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    {
        sigset_t block = sigs;
        sigaddset(&block, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &block, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    mnt_install_sigusr1();
    openlog("jetsnapfs", LOG_PID, LOG_DAEMON);

    rc = run(&d, &sigs);
    if (d.ready_fd >= 0)
        close(d.ready_fd);
    opts_free(&d.o);
    closelog();
    return rc;
}

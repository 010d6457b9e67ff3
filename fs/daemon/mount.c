/*
 * mount.c - the FUSE session of jetsnapfs (SPEC section 3) on the libfuse
 * 3.14 low-level API: mount, the session loop in its own thread, the
 * notifier thread, and the bounded stop.  What the mount serves is in handlers.c (the map of files
 * in mount_int.h); finding, detaching and aborting mounts in mountinfo.c.
 */
#include "mount_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Session lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* libfuse's levels are syslog's (FUSE_LOG_EMERG 0 .. FUSE_LOG_DEBUG 7). */
static void fuse_log_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
    vsyslog((int)level, fmt, ap);
}

void mnt_log_to_syslog(void)
{
    fuse_set_log_func(fuse_log_syslog);
}

static void sigusr1_noop(int sig)
{
    (void)sig;
}

void mnt_install_sigusr1(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sigusr1_noop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;            /* no SA_RESTART: sem_wait must see EINTR */
    sigaction(SIGUSR1, &sa, NULL);
}

static void *loop_main(void *arg)
{
    struct mnt *m = arg;
    struct fuse_loop_config *cfg;
    sigset_t set;
    uint64_t one = 1;

    /* Only this thread takes SIGUSR1: mnt_stop() uses it to interrupt the
     * loop's sem_wait once fuse_session_exit() has been called. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    cfg = fuse_loop_cfg_create();
    if (cfg != NULL) {
        fuse_loop_cfg_set_max_threads(cfg, 16);
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_session_loop_mt(m->se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    atomic_store(&m->loop_done, 1);
    if (m->ended_fd >= 0 && write(m->ended_fd, &one, sizeof(one)) < 0) {
        /* Cannot happen: one write cannot overflow an eventfd counter. */
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The notifier thread                                                  */
/* ------------------------------------------------------------------ */

/*
 * fuse_lowlevel_notify_inval_entry() takes the parent directory's lock in
 * the kernel and waits behind requests in it, so it must not run on a
 * worker answering a request that holds that lock, nor under any lock of
 * ours (notes/fuse.md section 2, DESIGN 5).  One thread sends them, fed by
 * a queue; the worker that asked waits for the send (it holds no lock and
 * answers a request on control, not on snapshots/), so the entry is gone
 * before its write returns.
 */
struct mnt_note {
    struct mnt_note *next;
    int done;                   /* sent (or given up at stop) */
    int abandoned;              /* the asker stopped waiting: the thread frees it */
    int drop_invalid;           /* not an entry: drop invalid snapshots' data */
    char name[JS_SNAPSHOT_NAME_MAX + 1];
};

#define NOTE_WAIT_MS 2000

static void *note_main(void *arg)
{
    struct mnt *m = arg;

    pthread_mutex_lock(&m->note_lock);
    for (;;) {
        while (!m->note_stop && m->notes == NULL)
            pthread_cond_wait(&m->note_cond, &m->note_lock);
        if (m->notes == NULL)
            break;
        struct mnt_note *n = m->notes;
        m->notes = n->next;
        pthread_mutex_unlock(&m->note_lock);
        /* ENOENT (nothing cached) and ENOTCONN (unmounted) are success. */
        if (n->drop_invalid)
            mnt_snap_drop_invalid(m);
        else
            (void)fuse_lowlevel_notify_inval_entry(m->se, INO_SNAPS, n->name, strlen(n->name));
        pthread_mutex_lock(&m->note_lock);
        n->done = 1;
        if (n->abandoned)
            free(n);
        pthread_cond_broadcast(&m->note_cond);
    }
    pthread_mutex_unlock(&m->note_lock);
    return NULL;
}

/* Queue n for the notifier (note_lock held); 0 when the notifier is gone. */
static int note_queue(struct mnt *m, struct mnt_note *n)
{
    if (!m->note_started || m->note_stop)
        return 0;
    struct mnt_note **tail = &m->notes;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = n;
    pthread_cond_broadcast(&m->note_cond);
    return 1;
}

void mnt_notify_gone(struct mnt *m, const char *name)
{
    struct mnt_note *n = calloc(1, sizeof(*n));
    struct timespec until;
    int rc = 0;

    if (n == NULL)
        return;                 /* the entry lasts until its timeout */
    snprintf(n->name, sizeof(n->name), "%s", name);
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += NOTE_WAIT_MS / 1000;
    pthread_mutex_lock(&m->note_lock);
    if (!note_queue(m, n)) {
        pthread_mutex_unlock(&m->note_lock);
        free(n);
        return;
    }
    while (!n->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&m->note_cond, &m->note_lock, &until);
    if (n->done)
        free(n);
    else
        n->abandoned = 1;
    pthread_mutex_unlock(&m->note_lock);
}

/*
 * The instance's event sink while mounted: events go to the log as
 * before, and a snapshot made invalid (event 2007) has the notifier drop
 * what the kernel caches of it (keep_cache, and what snap_ahead.c stored),
 * so that its reads fail with EIO (SPEC 7) rather than serve the cache.
 * Called from the engine's thread, maybe under its locks: it only queues,
 * never waits, and takes only note_lock (a leaf).  What may still be read
 * from the cache (no memory for the note; a range snap_ahead.c copied just
 * before and stores just after the drop) is the snapshot's own bytes, read
 * while it was valid, never other data.
 */
static void mnt_event_sink(void *ctx, const js_event *ev)
{
    struct mnt *m = ctx;
    ev_sink(m->ev, ev);
    if (ev->id != 2007)
        return;
    struct mnt_note *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return;
    n->drop_invalid = 1;
    n->abandoned = 1;           /* nobody waits: the thread frees it */
    pthread_mutex_lock(&m->note_lock);
    if (!note_queue(m, n))
        free(n);
    pthread_mutex_unlock(&m->note_lock);
}

static int note_start(struct mnt *m)
{
    pthread_condattr_t ca;
    int rc;

    pthread_mutex_init(&m->note_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->note_cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&m->note_thread, NULL, note_main, m);
    m->note_started = rc == 0;
    return rc;
}

/* Send what is queued, end the thread; later askers return at once. */
static void note_stop(struct mnt *m)
{
    pthread_mutex_lock(&m->note_lock);
    if (!m->note_started || m->note_stop) {
        pthread_mutex_unlock(&m->note_lock);
        return;
    }
    m->note_stop = 1;
    pthread_cond_broadcast(&m->note_cond);
    pthread_mutex_unlock(&m->note_lock);
    pthread_join(m->note_thread, NULL);
}

static void note_free(struct mnt *m)
{
    pthread_cond_destroy(&m->note_cond);
    pthread_mutex_destroy(&m->note_lock);
}

/* Append s to buf with ',' and '\' escaped for fuse_opt. */
static void opt_escape(char *buf, size_t cap, const char *s)
{
    size_t n = strlen(buf);
    for (; *s != '\0' && n + 2 < cap; s++) {
        if (*s == ',' || *s == '\\')
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    buf[n] = '\0';
}

int mnt_start(const struct mnt_config *cfg, js_instance *inst, struct ctl *ctl,
              struct st_status *st, struct ev_log *ev, struct mnt **out,
              char *err, size_t errcap)
{
    struct mnt *m = calloc(1, sizeof(*m));
    char opts[PATH_MAX + 256];
    char *argv[4];
    int argc = 0, rc = ENOMEM;
    JET_ERR jerr;
    struct fuse_args args;

    if (m == NULL)
        return snprintf(err, errcap, "out of memory"), ENOMEM;
    m->ended_fd = cfg->ended_fd;
    m->uid = cfg->uid;
    m->gid = cfg->gid;
    m->inst = inst;
    m->ctl = ctl;
    m->st = st;
    m->ev = ev;
    m->mount_time = time(NULL);
    m->store_ahead = cfg->store_ahead;
    pthread_rwlock_init(&m->inst_lock, NULL);
    pthread_mutex_init(&m->live_lock, NULL);
    pthread_mutex_init(&m->fh_lock, NULL);
    pthread_mutex_init(&m->ahead_lock, NULL);
    pthread_cond_init(&m->ahead_cond, NULL);
    m->dbdir = strdup(cfg->dbdir);
    m->mountpoint = strdup(cfg->mountpoint);
    if (m->dbdir == NULL || m->mountpoint == NULL) {
        snprintf(err, errcap, "out of memory");
        goto out_free;
    }
    if ((jerr = js_live_new(cfg->dbdir, &m->live)) != JET_errSuccess) {
        rc = js_err_to_errno(jerr);
        snprintf(err, errcap, "%s: %s", cfg->dbdir, js_errdetail());
        goto out_free;
    }

    snprintf(opts, sizeof(opts), "default_permissions,max_read=%u,subtype=jetsnapfs,fsname=jetsnap:", MNT_MAX_READ);
    opt_escape(opts, sizeof(opts), cfg->dbdir);
    if (cfg->allow_other)
        strcat(opts, ",allow_other");
    if (cfg->auto_unmount)
        strcat(opts, ",auto_unmount");
    argv[argc++] = "jetsnapfs";
    argv[argc++] = "-o";
    argv[argc++] = opts;
    if (cfg->debug)
        argv[argc++] = "-d";
    args.argc = argc;
    args.argv = argv;
    args.allocated = 0;
    m->se = fuse_session_new(&args, &mnt_ops, sizeof(mnt_ops), m);
    fuse_opt_free_args(&args);
    if (m->se == NULL) {
        rc = EINVAL;
        snprintf(err, errcap, "cannot create the FUSE session");
        goto out_free;
    }
    if (fuse_session_mount(m->se, cfg->mountpoint) != 0) {
        rc = EIO;
        snprintf(err, errcap, "cannot mount %s (see the fuse message above or syslog)",
                 cfg->mountpoint);
        goto out_destroy;
    }
    mnt_find_fuse_mount(cfg->mountpoint, &m->conn_minor);
    rc = note_start(m);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the notifier thread: %s", strerror(rc));
        goto out_note;
    }
    rc = pthread_create(&m->loop_thread, NULL, loop_main, m);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the FUSE loop: %s", strerror(rc));
        goto out_stop_note;
    }
    js_set_event_sink(inst, mnt_event_sink, m);
    *out = m;
    return 0;

out_stop_note:
    note_stop(m);
out_note:
    note_free(m);
    fuse_session_unmount(m->se);
out_destroy:
    fuse_session_destroy(m->se);
out_free:
    js_live_free(m->live);
    pthread_rwlock_destroy(&m->inst_lock);
    pthread_mutex_destroy(&m->live_lock);
    pthread_mutex_destroy(&m->fh_lock);
    pthread_mutex_destroy(&m->ahead_lock);
    pthread_cond_destroy(&m->ahead_cond);
    free(m->dbdir);
    free(m->mountpoint);
    free(m);
    return rc;
}

void mnt_detach_instance(struct mnt *m)
{
    pthread_rwlock_wrlock(&m->inst_lock);
    if (m->inst != NULL)        /* js_close's events go to the log alone */
        js_set_event_sink(m->inst, ev_sink, m->ev);
    m->inst = NULL;
    pthread_rwlock_unlock(&m->inst_lock);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* 1 when the kernel connection has ended (the device fd reports POLLERR). */
static int conn_gone(struct mnt *m)
{
    struct pollfd pfd = { fuse_session_fd(m->se), 0, 0 };
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

/*
 * The libfuse 3.14 trap: fuse_session_exit() only sets a flag; the MT
 * loop's control thread sleeps in sem_wait and its workers in
 * read(/dev/fuse), and neither wakes while a client holds a file open (the
 * connection stays up even after a lazy unmount).  So: detach first
 * (mnt_unmount(), which main calls before it releases the instance: new
 * opens fail, the connection ends by itself once the last handle goes),
 * give open handles a moment, then exit and interrupt the loop thread with
 * SIGUSR1 (no SA_RESTART) every 100 ms until it returns (one signal can be
 * lost between the flag check and the wait), fusectl abort as a last
 * resort, join, and only then unmount and destroy: fuse_session_unmount
 * closes the device fd and must never run under live workers.
 */
void mnt_unmount(struct mnt *m)
{
    if (m == NULL || m->unmounted)
        return;
    m->unmounted = 1;
    if (atomic_load(&m->loop_done) || conn_gone(m)) {
        /* The kernel ended the connection (fusermount3 -u): whatever is
         * mounted at MOUNTPOINT now is not ours. */
        m->detached = 1;
        return;
    }
    m->detached = mnt_detach_path(m->mountpoint) == 0;
    if (!m->detached)
        syslog(LOG_WARNING, "%s: cannot detach the mount now; it goes at exit", m->mountpoint);
}

void mnt_stop(struct mnt *m)
{
    int i;

    if (m == NULL)
        return;
    mnt_unmount(m);
    /* While the workers still run: a notify waits behind requests in
     * snapshots/, which only they can answer. */
    note_stop(m);
    if (!atomic_load(&m->loop_done)) {
        for (i = 0; i < 50 && !atomic_load(&m->loop_done) &&
                    atomic_load(&m->open_handles) > 0; i++)
            sleep_ms(10);
        fuse_session_exit(m->se);
        for (i = 0; i < 15 && !atomic_load(&m->loop_done); i++) {
            pthread_kill(m->loop_thread, SIGUSR1);
            sleep_ms(100);
        }
        if (!atomic_load(&m->loop_done)) {
            mnt_fusectl_abort(m->conn_minor);
            for (i = 0; i < 10 && !atomic_load(&m->loop_done); i++) {
                pthread_kill(m->loop_thread, SIGUSR1);
                sleep_ms(100);
            }
        }
    }
    pthread_join(m->loop_thread, NULL);
    /* fuse_session_unmount() skips the umount when the connection is
     * already gone (POLLERR on the device fd).  After our own lazy unmount
     * the path may hold somebody else's mount, so end the connection first
     * (a client still holding a file would lose it at our exit anyway); if
     * that fails, leave the session's mountpoint string behind rather than
     * risk unmounting a stranger. */
    if (m->detached && !conn_gone(m))
        mnt_fusectl_abort(m->conn_minor);
    if (!m->detached || conn_gone(m))
        fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    note_free(m);
    while (m->fhs != NULL)      /* held open by clients to the end */
        mnt_fh_free(m, m->fhs);
    js_live_free(m->live);
    pthread_rwlock_destroy(&m->inst_lock);
    pthread_mutex_destroy(&m->live_lock);
    pthread_mutex_destroy(&m->fh_lock);
    pthread_mutex_destroy(&m->ahead_lock);
    pthread_cond_destroy(&m->ahead_cond);
    mnt_live_names_free(m);
    free(m->dbdir);
    free(m->mountpoint);
    free(m);
}

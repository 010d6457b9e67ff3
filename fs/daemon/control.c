/*
 * control.c - the control file's command language and the backup job.
 *
 * Life of a command (see control.h for the contract):
 *   ctl_submit: uid -> shutdown -> grammar -> instance ready -> job running
 *     -> DEST checks -> start job thread        (any refusal: done(errno))
 *   job thread: js_backup() with job_status() as callback
 *     BEGIN from the engine  -> status `running`; a command without `wait`
 *                               is answered 0 here
 *     js_backup() returns    -> before BEGIN: the engine refused, answer its
 *                               errno, status untouched; after BEGIN: status
 *                               `succeeded`/`failed`/`cancelled`, a `wait`
 *                               command is answered with the job's errno.
 *
 * DEST checks never touch the mountpoint (a request from a FUSE worker into
 * our own mount could deadlock): the path is resolved component by component
 * with lstat/readlink and each prefix is compared with the mountpoint before
 * it is looked at.  With backup_root the path is resolved by the kernel with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) from the root's fd.
 */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ctl_job {
    struct ctl_cmd cmd;
    char dest[PATH_MAX];        /* resolved DEST; unused for truncate */
    ctl_done_fn done;
    void *done_ctx;
    int begun;                  /* BEGIN seen (guarded by ctl.lock) */
    uint32_t gen_high;          /* last gen_high reported (job thread only) */
    char truncated[64];         /* the engine's range, "" until reported */
    int answered;               /* done() called (guarded by ctl.lock) */
};

struct ctl {
    /* Held for reading around js_backup_cancel() (never with lock held, so
     * a job callback waiting for lock cannot deadlock against the engine);
     * ctl_shutdown() takes it for writing to drain those calls. */
    pthread_rwlock_t inst_gate;
    pthread_mutex_t lock;       /* guards the fields down to job_thread */
    pthread_cond_t cond;        /* job_running / job->begun changed */
    int stopping;
    int ready;
    int job_running;
    struct ctl_job *job;        /* the running job, owned by its thread */
    pthread_t job_thread;
    int job_thread_joinable;

    js_instance *inst;          /* immutable */
    struct st_status *st;       /* immutable */
    uid_t owner;
    int no_log, circular_log;
    char *dbdir, *mountpoint, *backup_root;
    int root_fd;                /* O_PATH fd of backup_root, or -1 */
};

/* ------------------------------------------------------------------ */
/* DEST                                                                 */
/* ------------------------------------------------------------------ */

/* p equals dir or lies beneath it (both canonical, no trailing slash). */
static int path_within(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Lexical normalisation: collapse "//", "." and ".." (".." above / stays
 * at /).  Used only to refuse paths aimed at the mount before anything
 * looks at them. */
static void lexical_normalize(const char *in, char *out)
{
    size_t n = 0;
    const char *p = in;

    out[0] = '\0';
    while (*p != '\0') {
        const char *e;
        size_t len;
        while (*p == '/')
            p++;
        e = p;
        while (*e != '\0' && *e != '/')
            e++;
        len = (size_t)(e - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n] = '\0';
        } else if (n + 1 + len < PATH_MAX) {
            out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
            out[n] = '\0';
        }
        p = e;
    }
    if (n == 0)
        strcpy(out, "/");
}

static int forbidden(const struct ctl *c, const char *p)
{
    return path_within(p, c->mountpoint) || path_within(p, c->dbdir);
}

/* Resolve an absolute path component by component (symlinks followed,
 * at most 40), refusing any prefix inside the mount or DBDIR before it is
 * looked at.  *exists tells whether the whole path exists.  Returns 0 or an
 * errno. */
static int resolve_walk(const struct ctl *c, const char *path, char *out, int *exists)
{
    char rest[PATH_MAX * 2], link[PATH_MAX], tmp[PATH_MAX * 2];
    size_t n = 0;
    int links = 0, missing = 0;

    snprintf(rest, sizeof(rest), "%s", path);
    out[0] = '\0';
    while (rest[0] != '\0') {
        char *p = rest, *e, comp[PATH_MAX];
        size_t len;
        struct stat sb;

        while (*p == '/')
            p++;
        e = p;
        while (*e != '\0' && *e != '/')
            e++;
        len = (size_t)(e - p);
        if (len >= sizeof(comp))
            return ENAMETOOLONG;
        memcpy(comp, p, len);
        comp[len] = '\0';
        memmove(rest, e, strlen(e) + 1);
        if (len == 0 || strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            if (missing)
                return ENOENT;
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n] = '\0';
            continue;
        }
        if (n + 1 + len >= PATH_MAX)
            return ENAMETOOLONG;
        out[n] = '/';
        memcpy(out + n + 1, comp, len + 1);
        if (forbidden(c, out))
            return EXDEV;
        if (missing) {
            n += 1 + len;
            continue;
        }
        if (lstat(out, &sb) != 0) {
            if (errno != ENOENT)
                return errno;
            missing = 1;
            n += 1 + len;
            continue;
        }
        if (S_ISLNK(sb.st_mode)) {
            ssize_t l = readlink(out, link, sizeof(link) - 1);
            if (l < 0)
                return errno;
            if (++links > 40)
                return ELOOP;
            link[l] = '\0';
            if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", link, rest) >= sizeof(rest))
                return ENAMETOOLONG;
            memcpy(rest, tmp, strlen(tmp) + 1);
            out[n] = '\0';
            if (link[0] == '/')
                n = 0, out[0] = '\0';
            continue;
        }
        n += 1 + len;
        if (!S_ISDIR(sb.st_mode) && rest[strspn(rest, "/")] != '\0')
            return ENOTDIR;
    }
    if (n == 0)
        strcpy(out, "/");
    *exists = !missing;
    return 0;
}

static int openat2_beneath(int dirfd, const char *rel)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* Canonical path of an O_PATH fd. */
static int fd_path(int fd, char *out)
{
    char proc[64];
    ssize_t l;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    l = readlink(proc, out, PATH_MAX - 1);
    if (l < 0)
        return errno;
    out[l] = '\0';
    return 0;
}

/* Resolve beneath backup_root: the deepest existing prefix is opened by the
 * kernel (no escape, no symlink); the missing tail must be plain names. */
static int resolve_rooted(const struct ctl *c, const char *path, char *out, int *exists)
{
    char rel[PATH_MAX], tail[PATH_MAX];
    size_t rlen = strlen(c->backup_root);
    int fd = -1, rc;
    char *cut;

    if (strcmp(c->backup_root, "/") != 0) {
        if (strncmp(path, c->backup_root, rlen) != 0 || (path[rlen] != '/' && path[rlen] != '\0'))
            return EXDEV;
    } else {
        rlen = 0;
    }
    snprintf(rel, sizeof(rel), "%s", path + rlen + strspn(path + rlen, "/"));
    tail[0] = '\0';
    for (;;) {
        fd = openat2_beneath(c->root_fd, rel[0] != '\0' ? rel : ".");
        if (fd >= 0)
            break;
        if (errno == EXDEV || errno == ELOOP)
            return EXDEV;
        if (errno != ENOENT)
            return errno;
        /* Move the last component of rel to the front of tail. */
        while ((cut = strrchr(rel, '/')) != NULL && cut[1] == '\0')
            *cut = '\0';
        cut = strrchr(rel, '/');
        {
            char t2[PATH_MAX];
            const char *last = cut != NULL ? cut + 1 : rel;
            if (strcmp(last, "..") == 0 || strcmp(last, ".") == 0)
                return ENOENT;
            if ((size_t)snprintf(t2, sizeof(t2), "%s%s%s", last, tail[0] ? "/" : "", tail) >=
                sizeof(t2))
                return ENAMETOOLONG;
            memcpy(tail, t2, strlen(t2) + 1);
        }
        if (cut == NULL)
            rel[0] = '\0';
        else
            *cut = '\0';
        if (rel[0] == '\0' && tail[0] == '\0')
            return ENOENT;
    }
    rc = fd_path(fd, out);
    if (rc == 0 && tail[0] != '\0') {
        struct stat sb;
        if (fstat(fd, &sb) == 0 && !S_ISDIR(sb.st_mode))
            rc = ENOTDIR;
        else if (strlen(out) + 1 + strlen(tail) >= PATH_MAX)
            rc = ENAMETOOLONG;
        else
            strcat(strcmp(out, "/") == 0 ? out : strcat(out, "/"), tail);
    }
    close(fd);
    *exists = tail[0] == '\0';
    if (rc == 0 && forbidden(c, out))
        rc = EXDEV;
    return rc;
}

static int dir_is_empty(const char *path, int *empty)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (d == NULL)
        return errno;
    *empty = 1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            *empty = 0;
            break;
        }
    closedir(d);
    return 0;
}

JET_ERR ctl_check_dest(struct ctl *c, const struct ctl_cmd *cmd, char *resolved, int *errno_out)
{
    char lex[PATH_MAX];
    int exists = 0, rc, empty = 1;
    struct stat sb;

    lexical_normalize(cmd->path, lex);
    if (forbidden(c, lex)) {
        rc = EXDEV;
        goto out_refuse;
    }
    rc = c->backup_root != NULL ? resolve_rooted(c, cmd->path, resolved, &exists)
                                : resolve_walk(c, cmd->path, resolved, &exists);
    if (rc != 0)
        goto out_refuse;
    if (!exists) {
        if (!(cmd->js_flags & JS_BACKUP_CREATE_DIR)) {
            rc = ENOENT;
            goto out_refuse;
        }
        return JET_errSuccess;
    }
    if (stat(resolved, &sb) != 0) {
        rc = errno;
        goto out_refuse;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rc = ENOTDIR;
        goto out_refuse;
    }
    /* SPEC 4: a non-atomic full backup needs an empty or new DEST. */
    if (!(cmd->js_flags & (JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL))) {
        rc = dir_is_empty(resolved, &empty);
        if (rc != 0)
            goto out_refuse;
        if (!empty) {
            *errno_out = ENOTEMPTY;
            return JET_errBackupDirectoryNotEmpty;
        }
    }
    return JET_errSuccess;

out_refuse:
    *errno_out = rc;
    return JET_errInvalidPath;
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                 */
/* ------------------------------------------------------------------ */

/* Lowest and highest closed generation edbXXXXXXXX.log in DBDIR (0, 0 when
 * none): compared before and after a job to report what was truncated. */
static void scan_gens(const char *dbdir, uint32_t *lo, uint32_t *hi)
{
    DIR *d = opendir(dbdir);
    struct dirent *de;

    *lo = *hi = 0;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        unsigned g;
        char tail[8];
        if (strlen(de->d_name) == 15 && sscanf(de->d_name, "edb%8X%4s", &g, tail) == 2 &&
            strcmp(tail, ".log") == 0 && g != 0) {
            if (*lo == 0 || g < *lo)
                *lo = g;
            if (g > *hi)
                *hi = g;
        }
    }
    closedir(d);
}

static const char *operation_of(const struct ctl_cmd *cmd)
{
    if (cmd->kind == CTL_TRUNCATE)
        return "truncate";
    return cmd->js_flags & JS_BACKUP_INCREMENTAL ? "incremental" : "full";
}

static int job_status(void *ctx, int snp, int snt, const js_progress *p)
{
    struct ctl *c = ctx;
    struct ctl_job *job;
    ctl_done_fn done = NULL;
    void *done_ctx = NULL;

    (void)snp;
    pthread_mutex_lock(&c->lock);
    job = c->job;
    if (snt == JS_SNT_BEGIN && !job->begun) {
        job->begun = 1;
        st_job_begin(c->st, operation_of(&job->cmd),
                     job->cmd.kind == CTL_BACKUP ? job->dest : "", job->cmd.flags);
        if (!job->cmd.wait && !job->answered) {
            job->answered = 1;
            done = job->done;
            done_ctx = job->done_ctx;
        }
        pthread_cond_broadcast(&c->cond);
    }
    if (job->begun && p != NULL) {
        st_job_progress(c->st, p);
        if (p->gen_high > job->gen_high)
            job->gen_high = p->gen_high;
        if (p->truncated != NULL && p->truncated[0] != '\0')
            snprintf(job->truncated, sizeof(job->truncated), "%s", p->truncated);
    }
    pthread_mutex_unlock(&c->lock);
    if (done != NULL)
        done(done_ctx, 0);
    return 0;
}

static void *job_main(void *arg)
{
    struct ctl *c = arg;
    struct ctl_job *job;
    uint32_t lo0, hi0, lo1, hi1;
    char detail[1024], truncated[64], root[PATH_MAX];
    ctl_done_fn done = NULL;
    void *done_ctx = NULL;
    JET_ERR err;
    int answer_err = 0;

    pthread_mutex_lock(&c->lock);
    job = c->job;
    pthread_mutex_unlock(&c->lock);

    scan_gens(c->dbdir, &lo0, &hi0);
    /* The engine resolves DEST again, once, beneath the held root, and holds
     * it from then on: the check above only chose the errno of a refusal.
     * job->dest is canonical (fd_path), so the root is named the same way. */
    if (c->root_fd >= 0 && fd_path(c->root_fd, root) != 0)
        snprintf(root, sizeof(root), "%s", c->backup_root);
    err = js_backup_beneath(c->inst, c->root_fd, c->root_fd >= 0 ? root : NULL,
                            job->cmd.kind == CTL_BACKUP ? job->dest : NULL,
                            job->cmd.js_flags, job_status, c);
    snprintf(detail, sizeof(detail), "%s", err != JET_errSuccess ? js_errdetail() : "");
    scan_gens(c->dbdir, &lo1, &hi1);
    /* The engine's own account when it gave one; otherwise from DBDIR:
     * truncation deletes the oldest generations, contiguously (SPEC 4), so
     * what was the lowest before and is gone now, up to the new lowest, or
     * when none is left up to the highest closed one (the job's own roll
     * included). */
    if (job->truncated[0] != '\0')
        snprintf(truncated, sizeof(truncated), "%s", job->truncated);
    else if (lo0 != 0 && (lo1 == 0 || lo1 > lo0))
        snprintf(truncated, sizeof(truncated), "edb%08X.log-edb%08X.log", lo0,
                 lo1 != 0 ? lo1 - 1 : (job->gen_high > hi0 ? job->gen_high : hi0));
    else
        snprintf(truncated, sizeof(truncated), "none");

    pthread_mutex_lock(&c->lock);
    if (!job->begun && err == JET_errSuccess) {
        /* The engine never reported BEGIN: record the finished job anyway. */
        job->begun = 1;
        st_job_begin(c->st, operation_of(&job->cmd),
                     job->cmd.kind == CTL_BACKUP ? job->dest : "", job->cmd.flags);
    }
    if (job->begun)
        st_job_end(c->st, err, detail[0] != '\0' ? detail
                               : err == JET_errSuccess ? "" : js_errmsg(err), truncated);
    if (!job->answered) {
        job->answered = 1;
        done = job->done;
        done_ctx = job->done_ctx;
        answer_err = err == JET_errSuccess ? 0 : js_err_to_errno(err);
    }
    c->job = NULL;
    c->job_running = 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (done != NULL)
        done(done_ctx, answer_err);
    free(job);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

JET_ERR ctl_new(const struct ctl_config *cfg, js_instance *inst, struct st_status *st,
                struct ctl **out)
{
    struct ctl *c = calloc(1, sizeof(*c));
    JET_ERR err = JET_errOutOfMemory;

    if (c == NULL)
        return err;
    c->inst = inst;
    c->st = st;
    c->owner = cfg->owner;
    c->no_log = cfg->no_log;
    c->circular_log = cfg->circular_log;
    c->root_fd = -1;
    c->dbdir = strdup(cfg->dbdir);
    c->mountpoint = strdup(cfg->mountpoint);
    if (c->dbdir == NULL || c->mountpoint == NULL)
        goto out_free;
    if (cfg->backup_root != NULL) {
        if ((c->backup_root = strdup(cfg->backup_root)) == NULL)
            goto out_free;
        c->root_fd = open(cfg->backup_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (c->root_fd < 0) {
            err = JET_errInvalidPath;
            goto out_free;
        }
    }
    pthread_rwlock_init(&c->inst_gate, NULL);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    *out = c;
    return JET_errSuccess;

out_free:
    free(c->dbdir);
    free(c->mountpoint);
    free(c->backup_root);
    free(c);
    return err;
}

void ctl_free(struct ctl *c)
{
    if (c == NULL)
        return;
    if (c->root_fd >= 0)
        close(c->root_fd);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    pthread_rwlock_destroy(&c->inst_gate);
    free(c->dbdir);
    free(c->mountpoint);
    free(c->backup_root);
    free(c);
}

void ctl_set_ready(struct ctl *c, int ready)
{
    pthread_mutex_lock(&c->lock);
    c->ready = ready;
    pthread_mutex_unlock(&c->lock);
}

/* Checks that need ctl.lock held; 0 or an errno. */
static int gate_locked(struct ctl *c)
{
    if (c->stopping)
        return ESHUTDOWN;
    if (!c->ready)
        return js_err_to_errno(JET_errBackupNotAllowedYet);
    if (c->job_running)
        return js_err_to_errno(JET_errBackupInProgress);
    return 0;
}

void ctl_submit(struct ctl *c, const char *buf, size_t len, uid_t uid,
                ctl_done_fn done, void *ctx)
{
    struct ctl_job *job = NULL;
    pthread_t old;
    int old_joinable = 0, rc = 0;
    JET_ERR err;

    /* Root included: root bypasses the file mode, not this check. */
    if (uid != c->owner) {
        rc = EACCES;
        goto out_answer;
    }
    if ((job = calloc(1, sizeof(*job))) == NULL) {
        rc = ENOMEM;
        goto out_answer;
    }
    pthread_mutex_lock(&c->lock);
    rc = c->stopping ? ESHUTDOWN : 0;
    pthread_mutex_unlock(&c->lock);
    if (rc != 0)
        goto out_answer;
    err = ctl_parse(buf, len, &job->cmd);
    if (err != JET_errSuccess) {
        rc = js_err_to_errno(err);
        goto out_answer;
    }
    if (job->cmd.kind == CTL_CANCEL) {
        pthread_rwlock_rdlock(&c->inst_gate);
        pthread_mutex_lock(&c->lock);
        rc = c->stopping ? ESHUTDOWN : 0;
        pthread_mutex_unlock(&c->lock);
        if (rc == 0 && (err = js_backup_cancel(c->inst)) != JET_errSuccess)
            rc = js_err_to_errno(err);
        pthread_rwlock_unlock(&c->inst_gate);
        goto out_answer;
    }
    if (job->cmd.kind == CTL_SNAPSHOT || job->cmd.kind == CTL_SNAPSHOT_DELETE) {
        /* SPEC 7: the same as mkdir/rmdir in snapshots/; no job, and a
         * running backup does not stand in the way. */
        pthread_rwlock_rdlock(&c->inst_gate);
        pthread_mutex_lock(&c->lock);
        rc = c->stopping ? ESHUTDOWN : !c->ready ? EAGAIN : 0;
        pthread_mutex_unlock(&c->lock);
        if (rc == 0) {
            err = job->cmd.kind == CTL_SNAPSHOT ? js_snapshot_take(c->inst, job->cmd.path, NULL)
                                                : js_snapshot_delete(c->inst, job->cmd.path);
            if (err != JET_errSuccess)
                rc = js_err_to_errno(err);
        }
        pthread_rwlock_unlock(&c->inst_gate);
        goto out_answer;
    }
    pthread_mutex_lock(&c->lock);
    rc = gate_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (rc != 0)
        goto out_answer;
    /* Refusals the daemon knows from its options, before any file is looked
     * at (SPEC 6: no_log and circular incremental are EOPNOTSUPP). */
    if (c->no_log) {
        rc = js_err_to_errno(JET_errLoggingDisabled);
        goto out_answer;
    }
    if (job->cmd.js_flags & JS_BACKUP_INCREMENTAL) {
        /* The engine reports these only after BEGIN (events 211, 206,
         * 214), which would make a command without `wait` look accepted;
         * SPEC 3 wants them refused inside the write.  The header says
         * how the instance really runs, whatever the options said. */
        js_info info;
        int circular = c->circular_log, no_full = 0;
        if (js_info_read(c->dbdir, &info) == JET_errSuccess) {
            circular = circular || info.circular_log;
            no_full = info.last_full.gen_high == 0;
        }
        if (circular) {
            rc = js_err_to_errno(JET_errInvalidBackup);
            goto out_answer;
        }
        if (no_full) {
            rc = js_err_to_errno(JET_errMissingFullBackup);
            goto out_answer;
        }
    }
    if (job->cmd.kind == CTL_BACKUP &&
        (err = ctl_check_dest(c, &job->cmd, job->dest, &rc)) != JET_errSuccess)
        goto out_answer;

    job->done = done;
    job->done_ctx = ctx;
    pthread_mutex_lock(&c->lock);
    rc = gate_locked(c);
    if (rc == 0) {
        old = c->job_thread;
        old_joinable = c->job_thread_joinable;
        c->job = job;
        c->job_running = 1;
        rc = pthread_create(&c->job_thread, NULL, job_main, c);
        if (rc != 0) {
            c->job = NULL;
            c->job_running = 0;
            c->job_thread = old;
            old_joinable = 0;
        } else {
            c->job_thread_joinable = 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* The previous job thread has finished (job_running was 0): reap it. */
    if (old_joinable)
        pthread_join(old, NULL);
    if (rc == 0)
        return;     /* the job thread answers */

out_answer:
    free(job);
    done(ctx, rc);
}

void ctl_shutdown(struct ctl *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_mutex_unlock(&c->lock);
    /* Drain a js_backup_cancel() that passed the check before stopping. */
    pthread_rwlock_wrlock(&c->inst_gate);
    pthread_rwlock_unlock(&c->inst_gate);
    pthread_mutex_lock(&c->lock);
    while (c->job_running && !c->job->begun)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

void ctl_join(struct ctl *c)
{
    pthread_t t;
    int joinable;

    pthread_mutex_lock(&c->lock);
    t = c->job_thread;
    joinable = c->job_thread_joinable;
    c->job_thread_joinable = 0;
    pthread_mutex_unlock(&c->lock);
    if (joinable)
        pthread_join(t, NULL);
}

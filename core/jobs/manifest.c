/*
 * manifest.c - SHA-256 (OpenSSL EVP), SHA256SUMS and backup.info.
 *
 * backup.info, one `key: value` a line:
 *   type, created, gen_low, gen_high (8 hex digits), full_gen_high,
 *   db_signature, log_signature, page_size, pages, pages_verified,
 *   log_records_verified, parent (incremental only: "gen LOW-HIGH" of the
 *   set before it), version
 * gen_low..gen_high is what restore replays; full_gen_high is the last
 * generation the database copy itself needs (its backup's roll).
 */
#include "jobs/manifest.h"
#include "base/err.h"
#include "base/os.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct mf_hash {
    EVP_MD_CTX *ctx;
};

mf_hash *mf_hash_new(void)
{
    mf_hash *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void mf_hash_update(mf_hash *h, const void *buf, size_t len)
{
    EVP_DigestUpdate(h->ctx, buf, len);
}

void mf_hash_final(mf_hash *h, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    for (unsigned i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    hex[64] = '\0';
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

JET_ERR mf_hash_fileat(int dirfd, const char *name, const char *path, char hex[65])
{
    int fd = -1;
    JET_ERR err = os_openat(dirfd, name, path, O_RDONLY | (dirfd == AT_FDCWD ? 0 : O_NOFOLLOW), 0, &fd);
    if (err)
        return err;
    mf_hash *h = mf_hash_new();
    uint8_t *buf = malloc(1 << 20);
    if (!h || !buf) {
        err = js_fail(JET_errOutOfMemory, "hash buffer");
        goto out;
    }
    uint64_t off = 0;
    for (;;) {
        size_t got = 0;
        err = os_pread(fd, path, buf, 1 << 20, off, &got);
        if (err || got == 0)
            break;
        mf_hash_update(h, buf, got);
        off += got;
    }
    if (!err) {
        mf_hash_final(h, hex);
        h = NULL;
    }
out:
    if (h) {
        char dummy[65];
        mf_hash_final(h, dummy);
    }
    free(buf);
    os_close(fd);
    return err;
}

/* ---------------- hashing pipeline ---------------- */

/* Buffers go round in a ring, hashed in the order they are submitted (a
 * buffer handed out and never submitted, after a failure, is simply free
 * again), so the copy may run MF_PIPE_BUFS - 1 buffers ahead of
 * the hashing thread and a moment when that thread has no core (two
 * cores shared with clients) does not stall the copy at once.  A buffer
 * submitted with a write is also written by one of the writer threads
 * (taken in submission order, several writes and their waits for the disk
 * in flight), so the copy's reads, the hashing and the writes overlap; the
 * buffer is free again when it is both hashed and written. */
#define MF_PIPE_BUFS 8
#define MF_PIPE_WRITERS 3

typedef struct mf_write {
    int fd, drop;
    uint64_t off, behind;
    char path[PATH_MAX];        /* for messages and the fault filter */
} mf_write;

struct mf_pipe {
    pthread_t thread, writer[MF_PIPE_WRITERS];
    int nwriters;
    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t changed;
    uint8_t *buf[MF_PIPE_BUFS];
    size_t len[MF_PIPE_BUFS];
    int queued[MF_PIPE_BUFS];   /* 1: waiting for or being hashed */
    int order[MF_PIPE_BUFS];    /* FIFO of queued buffer indexes ... */
    int head, nqueued;          /* ... from order[head], this many */
    int wqueued[MF_PIPE_BUFS];  /* 1: waiting to be or being written */
    mf_write w[MF_PIPE_BUFS];
    int worder[MF_PIPE_BUFS];   /* FIFO of buffers to write ... */
    int whead, nwqueued;        /* ... from worder[whead], this many */
    int nwactive;               /* writes taken by a writer, not yet done */
    JET_ERR werr;               /* the first failed write since the last drain */
    char wdetail[512];          /* its message (the writer's own thread's) */
    int next;                   /* buffer mf_pipe_buffer hands out next */
    int waiting;                /* the copy waits for a buffer or a drain */
    int want_final, quit;
    int yield, yielded;         /* mf_pipe_yield_cpu asked; the thread applied it */
    mf_hash *hash;
    char hex[65];
};

static void *mf_pipe_writer(void *arg)
{
    mf_pipe *p = arg;
    int idle = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->yield && !idle) {
            /* An online backup's writes yield to everyone else's (the
             * log's first); this thread does nothing else, and the I/O
             * priority is per thread. */
            (void)os_io_priority_idle();
            idle = 1;
        }
        if (p->nwqueued) {
            int i = p->worder[p->whead];
            const mf_write *w = &p->w[i];
            p->whead = (p->whead + 1) % MF_PIPE_BUFS;
            p->nwqueued--;
            p->nwactive++;
            int skip = p->werr != 0;   /* after a failure, the rest is only released */
            pthread_mutex_unlock(&p->lock);
            JET_ERR err = JET_errSuccess;
            if (!skip)
                err = os_pwrite(w->fd, w->path, p->buf[i], p->len[i], w->off);
            if (!skip && !err)
                err = os_writeback_behind(w->fd, w->path, w->off, p->len[i], w->behind, w->drop);
            pthread_mutex_lock(&p->lock);
            if (err && !p->werr) {
                p->werr = err;
                snprintf(p->wdetail, sizeof p->wdetail, "%s", js_errdetail());
            }
            p->nwactive--;
            p->wqueued[i] = 0;
            if (p->waiting)
                pthread_cond_broadcast(&p->changed);
        } else if (p->quit) {
            break;
        } else {
            pthread_cond_wait(&p->changed, &p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void *mf_pipe_main(void *arg)
{
    mf_pipe *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->yield && !p->yielded) {
            /* This thread's own nice value (Linux: per thread); it ends
             * with the pipe, so it is never lowered again (which an
             * unprivileged process could not do). */
            (void)setpriority(PRIO_PROCESS, 0, 19);
            p->yielded = 1;
        }
        if (p->nqueued) {
            int i = p->order[p->head];
            pthread_mutex_unlock(&p->lock);
            mf_hash_update(p->hash, p->buf[i], p->len[i]);
            pthread_mutex_lock(&p->lock);
            p->head = (p->head + 1) % MF_PIPE_BUFS;
            p->nqueued--;
            p->queued[i] = 0;
            /* Wake the copy only when it waits for this buffer or for the
             * digest: no futex call per buffer otherwise. */
            if (p->waiting || (p->want_final && !p->nqueued))
                pthread_cond_broadcast(&p->changed);
        } else if (p->want_final) {
            mf_hash_final(p->hash, p->hex);
            p->hash = mf_hash_new();
            p->want_final = 0;
            pthread_cond_broadcast(&p->changed);
        } else if (p->quit) {
            break;
        } else {
            pthread_cond_wait(&p->changed, &p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void mf_pipe_release(mf_pipe *p)
{
    for (int i = 0; i < MF_PIPE_BUFS; i++)
        free(p->buf[i]);
    if (p->hash) {
        char dummy[65];
        mf_hash_final(p->hash, dummy);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->changed);
    free(p);
}

mf_pipe *mf_pipe_new(size_t bufsize)
{
    mf_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    int ok = 1;
    for (int i = 0; i < MF_PIPE_BUFS; i++)
        ok &= (p->buf[i] = aligned_alloc(4096, bufsize)) != NULL;
    p->hash = mf_hash_new();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    if (!ok || !p->hash || pthread_create(&p->thread, NULL, mf_pipe_main, p) != 0) {
        mf_pipe_release(p);
        return NULL;
    }
    for (; p->nwriters < MF_PIPE_WRITERS; p->nwriters++)
        if (pthread_create(&p->writer[p->nwriters], NULL, mf_pipe_writer, p) != 0) {
            mf_pipe_free(p);
            return NULL;
        }
    return p;
}

void mf_pipe_yield_cpu(mf_pipe *p)
{
    pthread_mutex_lock(&p->lock);
    p->yield = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

uint8_t *mf_pipe_buffer(mf_pipe *p)
{
    pthread_mutex_lock(&p->lock);
    p->waiting = 1;
    while (p->queued[p->next] || p->wqueued[p->next])
        pthread_cond_wait(&p->changed, &p->lock);
    p->waiting = 0;
    uint8_t *b = p->buf[p->next];
    p->next = (p->next + 1) % MF_PIPE_BUFS;
    pthread_mutex_unlock(&p->lock);
    return b;
}

static int mf_pipe_index(const mf_pipe *p, const uint8_t *buf)
{
    int i = 0;
    while (i < MF_PIPE_BUFS - 1 && buf != p->buf[i])
        i++;
    return i;
}

/* Queue buffer i for hashing (p->lock held); 1 when the hashing thread
 * may be asleep. */
static int mf_pipe_queue_hash(mf_pipe *p, int i, size_t len)
{
    p->len[i] = len;
    p->queued[i] = 1;
    p->order[(p->head + p->nqueued) % MF_PIPE_BUFS] = i;
    return ++p->nqueued == 1;
}

void mf_pipe_submit(mf_pipe *p, uint8_t *buf, size_t len)
{
    int i = mf_pipe_index(p, buf);
    pthread_mutex_lock(&p->lock);
    if (mf_pipe_queue_hash(p, i, len))
        pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

JET_ERR mf_pipe_submit_write(mf_pipe *p, uint8_t *buf, size_t len, int fd, const char *path, uint64_t off,
                             uint64_t behind, int drop)
{
    int i = mf_pipe_index(p, buf);
    char detail[sizeof p->wdetail];
    pthread_mutex_lock(&p->lock);
    mf_write *w = &p->w[i];
    w->fd = fd;
    w->off = off;
    w->behind = behind;
    w->drop = drop;
    snprintf(w->path, sizeof w->path, "%s", path);
    p->wqueued[i] = 1;
    p->worder[(p->whead + p->nwqueued) % MF_PIPE_BUFS] = i;
    p->nwqueued++;
    (void)mf_pipe_queue_hash(p, i, len);
    pthread_cond_broadcast(&p->changed);   /* a writer may sleep, whatever the counts */
    JET_ERR err = p->werr;
    memcpy(detail, p->wdetail, sizeof detail);
    pthread_mutex_unlock(&p->lock);
    if (err)
        js_fail(err, "%s", detail);
    return err;
}

/* Wait until every queued write is done; the first failure since the last
 * wait (then cleared), its message into detail. */
static JET_ERR mf_pipe_wait_writes(mf_pipe *p, char detail[sizeof p->wdetail])
{
    pthread_mutex_lock(&p->lock);
    p->waiting = 1;
    while (p->nwqueued || p->nwactive)
        pthread_cond_wait(&p->changed, &p->lock);
    p->waiting = 0;
    JET_ERR err = p->werr;
    memcpy(detail, p->wdetail, sizeof p->wdetail);
    p->werr = 0;
    pthread_mutex_unlock(&p->lock);
    return err;
}

JET_ERR mf_pipe_drain(mf_pipe *p)
{
    char detail[sizeof p->wdetail];
    JET_ERR err = mf_pipe_wait_writes(p, detail);
    if (err)
        js_fail(err, "%s", detail);
    return err;
}

void mf_pipe_abandon(mf_pipe *p)
{
    char detail[sizeof p->wdetail];
    (void)mf_pipe_wait_writes(p, detail);   /* the caller's error stands */
}

void mf_pipe_final(mf_pipe *p, char hex[65])
{
    pthread_mutex_lock(&p->lock);
    p->want_final = 1;
    pthread_cond_broadcast(&p->changed);
    while (p->want_final || p->nqueued)
        pthread_cond_wait(&p->changed, &p->lock);
    memcpy(hex, p->hex, 65);
    pthread_mutex_unlock(&p->lock);
}

void mf_pipe_free(mf_pipe *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (int w = 0; w < p->nwriters; w++)
        pthread_join(p->writer[w], NULL);
    mf_pipe_release(p);
}

JET_ERR mf_sums_set(mf_sums *s, const char *name, const char hex[65])
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].name, name)) {
            memcpy(s->e[i].hex, hex, 65);
            return JET_errSuccess;
        }
    if (s->n == MF_MAX_FILES || strlen(name) >= sizeof s->e[0].name)
        return js_fail(JET_errInvalidParameter, "SHA256SUMS cannot hold %s", name);
    snprintf(s->e[s->n].name, sizeof s->e[0].name, "%s", name);
    memcpy(s->e[s->n].hex, hex, 65);
    s->n++;
    return JET_errSuccess;
}

/* fopen of dirfd/name without following a symlink at name; NULL with
 * errno set. */
static FILE *fopenat_ro(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f)
        close(fd);
    return f;
}

JET_ERR mf_sums_readat(int dirfd, const char *dir, mf_sums *s)
{
    char path[PATH_MAX], line[256];
    s->n = 0;
    snprintf(path, sizeof path, "%s/SHA256SUMS", dir);
    FILE *f = dirfd == AT_FDCWD ? fopen(path, "r") : fopenat_ro(dirfd, "SHA256SUMS");
    if (!f)
        return JET_errSuccess;
    JET_ERR err = JET_errSuccess;
    while (!err && fgets(line, sizeof line, f)) {
        char hex[65], name[128];
        if (sscanf(line, "%64[0-9a-f]  %127s", hex, name) != 2 || strlen(hex) != 64)
            err = JS_CORRUPT(JET_errRestoreOfNonBackupDatabase, "%s: malformed line", path);
        else
            err = mf_sums_set(s, name, hex);
    }
    fclose(f);
    return err;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const mf_entry *)a)->name, ((const mf_entry *)b)->name);
}

JET_ERR mf_sums_writeat(int dirfd, const char *dir, const mf_sums *s)
{
    mf_entry *sorted = malloc((s->n + 1) * sizeof *sorted);
    char *text = malloc(s->n * 140 + 1);
    JET_ERR err;
    if (!sorted || !text) {
        err = js_fail(JET_errOutOfMemory, "SHA256SUMS");
        goto out;
    }
    memcpy(sorted, s->e, s->n * sizeof *sorted);
    qsort(sorted, s->n, sizeof *sorted, entry_cmp);
    size_t len = 0;
    for (size_t i = 0; i < s->n; i++)
        len += (size_t)sprintf(text + len, "%s  %s\n", sorted[i].hex, sorted[i].name);
    err = dirfd == AT_FDCWD ? os_write_file_durable(dir, "SHA256SUMS", text, len, 0600)
                            : os_write_file_durable_at(dirfd, dir, "SHA256SUMS", text, len, 0600);
out:
    free(sorted);
    free(text);
    return err;
}

void mf_now_rfc3339(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int mf_find_in_set_dirs(const char *dir, const char *marker, char *out, size_t cap)
{
    static const char *const sub[] = { "", "/new", "/old" };
    for (int i = 0; i < 3; i++) {
        char f[PATH_MAX];
        struct stat st;
        snprintf(out, cap, "%s%s", dir, sub[i]);
        snprintf(f, sizeof f, "%s/%s", out, marker);
        if (stat(f, &st) == 0)
            return 0;
    }
    return -1;
}

JET_ERR mf_open_set(const char *backup, int *fd, char *shown, size_t cap)
{
    static const char *const sub[] = { ".", "new", "old" };
    int bfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bfd < 0)
        return js_fail(JET_errInvalidPath, "%s is not a directory", backup);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        int sfd = openat(bfd, sub[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
            continue;
        if (fstatat(sfd, "backup.info", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
            snprintf(shown, cap, "%s%s%s", backup, i ? "/" : "", i ? sub[i] : "");
            close(bfd);
            *fd = sfd;
            return JET_errSuccess;
        }
        close(sfd);
    }
    close(bfd);
    return js_fail(JET_errRestoreOfNonBackupDatabase, "%s holds no backup set (no backup.info in it, new/ or old/)",
                   backup);
}

size_t mf_info_render(const mf_info *i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "type: %s\ncreated: %s\ngen_low: %08X\ngen_high: %08X\nfull_gen_high: %08X\n"
                     "db_signature: %s\nlog_signature: %s\npage_size: %u\npages: %" PRIu64 "\n"
                     "pages_verified: %" PRIu64 "\nlog_records_verified: %" PRIu64 "\n",
                     i->type, i->created, i->gen_low, i->gen_high, i->full_gen_high, i->db_signature,
                     i->log_signature, i->page_size, i->pages, i->pages_verified, i->log_records_verified);
    if (n > 0 && (size_t)n < cap && i->parent_high)
        n += snprintf(buf + n, cap - (size_t)n, "parent: gen %08X-%08X\n", i->gen_low, i->parent_high);
    if (n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "version: %d\n", i->version);
    return n > 0 ? (size_t)n : 0;
}

JET_ERR mf_info_readat(int dirfd, const char *dir, mf_info *out)
{
    char path[PATH_MAX], line[256];
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/backup.info", dir);
    FILE *f = dirfd == AT_FDCWD ? fopen(path, "r") : fopenat_ro(dirfd, "backup.info");
    if (!f)
        return js_fail(JET_errRestoreOfNonBackupDatabase, "%s: no backup.info: not a backup set", dir);
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        char key[32], val[128];
        if (sscanf(line, "%31[^:]: %127[^\n]", key, val) != 2)
            continue;
        if (!strcmp(key, "type"))
            snprintf(out->type, sizeof out->type, "%s", val), seen |= 1;
        else if (!strcmp(key, "created"))
            snprintf(out->created, sizeof out->created, "%s", val);
        else if (!strcmp(key, "gen_low"))
            out->gen_low = (uint32_t)strtoul(val, NULL, 16), seen |= 2;
        else if (!strcmp(key, "gen_high"))
            out->gen_high = (uint32_t)strtoul(val, NULL, 16), seen |= 4;
        else if (!strcmp(key, "full_gen_high"))
            out->full_gen_high = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "db_signature"))
            snprintf(out->db_signature, sizeof out->db_signature, "%s", val);
        else if (!strcmp(key, "log_signature"))
            snprintf(out->log_signature, sizeof out->log_signature, "%s", val), seen |= 8;
        else if (!strcmp(key, "page_size"))
            out->page_size = (uint32_t)strtoul(val, NULL, 10);
        else if (!strcmp(key, "pages"))
            out->pages = strtoull(val, NULL, 10);
        else if (!strcmp(key, "pages_verified"))
            out->pages_verified = strtoull(val, NULL, 10);
        else if (!strcmp(key, "log_records_verified"))
            out->log_records_verified = strtoull(val, NULL, 10);
        else if (!strcmp(key, "version"))
            out->version = atoi(val);
        else if (!strcmp(key, "parent")) {
            unsigned lo, hi;
            if (sscanf(val, "gen %8X-%8X", &lo, &hi) == 2)
                out->parent_high = hi;
        }
    }
    fclose(f);
    if (seen != 15 || !out->gen_low || out->gen_high < out->gen_low)
        return JS_CORRUPT(JET_errRestoreOfNonBackupDatabase, "%s: backup.info is incomplete", dir);
    if (!out->full_gen_high)
        out->full_gen_high = out->gen_high;
    return JET_errSuccess;
}

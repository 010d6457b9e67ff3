/*
 * server.c - listening sockets and connections of the Redis (RESP2) front.
 *
 * Shape: one acceptor thread polls every listening socket plus a wake-up
 * eventfd; each accepted connection gets its own thread and its own engine
 * session (js_session).  A connection thread reads what has arrived, parses
 * and runs every complete command in it (pipelining), and writes all the
 * replies with one send.  A slow or stuck client therefore only ever blocks
 * its own thread, and concurrent writers meet in the engine, whose group
 * commit shares fsyncs between them: nothing here serialises connections.
 * No engine transaction is left open while a thread waits on its client
 * (commands.c ends every transaction within the command).
 *
 * Memory per connection is bounded: the parser caps a request (resp.h), the
 * reply buffer is flushed whenever it passes SRV_OUT_FLUSH, and the MULTI
 * queue has its own caps (commands.h).  SRV_MAX_CLIENTS bounds threads.
 *
 * Lifecycle of a connection: the acceptor links it into srv->live and starts
 * its thread; the thread, when its client leaves (or srv_stop shuts the
 * socket down), closes its session, moves itself to srv->zombies and
 * closes its socket; the acceptor (on its next wake-up) or srv_stop joins
 * zombies and frees them.
 *
 * Locking: one mutex, srv->conns_lock, guards live, zombies, nlive and
 * stopping.  It is never held across an engine call or blocking I/O other
 * than shutdown(2), and no other lock is taken under it.
 */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "base/err.h"
#include "resp.h"

#define SRV_MAX_CLIENTS  4096
#define SRV_READ_CHUNK   (64 * 1024)
/* Replies are sent once per batch of pipelined commands, or earlier when
 * they pass this size, so a client pipelining big GETs cannot grow its
 * reply buffer without bound. */
#define SRV_OUT_FLUSH    (1024 * 1024)
#define SRV_BACKLOG      511

typedef struct srv_listener {
    int fd;
    char *path;       /* Unix socket path to remove at stop; NULL for TCP */
    dev_t dev;        /* identity of the socket file we bound, so stop */
    ino_t ino;        /*   never removes a socket someone else made later */
} srv_listener;

typedef struct srv_conn {
    struct srv_conn *next, *prev;  /* in srv->live or srv->zombies */
    srv_server *srv;
    int fd;
    pthread_t thread;
} srv_conn;

struct srv_server {
    js_instance *inst;
    cmd_env env;
    srv_listener *lis;
    size_t nlis;
    int wake_fd;                   /* eventfd: tells the acceptor to stop */
    pthread_t acceptor;
    int acceptor_started;

    pthread_mutex_t conns_lock;
    pthread_cond_t conns_cond;     /* signalled when nlive drops */
    srv_conn *live;                /* guarded by conns_lock */
    srv_conn *zombies;             /* guarded by conns_lock */
    size_t nlive;                  /* guarded by conns_lock */
    int stopping;                  /* guarded by conns_lock */
};

/* ------------------------------------------------------------------ */
/* Connections                                                          */
/* ------------------------------------------------------------------ */

static size_t client_count(void *ctx)
{
    srv_server *srv = ctx;
    pthread_mutex_lock(&srv->conns_lock);
    size_t n = srv->nlive;
    pthread_mutex_unlock(&srv->conns_lock);
    return n;
}

static void list_remove(srv_conn **head, srv_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void list_push(srv_conn **head, srv_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

/* Send all of buf; -1 when the peer is gone. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int flush_out(int fd, resp_buf *out)
{
    int rc = 0;
    if (out->len > 0)
        rc = send_all(fd, out->p, out->len);
    resp_buf_reset(out);
    return rc;
}

static void *conn_main(void *arg)
{
    srv_conn *conn = arg;
    srv_server *srv = conn->srv;
    js_session *sess = NULL;
    resp_parser parser;
    resp_buf out;
    cmd_conn cc;
    char *in = NULL;
    JET_ERR rc;

    resp_parser_init(&parser);
    resp_buf_init(&out);
    rc = js_session_open(srv->inst, &sess);
    if (rc != JET_errSuccess) {
        resp_add_error(&out, "ERR cannot open a session: %s (%d)", js_errname(rc), rc);
        flush_out(conn->fd, &out);
        goto out_release;
    }
    cmd_conn_init(&cc, &srv->env, sess, &out);
    in = malloc(SRV_READ_CHUNK);
    if (!in)
        goto out_cmd;

    for (;;) {
        ssize_t n = recv(conn->fd, in, SRV_READ_CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* client gone (a half-read request is simply dropped) */
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            int pr = resp_parse(&parser, in + off, (size_t)n - off, &used);
            off += used;
            if (pr == RESP_NEED)
                break;
            if (pr == RESP_PROTO) {
                /* Redis's habit: answer the error, then close this
                 * connection only. */
                resp_add_error(&out, "ERR %s", resp_errmsg(&parser));
                flush_out(conn->fd, &out);
                goto out_cmd;
            }
            cmd_execute(&cc, resp_argc(&parser), resp_argv(&parser));
            if (out.oom)
                goto out_cmd;
            if (cc.quit) {
                flush_out(conn->fd, &out);
                goto out_cmd;
            }
            if (out.len >= SRV_OUT_FLUSH && flush_out(conn->fd, &out) != 0)
                goto out_cmd;
        }
        if (flush_out(conn->fd, &out) != 0)
            break;
    }

out_cmd:
    cmd_conn_free(&cc);
out_release:
    free(in);
    js_session_close(sess);
    resp_parser_free(&parser);
    resp_buf_free(&out);
    /* Leave the live list before closing the socket, so srv_stop never
     * shuts down a descriptor number that has been reused. */
    pthread_mutex_lock(&srv->conns_lock);
    list_remove(&srv->live, conn);
    list_push(&srv->zombies, conn);
    srv->nlive--;
    pthread_cond_broadcast(&srv->conns_cond);
    pthread_mutex_unlock(&srv->conns_lock);
    close(conn->fd);
    conn->fd = -1;
    return NULL;
}

/* Join and free the connection threads that have finished. */
static void reap_zombies(srv_server *srv)
{
    pthread_mutex_lock(&srv->conns_lock);
    srv_conn *z = srv->zombies;
    srv->zombies = NULL;
    pthread_mutex_unlock(&srv->conns_lock);
    while (z) {
        srv_conn *next = z->next;
        pthread_join(z->thread, NULL);
        free(z);
        z = next;
    }
}

static void refuse(int fd, const char *msg)
{
    send_all(fd, msg, strlen(msg));
    close(fd);
}

static void accept_one(srv_server *srv, int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        /* Out of descriptors: back off briefly instead of spinning on a
         * listener that stays readable. */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            poll(NULL, 0, 10);
        return;
    }
    int one = 1;
    /* Replies go out in one send per batch; do not let Nagle hold them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on AF_UNIX */

    srv_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        refuse(fd, "-ERR out of memory\r\n");
        return;
    }
    conn->srv = srv;
    conn->fd = fd;

    pthread_mutex_lock(&srv->conns_lock);
    if (srv->stopping || srv->nlive >= SRV_MAX_CLIENTS) {
        int stopping = srv->stopping;
        pthread_mutex_unlock(&srv->conns_lock);
        free(conn);
        refuse(fd, stopping ? "-ERR server is shutting down\r\n"
                            : "-ERR max number of clients reached\r\n");
        return;
    }
    list_push(&srv->live, conn);
    srv->nlive++;
    /* Created under the lock so the thread cannot finish and be reaped
     * before conn->thread is written. */
    if (pthread_create(&conn->thread, NULL, conn_main, conn) != 0) {
        list_remove(&srv->live, conn);
        srv->nlive--;
        pthread_mutex_unlock(&srv->conns_lock);
        free(conn);
        refuse(fd, "-ERR cannot start a connection thread\r\n");
        return;
    }
    pthread_mutex_unlock(&srv->conns_lock);
}

static void *acceptor_main(void *arg)
{
    srv_server *srv = arg;
    struct pollfd *pfd = calloc(srv->nlis + 1, sizeof *pfd);
    if (!pfd)
        return NULL;
    pfd[0].fd = srv->wake_fd;
    pfd[0].events = POLLIN;
    for (size_t i = 0; i < srv->nlis; i++) {
        pfd[i + 1].fd = srv->lis[i].fd;
        pfd[i + 1].events = POLLIN;
    }
    for (;;) {
        int n = poll(pfd, srv->nlis + 1, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents)
            break;
        reap_zombies(srv);
        for (size_t i = 0; i < srv->nlis; i++)
            if (pfd[i + 1].revents & POLLIN)
                accept_one(srv, pfd[i + 1].fd);
    }
    free(pfd);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Listening sockets                                                    */
/* ------------------------------------------------------------------ */

/* "HOST:PORT" (HOST may be "[v6]", "*" or empty for every address) is TCP;
 * anything with a '/' or without a numeric port is a socket path. */
static int split_tcp(const char *ep, char *host, size_t hcap, char *port, size_t pcap)
{
    if (strchr(ep, '/'))
        return 0;
    const char *colon = strrchr(ep, ':');
    if (!colon || colon[1] == '\0')
        return 0;
    size_t plen = strlen(colon + 1);
    if (plen >= pcap || plen > 5)
        return 0;
    for (const char *q = colon + 1; *q; q++)
        if (*q < '0' || *q > '9')
            return 0;
    size_t hlen = (size_t)(colon - ep);
    const char *h = ep;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= hcap)
        return 0;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen + 1);
    return 1;
}

static JET_ERR errno_to_jet(int e)
{
    return (e == EACCES || e == EPERM || e == EROFS) ? JET_errFileAccessDenied : JET_errDiskIO;
}

static JET_ERR listen_unix(const char *path, srv_listener *l)
{
    struct sockaddr_un sa;
    struct stat st;
    JET_ERR rc;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path)
        return js_fail(JET_errInvalidParameter, "listen=%s: socket path empty or longer than %zu bytes",
                       path, sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return js_fail(JET_errDiskIO, "listen=%s: socket: %s", path, strerror(errno));

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            rc = js_fail(JET_errInvalidParameter, "listen=%s: exists and is not a socket", path);
            goto out_close;
        }
        /* A socket file is stale when nobody accepts on it any more; a live
         * one belongs to another server and is left alone. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) {
            rc = js_fail(JET_errDiskIO, "listen=%s: socket: %s", path, strerror(errno));
            goto out_close;
        }
        int in_use = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(probe);
        if (in_use) {
            rc = js_fail(JET_errFileAccessDenied, "listen=%s: another server is listening on it", path);
            goto out_close;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = js_fail(errno_to_jet(errno), "listen=%s: cannot remove stale socket: %s", path,
                         strerror(errno));
            goto out_close;
        }
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = js_fail(errno_to_jet(errno), "listen=%s: bind: %s", path, strerror(errno));
        goto out_close;
    }
    /* Set the mode before listen(): until then no client can connect, so
     * the umask-derived mode is never usable by anyone. */
    if (chmod(path, 0660) != 0 || lstat(path, &st) != 0) {
        rc = js_fail(errno_to_jet(errno), "listen=%s: chmod 0660: %s", path, strerror(errno));
        goto out_unlink;
    }
    if (listen(fd, SRV_BACKLOG) != 0) {
        rc = js_fail(errno_to_jet(errno), "listen=%s: listen: %s", path, strerror(errno));
        goto out_unlink;
    }
    l->path = strdup(path);
    if (!l->path) {
        rc = js_fail(JET_errOutOfMemory, "listen=%s: out of memory", path);
        goto out_unlink;
    }
    l->fd = fd;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return JET_errSuccess;

out_unlink:
    unlink(path);
out_close:
    close(fd);
    return rc;
}

static JET_ERR listen_tcp(const char *ep, const char *host, const char *port, srv_listener *l)
{
    struct addrinfo hints, *res = NULL;
    int err = 0, fd = -1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo((host[0] == '\0' || strcmp(host, "*") == 0) ? NULL : host, port, &hints, &res);
    if (gai != 0)
        return js_fail(JET_errInvalidParameter, "listen=%s: %s", ep, gai_strerror(gai));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SRV_BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return js_fail(errno_to_jet(err), "listen=%s: %s", ep, strerror(err));
    l->fd = fd;
    l->path = NULL;
    return JET_errSuccess;
}

static void close_listeners(srv_server *srv)
{
    for (size_t i = 0; i < srv->nlis; i++) {
        srv_listener *l = &srv->lis[i];
        struct stat st;
        /* Remove the socket file only if it is still the one we bound (dev
         * and inode recorded at bind), and before closing the listener: the
         * path never names a socket that refuses connections, and the
         * daemon releases the instance (which a successor waits for before
         * it binds) only after this.  lstat-then-unlink is not atomic, but
         * nobody may bind this path while we still hold the instance. */
        if (l->path && lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == l->dev && st.st_ino == l->ino)
            unlink(l->path);
        if (l->fd >= 0)
            close(l->fd);
        free(l->path);
    }
    free(srv->lis);
    srv->lis = NULL;
    srv->nlis = 0;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                       */
/* ------------------------------------------------------------------ */

JET_ERR srv_start(js_instance *inst, const char *const *endpoints, size_t n,
                  srv_backup_info_fn info, void *info_ctx, srv_server **out)
{
    srv_server *srv;
    char *defpath = NULL;
    sigset_t all, old;
    JET_ERR rc;

    *out = NULL;
    if (!inst)
        return js_fail(JET_errInvalidParameter, "srv_start: no instance");
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return js_fail(JET_errOutOfMemory, "srv_start: out of memory");
    srv->inst = inst;
    srv->wake_fd = -1;
    srv->env.inst = inst;
    srv->env.backup_info = info;
    srv->env.backup_ctx = info_ctx;
    srv->env.client_count = client_count;
    srv->env.client_ctx = srv;
    srv->env.started = time(NULL);
    pthread_mutex_init(&srv->conns_lock, NULL);
    pthread_cond_init(&srv->conns_cond, NULL);

    if (n == 0) {
        const char *dir = js_instance_dir(inst);
        if (asprintf(&defpath, "%s/jetsnap.sock", dir) < 0) {
            defpath = NULL;
            rc = js_fail(JET_errOutOfMemory, "srv_start: out of memory");
            goto out_free;
        }
    }
    size_t nep = n ? n : 1;
    srv->lis = calloc(nep, sizeof *srv->lis);
    if (!srv->lis) {
        rc = js_fail(JET_errOutOfMemory, "srv_start: out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < nep; i++) {
        const char *ep = n ? endpoints[i] : defpath;
        char host[256], port[8];
        if (!ep) {
            rc = js_fail(JET_errInvalidParameter, "listen: endpoint %zu is NULL", i);
            goto out_listeners;
        }
        srv->lis[i].fd = -1;
        if (split_tcp(ep, host, sizeof host, port, sizeof port))
            rc = listen_tcp(ep, host, port, &srv->lis[i]);
        else
            rc = listen_unix(ep, &srv->lis[i]);
        if (rc != JET_errSuccess)
            goto out_listeners;
        srv->nlis++;
    }

    srv->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (srv->wake_fd < 0) {
        rc = js_fail(JET_errDiskIO, "srv_start: eventfd: %s", strerror(errno));
        goto out_listeners;
    }
    /* Our threads take no signals: the daemon handles SIGTERM/SIGINT (and
     * its FUSE wake-ups) in threads of its choosing.  Connection threads
     * inherit the mask from the acceptor. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int prc = pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        rc = js_fail(JET_errOutOfMemory, "srv_start: cannot start the acceptor thread: %s", strerror(prc));
        goto out_wake;
    }
    srv->acceptor_started = 1;
    free(defpath);
    *out = srv;
    return JET_errSuccess;

out_wake:
    close(srv->wake_fd);
out_listeners:
    close_listeners(srv);
out_free:
    free(defpath);
    pthread_cond_destroy(&srv->conns_cond);
    pthread_mutex_destroy(&srv->conns_lock);
    free(srv);
    return rc;
}

void srv_stop(srv_server *srv)
{
    if (!srv)
        return;
    /* 1. No new connections; wake every connection thread out of recv/send
     *    (a transaction in flight is finished or rolled back by its thread
     *    before it returns to the socket). */
    pthread_mutex_lock(&srv->conns_lock);
    srv->stopping = 1;
    for (srv_conn *c = srv->live; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&srv->conns_lock);

    if (srv->acceptor_started) {
        uint64_t one = 1;
        ssize_t w;
        do
            w = write(srv->wake_fd, &one, sizeof one);
        while (w < 0 && errno == EINTR);
        pthread_join(srv->acceptor, NULL);
    }

    /* 2. Wait for every connection thread to close its session. */
    pthread_mutex_lock(&srv->conns_lock);
    while (srv->nlive > 0)
        pthread_cond_wait(&srv->conns_cond, &srv->conns_lock);
    pthread_mutex_unlock(&srv->conns_lock);
    reap_zombies(srv);

    /* 3. Listening sockets and their files. */
    close_listeners(srv);
    close(srv->wake_fd);
    pthread_cond_destroy(&srv->conns_cond);
    pthread_mutex_destroy(&srv->conns_lock);
    free(srv);
}

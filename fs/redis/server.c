/*
 * server.c - listening sockets, start and stop of the Redis (RESP2) front.
 *
 * The connections themselves are served by one event-loop thread (loop.c),
 * which runs every command, and one committer thread that makes the log
 * durable for a whole turn of the loop at a time (protocol-level group
 * commit); loop.c's opening comment tells how.
 */
#include "srv_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SRV_BACKLOG      511

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

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
            rc = js_fail(js_err_from_errno(errno), "listen=%s: cannot remove stale socket: %s", path,
                         strerror(errno));
            goto out_close;
        }
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = js_fail(js_err_from_errno(errno), "listen=%s: bind: %s", path, strerror(errno));
        goto out_close;
    }
    /* Set the mode before listen(): until then no client can connect, so
     * the umask-derived mode is never usable by anyone. */
    if (chmod(path, 0660) != 0 || lstat(path, &st) != 0) {
        rc = js_fail(js_err_from_errno(errno), "listen=%s: chmod 0660: %s", path, strerror(errno));
        goto out_unlink;
    }
    if (listen(fd, SRV_BACKLOG) != 0) {
        rc = js_fail(js_err_from_errno(errno), "listen=%s: listen: %s", path, strerror(errno));
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
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
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
        return js_fail(js_err_from_errno(err), "listen=%s: %s", ep, strerror(err));
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

/* Each client is a descriptor: let maxclients (plus the engine's own files)
 * fit under the soft limit, as far as the hard limit allows. */
static void raise_fd_limit(size_t maxclients)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)maxclients + 64;
    if (rl.rlim_cur >= want || rl.rlim_cur == RLIM_INFINITY)
        return;
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl); /* best effort: accept backs off on EMFILE */
}

JET_ERR srv_start(js_instance *inst, const char *const *endpoints, size_t n,
                  srv_backup_info_fn info, void *info_ctx, srv_server **out)
{
    return srv_start_limits(inst, endpoints, n, info, info_ctx, NULL, out);
}

JET_ERR srv_start_limits(js_instance *inst, const char *const *endpoints, size_t n,
                         srv_backup_info_fn info, void *info_ctx, const srv_limits *lim,
                         srv_server **out)
{
    srv_server *srv;
    char *defpath = NULL;
    JET_ERR rc;

    *out = NULL;
    if (!inst)
        return js_fail(JET_errInvalidParameter, "srv_start: no instance");
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return js_fail(JET_errOutOfMemory, "srv_start: out of memory");
    srv->inst = inst;
    srv->ep = srv->stop_fd = srv->wake_fd = -1;
    if (lim)
        srv->lim = *lim;
    if (!srv->lim.maxclients)
        srv->lim.maxclients = SRV_DEFAULT_MAXCLIENTS;
    if (!srv->lim.client_buffer_total)
        srv->lim.client_buffer_total = SRV_DEFAULT_BUFFER_TOTAL;
    srv->env.inst = inst;
    srv->env.backup_info = info;
    srv->env.backup_ctx = info_ctx;
    srv->env.started = time(NULL);
    raise_fd_limit(srv->lim.maxclients);

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
    rc = srv_loop_start(srv);
    if (rc != JET_errSuccess)
        goto out_loop;
    free(defpath);
    *out = srv;
    return JET_errSuccess;

out_loop:
    srv_loop_stop(srv);
out_listeners:
    close_listeners(srv);
out_free:
    free(defpath);
    free(srv);
    return rc;
}

void srv_stop(srv_server *srv)
{
    if (!srv)
        return;
    /* The loop closes every connection and both threads end; only then do
     * the socket files go, so no endpoint answers after we return. */
    srv_loop_stop(srv);
    close_listeners(srv);
    free(srv);
}

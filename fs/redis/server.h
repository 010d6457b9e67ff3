/*
 * server.h - the Redis-protocol (RESP2) front of jetsnapfs.
 *
 * The daemon (fs/daemon/main.c) starts one server per instance after the instance is
 * ready and stops it before closing the instance.  The server owns its
 * listening sockets, its event-loop and committer threads, its connections
 * and their sessions.
 */
#ifndef JS_SERVER_H
#define JS_SERVER_H

#include <stddef.h>
#include "jetsnap.h"

typedef struct srv_server srv_server;

/** Renders the `# Backup` section of INFO (the same keys as the mount's
 *  `status` file) into buf; returns the length written (< cap). */
typedef size_t (*srv_backup_info_fn)(void *ctx, char *buf, size_t cap);

/* What an operator bounds (jetsnapfs -o ...).  0 in a field means its
 * default. */
typedef struct srv_limits {
    size_t maxclients;            /* connections at once; default 10000 */
    size_t client_buffer_total;   /* query + reply bytes across every
                                     connection; default 256 MiB */
    unsigned timeout;             /* close a client idle this many seconds;
                                     0: never */
    int commit_lazy;              /* the instance commits lazily: replies
                                     do not wait for the log */
} srv_limits;

#define SRV_DEFAULT_MAXCLIENTS     10000u
#define SRV_DEFAULT_BUFFER_TOTAL   (256u * 1024u * 1024u)
/* Per client: a request is capped by the parser (RESP_MAX_REQUEST); the
 * replies not yet read by a client by this (the client is closed). */
#define SRV_CLIENT_OUTPUT_MAX      (128u * 1024u * 1024u)

/** srv_start with limits (NULL: every default). */
JET_ERR srv_start_limits(js_instance *inst, const char *const *endpoints, size_t n,
                         srv_backup_info_fn info, void *info_ctx, const srv_limits *lim,
                         srv_server **out);

/** Start serving RESP2 on every endpoint: a filesystem path (a Unix socket,
 *  mode 0660, a stale socket file replaced) or "HOST:PORT" (TCP).  n == 0
 *  means DBDIR/jetsnap.sock.  Returns 0 or a JET_ERR with js_errdetail()
 *  naming the endpoint (JET_errInvalidParameter for a bad endpoint,
 *  JET_errFileAccessDenied / JET_errDiskIO when it cannot listen). */
JET_ERR srv_start(js_instance *inst, const char *const *endpoints, size_t n,
                  srv_backup_info_fn info, void *info_ctx, srv_server **out);

/** Stop accepting, close every connection (no transaction is open between
 *  commands; replies still waiting for the log are dropped, their commits
 *  stay), join the threads, remove each socket file this server bound
 *  (only if the path still names that socket: same dev and inode as at
 *  bind), free.  When it returns, no endpoint of this server answers any
 *  more and none of its paths is touched again.  NULL is a no-op. */
void srv_stop(srv_server *srv);

#endif

/*
 * server.h - the Redis-protocol (RESP2) front of jetsnapfs.
 *
 * The daemon (fs/daemon/main.c) starts one server per instance after the instance is
 * ready and stops it before closing the instance.  The server owns its
 * listening sockets, its connection threads and its sessions.
 */
#ifndef JS_SERVER_H
#define JS_SERVER_H

#include <stddef.h>
#include "jetsnap.h"

typedef struct srv_server srv_server;

/** Renders the `# Backup` section of INFO (the same keys as the mount's
 *  `status` file) into buf; returns the length written (< cap). */
typedef size_t (*srv_backup_info_fn)(void *ctx, char *buf, size_t cap);

/** Start serving RESP2 on every endpoint: a filesystem path (a Unix socket,
 *  mode 0660, a stale socket file replaced) or "HOST:PORT" (TCP).  n == 0
 *  means DBDIR/jetsnap.sock.  Returns 0 or a JET_ERR with js_errdetail()
 *  naming the endpoint (JET_errInvalidParameter for a bad endpoint,
 *  JET_errFileAccessDenied / JET_errDiskIO when it cannot listen). */
JET_ERR srv_start(js_instance *inst, const char *const *endpoints, size_t n,
                  srv_backup_info_fn info, void *info_ctx, srv_server **out);

/** Stop accepting, close every connection (a transaction in flight is rolled
 *  back), join the threads, remove each socket file this server bound
 *  (only if the path still names that socket: same dev and inode as at
 *  bind), free.  When it returns, no endpoint of this server answers any
 *  more and none of its paths is touched again.  NULL is a no-op. */
void srv_stop(srv_server *srv);

#endif

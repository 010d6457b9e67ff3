/*
 * commands.h - the Redis command table of jetsnapfs (SPEC section 5).
 *
 * server.c parses requests (resp.c) and hands each complete command to
 * cmd_execute() together with the connection's command state (cmd_conn):
 * its engine session, its reply buffer, its MULTI queue and its SCAN
 * positions.  Handlers write exactly one reply per command into the reply
 * buffer.  A write is acknowledged only after the engine committed it
 * (auto-commit of a single js_put/js_del, or js_txn_commit).
 *
 * Thread rules: a cmd_conn belongs to its connection's thread; the cmd_env
 * is shared and read-only except for what its callbacks do.
 */
#ifndef JS_COMMANDS_H
#define JS_COMMANDS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jetsnap.h"
#include "resp.h"
#include "server.h"

/* Server-wide facts the commands report (INFO). */
typedef struct cmd_env {
    js_instance *inst;
    srv_backup_info_fn backup_info;     /* may be NULL */
    void *backup_ctx;
    /* The server's lines of INFO's "clients" or "stats" section
     * ("key:value\r\n" each) into buf; returns the length (< cap).  May be
     * NULL. */
    size_t (*server_info)(void *ctx, const char *section, char *buf, size_t cap);
    /* Bytes every connection's buffers hold now (INFO's # Memory counts
     * them).  May be NULL. */
    size_t (*client_bytes)(void *ctx);
    void *client_ctx;
    time_t started;
    struct cmd_watch_list *watchers;    /* NULL: WATCH refused */
} cmd_env;

/* SCAN positions remembered per connection: a cursor number and the last key
 * that cursor returned, so the next call resumes right after that key. */
#define CMD_SCAN_SLOTS 8
typedef struct cmd_scan_pos {
    uint64_t cursor;                    /* 0: slot unused */
    size_t klen;
    unsigned char key[JS_KEY_MAX];
} cmd_scan_pos;

/* The MULTI queue is bounded like a request (resp.h caps). */
#define CMD_MULTI_MAX_CMDS  100000u
#define CMD_MULTI_MAX_BYTES (64u * 1024u * 1024u)

struct cmd_queued;
struct cmd_watched;
struct cmd_conn;

/* The event loop's group commit (loop.c): the commands of a turn share one
 * engine write transaction on one session, opened by the first command that
 * writes and committed by the loop once per turn, so each page the turn
 * touches is copied, logged and installed once.  Each command runs behind
 * its own savepoint: one that fails (an engine error half-way, a bad input,
 * an aborted EXEC) is rolled back to it and changes nothing, while the
 * others stay. */
typedef struct cmd_batch {
    js_session *sess;       /* every connection's commands run on it */
    int open;               /* its write transaction is open */
} cmd_batch;

/* Connections with watched keys (cmd_watch.c); the server owns one. */
typedef struct cmd_watch_list {
    struct cmd_conn *head;
} cmd_watch_list;

#define CMD_WATCH_MAX 10000u   /* keys one connection may watch */

struct cmd_conn {
    const cmd_env *env;
    js_session *sess;
    resp_buf *out;          /* replies go here */
    int quit;               /* QUIT seen: close once the reply is sent */
    /* Group commit (server.c): commits use these flags (JS_COMMIT_FLAG_LAZY
     * under the event loop, which makes a whole turn durable at once) and
     * raise commit_pos to the log position the reply must wait for. */
    unsigned commit_flags;
    uint64_t commit_pos;
    cmd_batch *batch;       /* NULL: each command commits on its own;
                               else sess is batch->sess */
    /* MULTI state */
    int in_multi;           /* between MULTI and EXEC/DISCARD */
    int multi_dirty;        /* a command was refused while queueing */
    struct cmd_queued *queue_head, **queue_tail;
    size_t queue_n, queue_bytes;
    int in_exec;            /* handlers run inside EXEC's transaction */
    JET_ERR exec_err;       /* engine failure that aborts the EXEC */
    /* WATCH state (cmd_watch.c) */
    struct cmd_watched *watch_keys;
    size_t watch_n, watch_cap;
    int watch_dirty;        /* a watched key was written since WATCH */
    int watch_linked;       /* in env->watchers */
    struct cmd_conn *watch_next, *watch_prev;
    /* SCAN state */
    cmd_scan_pos scan[CMD_SCAN_SLOTS];
    unsigned scan_next;     /* slot to overwrite next */
};
typedef struct cmd_conn cmd_conn;

void cmd_conn_init(cmd_conn *c, const cmd_env *env, js_session *sess, resp_buf *out);
/** Drop the MULTI queue and the watched keys (a transaction is never left open between
 *  commands, so there is nothing to roll back). */
void cmd_conn_free(cmd_conn *c);

/** Run one parsed command (argc >= 1) and append its reply to c->out.
 *  With c->batch, it runs in the batch's transaction when that is open
 *  (behind a savepoint), and opens it if it writes. */
void cmd_execute(cmd_conn *c, size_t argc, const resp_arg *argv);

/** Redis's glob (stringmatchlen): '*', '?', '[...]' with '^' and ranges,
 *  '\' escapes.  Bounded: no exponential backtracking. */
int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen, int nocase);

/** Number of commands in the table (COMMAND COUNT). */
size_t cmd_table_size(void);

#endif

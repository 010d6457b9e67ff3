/*
 * commands.c - the command table, dispatch and MULTI/EXEC of the Redis
 * front; the handlers live by family in cmd_keys.c, cmd_scan.c and
 * cmd_server.c.
 *
 * Each handler gets the connection's cmd_conn and the arguments (argv[0] is
 * the command name) and appends exactly one reply to c->out.  Arity is
 * checked from the table before a handler runs (Redis convention: n > 0
 * exactly n arguments, n < 0 at least -n).
 *
 * Transactions: a handler that touches several keys, or reads and then
 * writes (INCR), runs in one engine transaction that it opens and ends
 * itself (cmd_txn_open / cmd_txn_close) -- unless it runs inside EXEC,
 * which has already opened the one transaction all queued commands share,
 * or in the event loop's batch (cmd_batch, commands.h), where every
 * command of a turn shares the batch's transaction behind its own
 * savepoint and the loop commits it at the end of the turn.  No transaction
 * is ever left open across a turn, so a slow or vanished client never holds
 * the engine's writer lock.
 *
 * Errors inside EXEC follow Redis where the engine allows it: a command
 * refused for its input (bad key or value length, not an integer) gets its
 * error in the EXEC array and the others still apply; an engine failure
 * (I/O, instance unavailable) aborts the whole transaction: it is rolled
 * back and EXEC answers a single error.
 */
#include "cmd_family.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void cmd_fn(cmd_conn *c, size_t argc, const resp_arg *argv);

#define CMD_NOQUEUE 0x1u   /* runs at once even inside MULTI */

typedef struct cmd_def {
    const char *name;
    int arity;
    unsigned flags;
    cmd_fn *fn;
} cmd_def;

/* A queued command: its arguments are copied into the same allocation. */
typedef struct cmd_queued {
    struct cmd_queued *next;
    const cmd_def *def;
    size_t argc;
    resp_arg argv[];
} cmd_queued;

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

int cmd_arg_is(const resp_arg *a, const char *s)
{
    return a->len == strlen(s) && strcasecmp(a->p, s) == 0;
}

int cmd_is_input_error(JET_ERR err)
{
    return err == JET_errKeyTooBig || err == JET_errRecordTooBig ||
           err == JET_errInvalidParameter;
}

void cmd_reply_jet(cmd_conn *c, JET_ERR err)
{
    if (c->in_exec && !cmd_is_input_error(err) && c->exec_err == 0)
        c->exec_err = err;
    switch (err) {
    case JET_errKeyTooBig:
        resp_add_error(c->out, "ERR key too long: keys are 1..%u bytes", JS_KEY_MAX);
        break;
    case JET_errRecordTooBig:
        resp_add_error(c->out, "ERR value too large: values are at most %u bytes", JS_VALUE_MAX);
        break;
    default: {
        const char *d = js_errdetail();
        resp_add_error(c->out, "ERR %s (%d): %s%s%s", js_errname(err), err, js_errmsg(err),
                       d[0] ? ": " : "", d);
        break;
    }
    }
}

void cmd_reply_arity(cmd_conn *c, const resp_arg *name)
{
    char lower[64];
    size_t n = name->len < sizeof lower - 1 ? name->len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name->p[i]);
    lower[n] = '\0';
    resp_add_error(c->out, "ERR wrong number of arguments for '%s' command", lower);
}

int cmd_key_ok(cmd_conn *c, const resp_arg *k)
{
    if (k->len == 0) {
        resp_add_error(c->out, "ERR empty key: keys are 1..%u bytes", JS_KEY_MAX);
        return 0;
    }
    return 1;
}

JET_ERR cmd_txn_open(cmd_conn *c, unsigned flags, int *opened)
{
    *opened = 0;
    if (c->in_exec)
        return JET_errSuccess;
    cmd_batch *b = c->batch;
    if (b && b->open)
        return JET_errSuccess;    /* reads and writes see the batch */
    if (b && !(flags & JS_TXN_READONLY)) {
        /* The first write of the turn opens the batch; its savepoint is
         * this command's start. */
        JET_ERR rc = js_txn_begin(b->sess, 0);
        if (rc == JET_errSuccess && (rc = js_txn_savepoint(b->sess)) != JET_errSuccess)
            js_txn_rollback(b->sess);
        if (rc == JET_errSuccess)
            b->open = 1;
        return rc;
    }
    JET_ERR rc = js_txn_begin(c->sess, flags);
    if (rc == JET_errSuccess)
        *opened = 1;
    return rc;
}

JET_ERR cmd_commit(cmd_conn *c)
{
    uint64_t pos = 0;
    JET_ERR rc = js_txn_commit_pos(c->sess, c->commit_flags, &pos);
    if (pos > c->commit_pos)
        c->commit_pos = pos;
    return rc;
}

JET_ERR cmd_txn_close(cmd_conn *c, int opened, int read_only, JET_ERR rc)
{
    if (!opened) {
        /* In the batch, outside EXEC (which decides for all its commands):
         * a failed command leaves nothing behind. */
        if (rc != JET_errSuccess && !read_only && !c->in_exec && c->batch && c->batch->open)
            js_txn_rollback_savepoint(c->batch->sess);
        return rc;
    }
    if (rc == JET_errSuccess && !read_only)
        return cmd_commit(c);
    JET_ERR rb = js_txn_rollback(c->sess);
    return rc != JET_errSuccess ? rc : rb;
}

unsigned cmd_read_flags(size_t nkeys)
{
    (void)nkeys;
    return JS_TXN_READONLY;
}

/* ------------------------------------------------------------------ */
/* Connection state                                                     */
/* ------------------------------------------------------------------ */

void cmd_conn_init(cmd_conn *c, const cmd_env *env, js_session *sess, resp_buf *out)
{
    memset(c, 0, sizeof *c);
    c->env = env;
    c->sess = sess;
    c->out = out;
    c->queue_tail = &c->queue_head;
}

static void cmd_queue_clear(cmd_conn *c)
{
    cmd_queued *q = c->queue_head;
    while (q) {
        cmd_queued *next = q->next;
        free(q);
        q = next;
    }
    c->queue_head = NULL;
    c->queue_tail = &c->queue_head;
    c->queue_n = 0;
    c->queue_bytes = 0;
}

void cmd_conn_free(cmd_conn *c)
{
    cmd_watch_clear(c);
    cmd_queue_clear(c);
    c->in_multi = 0;
}

static void cmd_multi(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    if (c->in_multi) {
        resp_add_error(c->out, "ERR MULTI calls can not be nested");
        return;
    }
    c->in_multi = 1;
    c->multi_dirty = 0;
    resp_add_status(c->out, "OK");
}

static void cmd_discard(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    if (!c->in_multi) {
        resp_add_error(c->out, "ERR DISCARD without MULTI");
        return;
    }
    cmd_queue_clear(c);
    cmd_watch_clear(c);
    c->in_multi = 0;
    resp_add_status(c->out, "OK");
}

/* An aborted EXEC: its own transaction is rolled back, or in the batch
 * everything since its savepoint (the EXEC's start). */
static void exec_undo(cmd_conn *c, int opened)
{
    if (opened)
        js_txn_rollback(c->sess);
    else
        js_txn_rollback_savepoint(c->batch->sess);
}

static void cmd_exec(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    resp_buf replies, *saved_out = c->out;
    size_t n = 0;
    JET_ERR rc;

    if (!c->in_multi) {
        resp_add_error(c->out, "ERR EXEC without MULTI");
        return;
    }
    c->in_multi = 0;
    int watch_dirty = c->watch_dirty;
    cmd_watch_clear(c);
    if (c->multi_dirty) {
        cmd_queue_clear(c);
        resp_add_error(c->out, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    if (watch_dirty) {
        /* A watched key changed since WATCH: run nothing (Redis's null). */
        cmd_queue_clear(c);
        resp_add_raw(c->out, "*-1\r\n", 5);
        return;
    }
    int opened;
    rc = cmd_txn_open(c, 0, &opened);
    if (rc != JET_errSuccess) {
        cmd_queue_clear(c);
        cmd_reply_jet(c, rc);
        return;
    }
    /* The queued commands write their replies aside: they are sent only if
     * the transaction commits. */
    resp_buf_init(&replies);
    c->out = &replies;
    c->in_exec = 1;
    c->exec_err = JET_errSuccess;
    for (cmd_queued *q = c->queue_head; q && c->exec_err == JET_errSuccess; q = q->next) {
        q->def->fn(c, q->argc, q->argv);
        n++;
    }
    c->in_exec = 0;
    c->out = saved_out;
    cmd_queue_clear(c);

    if (c->exec_err != JET_errSuccess) {
        JET_ERR err = c->exec_err;
        exec_undo(c, opened);
        resp_add_error(c->out, "EXECABORT Transaction rolled back: %s (%d): %s",
                       js_errname(err), err, js_errmsg(err));
    } else if (replies.oom) {
        exec_undo(c, opened);
        c->out->oom = 1;
    } else if (opened && (rc = cmd_commit(c)) != JET_errSuccess) {
        cmd_reply_jet(c, rc);
    } else {
        resp_add_array(c->out, (long long)n);
        resp_add_raw(c->out, replies.p, replies.len);
    }
    c->exec_err = JET_errSuccess;
    resp_buf_free(&replies);
}

static const cmd_def cmd_table[] = {
    { "ping",     -1, 0, cmd_ping },
    { "echo",      2, 0, cmd_echo },
    { "set",      -3, 0, cmd_set },
    { "get",       2, 0, cmd_get },
    { "del",      -2, 0, cmd_del },
    { "exists",   -2, 0, cmd_exists },
    { "mset",     -3, 0, cmd_mset },
    { "mget",     -2, 0, cmd_mget },
    { "incr",      2, 0, cmd_incr },
    { "dbsize",    1, 0, cmd_dbsize },
    { "scan",     -2, 0, cmd_scan },
    { "multi",     1, CMD_NOQUEUE, cmd_multi },
    { "exec",      1, CMD_NOQUEUE, cmd_exec },
    { "discard",   1, CMD_NOQUEUE, cmd_discard },
    { "info",     -1, 0, cmd_info },
    { "select",    2, 0, cmd_select },
    { "quit",     -1, CMD_NOQUEUE, cmd_quit },
    { "command",  -1, 0, cmd_command },
    { "config",   -2, 0, cmd_config },
    { "watch",    -2, CMD_NOQUEUE, cmd_watch },
    { "unwatch",   1, 0, cmd_unwatch },
};

size_t cmd_table_size(void)
{
    return sizeof cmd_table / sizeof cmd_table[0];
}

static const cmd_def *lookup(const resp_arg *name)
{
    for (size_t i = 0; i < cmd_table_size(); i++)
        if (cmd_arg_is(name, cmd_table[i].name))
            return &cmd_table[i];
    return NULL;
}

/* Copy a command into the MULTI queue, within the queue's caps. */
static int queue_push(cmd_conn *c, const cmd_def *def, size_t argc, const resp_arg *argv)
{
    size_t bytes = sizeof(cmd_queued) + argc * sizeof(resp_arg);
    for (size_t i = 0; i < argc; i++)
        bytes += argv[i].len + 1;
    if (c->queue_n + 1 > CMD_MULTI_MAX_CMDS || c->queue_bytes + bytes > CMD_MULTI_MAX_BYTES)
        return -1;
    cmd_queued *q = malloc(bytes);
    if (!q)
        return -1;
    char *data = (char *)&q->argv[argc];
    q->next = NULL;
    q->def = def;
    q->argc = argc;
    for (size_t i = 0; i < argc; i++) {
        memcpy(data, argv[i].p, argv[i].len);
        data[argv[i].len] = '\0';
        q->argv[i].p = data;
        q->argv[i].len = argv[i].len;
        data += argv[i].len + 1;
    }
    *c->queue_tail = q;
    c->queue_tail = &q->next;
    c->queue_n++;
    c->queue_bytes += bytes;
    return 0;
}

void cmd_execute(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    const cmd_def *def = lookup(&argv[0]);

    if (!def) {
        /* Redis's wording: the name and the first arguments, within about
         * 128 bytes, each quoted. */
        char args[160];
        size_t used = 0;
        args[0] = '\0';
        for (size_t i = 1; i < argc && used < 128; i++) {
            int n = snprintf(args + used, sizeof args - used, "'%.*s' ",
                             (int)(128 - used), argv[i].p);
            if (n < 0)
                break;
            used += (size_t)n < sizeof args - used ? (size_t)n : sizeof args - used - 1;
        }
        if (c->in_multi)
            c->multi_dirty = 1;
        resp_add_error(c->out, "ERR unknown command '%.128s', with args beginning with: %s", argv[0].p, args);
        return;
    }
    if ((def->arity > 0 && argc != (size_t)def->arity) ||
        (def->arity < 0 && argc < (size_t)-def->arity)) {
        if (c->in_multi)
            c->multi_dirty = 1;
        cmd_reply_arity(c, &argv[0]);
        return;
    }
    if (c->in_multi && !(def->flags & CMD_NOQUEUE)) {
        if (queue_push(c, def, argc, argv) != 0) {
            c->multi_dirty = 1;
            resp_add_error(c->out, "ERR MULTI queue too large (at most %u commands, %u bytes)", CMD_MULTI_MAX_CMDS, CMD_MULTI_MAX_BYTES);
            return;
        }
        resp_add_status(c->out, "QUEUED");
        return;
    }
    if (c->batch && c->batch->open) {
        JET_ERR rc = js_txn_savepoint(c->batch->sess);
        if (rc != JET_errSuccess) {
            cmd_reply_jet(c, rc);
            return;
        }
    }
    def->fn(c, argc, argv);
}

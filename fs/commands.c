/*
 * commands.c - the command table and handlers of the Redis front.
 *
 * Each handler gets the connection's cmd_conn and the arguments (argv[0] is
 * the command name) and appends exactly one reply to c->out.  Arity is
 * checked from the table before a handler runs (Redis convention: n > 0
 * exactly n arguments, n < 0 at least -n).
 *
 * Transactions: a handler that touches several keys, or reads and then
 * writes (INCR), runs in one engine transaction that it opens and ends
 * itself (txn_open / txn_close) -- unless it runs inside EXEC, which has
 * already opened the one transaction all queued commands share.  No
 * transaction is ever left open between two commands, so a slow or vanished
 * client never holds the engine's writer lock.
 *
 * Errors inside EXEC follow Redis where the engine allows it: a command
 * refused for its input (bad key or value length, not an integer) gets its
 * error in the EXEC array and the others still apply; an engine failure
 * (I/O, instance unavailable) aborts the whole transaction: it is rolled
 * back and EXEC answers a single error.
 */
#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define JETSNAP_VERSION "0.1.0"
/* Clients such as redis-cli and client libraries read redis_version to pick
 * features; we speak the RESP2 subset of Redis 7.0, so we report that. */
#define REDIS_COMPAT_VERSION "7.0.0"

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

static int parse_u64(const char *s, size_t n, unsigned long long *out)
{
    unsigned long long v = 0;
    if (n == 0 || n > 20)
        return -1;
    if (s[0] == '0' && n > 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int arg_is(const resp_arg *a, const char *s)
{
    return a->len == strlen(s) && strcasecmp(a->p, s) == 0;
}

/* Errors caused by the request itself: inside EXEC they stay local to the
 * command.  Everything else aborts EXEC. */
static int is_input_error(JET_ERR err)
{
    return err == JET_errKeyTooBig || err == JET_errRecordTooBig ||
           err == JET_errInvalidParameter;
}

/* Reply to an engine error with a message a Redis user can act on. */
static void reply_jet(cmd_conn *c, JET_ERR err)
{
    if (c->in_exec && !is_input_error(err) && c->exec_err == 0)
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

static void reply_arity(cmd_conn *c, const resp_arg *name)
{
    char lower[64];
    size_t n = name->len < sizeof lower - 1 ? name->len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name->p[i]);
    lower[n] = '\0';
    resp_add_error(c->out, "ERR wrong number of arguments for '%s' command", lower);
}

/* Keys are 1..255 bytes (SPEC 5).  The engine refuses a long key with
 * JET_errKeyTooBig; an empty key would come back as the generic
 * JET_errInvalidParameter, so it is named here instead. */
static int key_ok(cmd_conn *c, const resp_arg *k)
{
    if (k->len == 0) {
        resp_add_error(c->out, "ERR empty key: keys are 1..%u bytes", JS_KEY_MAX);
        return 0;
    }
    return 1;
}

/* Open the command's own transaction, unless EXEC's is already open. */
static JET_ERR txn_open(cmd_conn *c, unsigned flags, int *opened)
{
    *opened = 0;
    if (c->in_exec)
        return JET_errSuccess;
    JET_ERR rc = js_txn_begin(c->sess, flags);
    if (rc == JET_errSuccess)
        *opened = 1;
    return rc;
}

/* End what txn_open opened: commit on success, roll back on failure; a
 * transaction that only read (read_only, whatever its flags) is just
 * rolled back.  Returns the first error. */
static JET_ERR txn_close(cmd_conn *c, int opened, int read_only, JET_ERR rc)
{
    if (!opened)
        return rc;
    if (rc == JET_errSuccess && !read_only)
        return js_txn_commit(c->sess, 0);
    JET_ERR rb = js_txn_rollback(c->sess);
    return rc != JET_errSuccess ? rc : rb;
}

/* Flags for a transaction that only reads several keys and must see them
 * as of one commit (MGET, EXISTS): the engine's read-only transaction is a
 * snapshot, and it does not exclude other readers or writers' work (only
 * the moment a commit installs its pages waits for it). */
static unsigned consistent_read_flags(size_t nkeys)
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

static void queue_clear(cmd_conn *c)
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
    queue_clear(c);
    c->in_multi = 0;
}

/* ------------------------------------------------------------------ */
/* Handlers                                                             */
/* ------------------------------------------------------------------ */

static void cmd_ping(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    if (argc > 2) {
        reply_arity(c, &argv[0]);
        return;
    }
    if (argc == 2)
        resp_add_bulk(c->out, argv[1].p, argv[1].len);
    else
        resp_add_status(c->out, "PONG");
}

static void cmd_echo(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    resp_add_bulk(c->out, argv[1].p, argv[1].len);
}

static void cmd_set(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    /* Only the plain form: EX, PX, NX, XX, KEEPTTL, GET are not supported. */
    if (argc != 3) {
        resp_add_error(c->out, "ERR syntax error");
        return;
    }
    if (!key_ok(c, &argv[1]))
        return;
    JET_ERR rc = js_put(c->sess, argv[1].p, argv[1].len, argv[2].p, argv[2].len);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_status(c->out, "OK");
}

static void cmd_get(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    void *val = NULL;
    size_t vlen = 0;

    if (!key_ok(c, &argv[1]))
        return;
    JET_ERR rc = js_get(c->sess, argv[1].p, argv[1].len, &val, &vlen);
    if (rc == JET_errRecordNotFound) {
        resp_add_null(c->out);
        return;
    }
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_bulk(c->out, val, vlen);
    free(val);
}

static void cmd_del(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    long long deleted = 0;
    int opened;
    JET_ERR rc;

    for (size_t i = 1; i < argc; i++)
        if (!key_ok(c, &argv[i]))
            return;
    if (argc == 2) {
        /* One key: the engine's own auto-commit transaction suffices. */
        rc = js_del(c->sess, argv[1].p, argv[1].len);
        if (rc == JET_errRecordNotFound) {
            resp_add_int(c->out, 0);
            return;
        }
        if (rc != JET_errSuccess) {
            reply_jet(c, rc);
            return;
        }
        resp_add_int(c->out, 1);
        return;
    }
    rc = txn_open(c, 0, &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i++) {
        rc = js_del(c->sess, argv[i].p, argv[i].len);
        if (rc == JET_errSuccess)
            deleted++;
        else if (rc == JET_errRecordNotFound)
            rc = JET_errSuccess;
    }
    rc = txn_close(c, opened, 0, rc);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, deleted);
}

static void cmd_exists(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    long long found = 0;
    int opened;
    JET_ERR rc;

    for (size_t i = 1; i < argc; i++)
        if (!key_ok(c, &argv[i]))
            return;
    rc = txn_open(c, consistent_read_flags(argc - 1), &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i++) {
        void *val = NULL;
        size_t vlen;
        rc = js_get(c->sess, argv[i].p, argv[i].len, &val, &vlen);
        if (rc == JET_errSuccess)
            found++; /* repeated keys count again, as in Redis */
        else if (rc == JET_errRecordNotFound)
            rc = JET_errSuccess;
        free(val);
    }
    rc = txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, found);
}

static void cmd_mset(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    int opened;
    JET_ERR rc;

    if ((argc - 1) % 2 != 0) {
        reply_arity(c, &argv[0]);
        return;
    }
    for (size_t i = 1; i < argc; i += 2)
        if (!key_ok(c, &argv[i]))
            return;
    rc = txn_open(c, 0, &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i += 2)
        rc = js_put(c->sess, argv[i].p, argv[i].len, argv[i + 1].p, argv[i + 1].len);
    if (c->in_exec && rc != JET_errSuccess && is_input_error(rc)) {
        /* Inside EXEC an MSET refused half-way would leave its first pairs
         * in the shared transaction; that cannot be undone alone, so the
         * whole EXEC is aborted rather than half-applying one command. */
        c->exec_err = rc;
    }
    rc = txn_close(c, opened, 0, rc);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_status(c->out, "OK");
}

static void cmd_mget(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    resp_buf tmp;
    int opened;
    JET_ERR rc;

    /* Replies are built aside so an engine error half-way can still be one
     * clean error reply instead of a truncated array. */
    resp_buf_init(&tmp);
    rc = txn_open(c, consistent_read_flags(argc - 1), &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i++) {
        void *val = NULL;
        size_t vlen = 0;
        if (argv[i].len == 0 || argv[i].len > JS_KEY_MAX) {
            /* No such key can exist; Redis answers nil, not an error. */
            resp_add_null(&tmp);
            continue;
        }
        rc = js_get(c->sess, argv[i].p, argv[i].len, &val, &vlen);
        if (rc == JET_errSuccess)
            resp_add_bulk(&tmp, val, vlen);
        else if (rc == JET_errRecordNotFound) {
            resp_add_null(&tmp);
            rc = JET_errSuccess;
        }
        free(val);
    }
    rc = txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess)
        reply_jet(c, rc);
    else if (tmp.oom)
        c->out->oom = 1;
    else {
        resp_add_array(c->out, (long long)(argc - 1));
        resp_add_raw(c->out, tmp.p, tmp.len);
    }
    resp_buf_free(&tmp);
}

static void cmd_incr(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    void *val = NULL;
    size_t vlen = 0;
    long long v = 0;
    char num[32];
    int opened;
    JET_ERR rc;

    if (!key_ok(c, &argv[1]))
        return;
    rc = txn_open(c, 0, &opened);
    if (rc != JET_errSuccess)
        goto out_reply;
    rc = js_get(c->sess, argv[1].p, argv[1].len, &val, &vlen);
    if (rc == JET_errRecordNotFound) {
        rc = JET_errSuccess;
    } else if (rc == JET_errSuccess) {
        if (resp_parse_ll(val, vlen, &v) != 0) {
            txn_close(c, opened, 0, JET_errInvalidParameter);
            resp_add_error(c->out, "ERR value is not an integer or out of range");
            goto out_free;
        }
        if (v == LLONG_MAX) {
            txn_close(c, opened, 0, JET_errInvalidParameter);
            resp_add_error(c->out, "ERR increment or decrement would overflow");
            goto out_free;
        }
    }
    if (rc == JET_errSuccess) {
        v++;
        int n = snprintf(num, sizeof num, "%lld", v);
        rc = js_put(c->sess, argv[1].p, argv[1].len, num, (size_t)n);
    }
    rc = txn_close(c, opened, 0, rc);
out_reply:
    if (rc != JET_errSuccess)
        reply_jet(c, rc);
    else
        resp_add_int(c->out, v);
out_free:
    free(val);
}

static void cmd_dbsize(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    uint64_t n = 0;
    JET_ERR rc = js_count(c->sess, &n);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, (long long)n);
}

/* SCAN cursor [MATCH pattern] [COUNT n]
 *
 * The cursor counts the keys this scan has passed.  The connection
 * remembers, for its last few cursors, the last key each returned; a call
 * with such a cursor seeks just past that key, so every key present for the
 * whole scan is returned exactly once however the tree changes.  A cursor
 * the connection does not know (another connection's, or evicted) falls
 * back to skipping that many keys from the start: still a complete scan when
 * nothing is deleted meanwhile. */
static void cmd_scan(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    unsigned long long cursor, count = 10, examined = 0;
    const resp_arg *match = NULL;
    js_cursor *cur = NULL;
    cmd_scan_pos *pos = NULL;
    unsigned char last[JS_KEY_MAX];
    size_t last_len = 0;
    long long nfound = 0;
    int opened = 0, at_end = 0;
    resp_buf keys;
    JET_ERR rc;

    resp_buf_init(&keys);
    if (parse_u64(argv[1].p, argv[1].len, &cursor) != 0) {
        resp_add_error(c->out, "ERR invalid cursor");
        goto out;
    }
    for (size_t i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_add_error(c->out, "ERR syntax error");
            goto out;
        }
        if (arg_is(&argv[i], "MATCH")) {
            match = &argv[i + 1];
        } else if (arg_is(&argv[i], "COUNT")) {
            long long n;
            if (resp_parse_ll(argv[i + 1].p, argv[i + 1].len, &n) != 0) {
                resp_add_error(c->out, "ERR value is not an integer or out of range");
                goto out;
            }
            if (n < 1) {
                resp_add_error(c->out, "ERR syntax error");
                goto out;
            }
            count = (unsigned long long)n;
        } else {
            resp_add_error(c->out, "ERR syntax error");
            goto out;
        }
    }
    if (cursor != 0)
        for (unsigned i = 0; i < CMD_SCAN_SLOTS; i++)
            if (c->scan[i].cursor == cursor)
                pos = &c->scan[i];

    rc = txn_open(c, JS_TXN_READONLY, &opened);
    if (rc == JET_errSuccess)
        rc = js_cursor_open(c->sess, &cur);
    if (rc != JET_errSuccess)
        goto out_engine;
    if (pos) {
        rc = js_cursor_seek(cur, pos->key, pos->klen);
        if (rc == JET_errSuccess) {
            const void *k;
            size_t kl;
            rc = js_cursor_key(cur, &k, &kl);
            if (rc == JET_errSuccess && kl == pos->klen && memcmp(k, pos->key, kl) == 0)
                rc = js_cursor_next(cur);
        }
    } else {
        /* "From the first key" is klen 0.  The pointer is kept non-NULL:
         * the engine's key compare once handed it to memcmp even for 0
         * bytes, which UBSan aborts on. */
        static const unsigned char from_start[1];
        rc = js_cursor_seek(cur, from_start, 0);
        for (unsigned long long skip = 0; rc == JET_errSuccess && skip < cursor; skip++)
            rc = js_cursor_next(cur);
    }
    while (rc == JET_errSuccess && examined < count) {
        const void *k;
        size_t kl;
        rc = js_cursor_key(cur, &k, &kl);
        if (rc != JET_errSuccess)
            break;
        examined++;
        if (!match || cmd_glob_match(match->p, match->len, k, kl, 0)) {
            resp_add_bulk(&keys, k, kl);
            nfound++;
        }
        memcpy(last, k, kl);
        last_len = kl;
        rc = js_cursor_next(cur);
    }
    if (rc == JET_errRecordNotFound) {
        at_end = 1;
        rc = JET_errSuccess;
    }
out_engine:
    js_cursor_close(cur);
    rc = txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess) {
        reply_jet(c, rc);
        goto out;
    }
    if (keys.oom) {
        c->out->oom = 1;
        goto out;
    }
    {
        unsigned long long next = 0;
        char num[32];
        if (!at_end) {
            next = cursor + examined;
            /* Remember where this cursor stops; reuse a slot holding the same
             * number so one cursor never has two positions. */
            cmd_scan_pos *slot = NULL;
            for (unsigned i = 0; i < CMD_SCAN_SLOTS; i++)
                if (c->scan[i].cursor == next)
                    slot = &c->scan[i];
            if (!slot) {
                slot = &c->scan[c->scan_next];
                c->scan_next = (c->scan_next + 1) % CMD_SCAN_SLOTS;
            }
            slot->cursor = next;
            slot->klen = last_len;
            memcpy(slot->key, last, last_len);
        }
        int n = snprintf(num, sizeof num, "%llu", next);
        resp_add_array(c->out, 2);
        resp_add_bulk(c->out, num, (size_t)n);
        resp_add_array(c->out, nfound);
        resp_add_raw(c->out, keys.p, keys.len);
    }
out:
    resp_buf_free(&keys);
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
    queue_clear(c);
    c->in_multi = 0;
    resp_add_status(c->out, "OK");
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
    if (c->multi_dirty) {
        queue_clear(c);
        resp_add_error(c->out, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    rc = js_txn_begin(c->sess, 0);
    if (rc != JET_errSuccess) {
        queue_clear(c);
        reply_jet(c, rc);
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
    queue_clear(c);

    if (c->exec_err != JET_errSuccess) {
        JET_ERR err = c->exec_err;
        js_txn_rollback(c->sess);
        resp_add_error(c->out, "EXECABORT Transaction rolled back: %s (%d): %s",
                       js_errname(err), err, js_errmsg(err));
    } else if (replies.oom) {
        js_txn_rollback(c->sess);
        c->out->oom = 1;
    } else if ((rc = js_txn_commit(c->sess, 0)) != JET_errSuccess) {
        reply_jet(c, rc);
    } else {
        resp_add_array(c->out, (long long)n);
        resp_add_raw(c->out, replies.p, replies.len);
    }
    c->exec_err = JET_errSuccess;
    resp_buf_free(&replies);
}

/* Append "key:value\r\n" lines of the # Backup section from the daemon's
 * renderer, which writes the status file's "key: value\n" lines: INFO wants
 * CRLF line ends and no blank after the colon. */
static void info_backup(cmd_conn *c, resp_buf *b)
{
    char buf[16384];  /* status lines hold a path of up to PATH_MAX */
    size_t n;

    if (!c->env->backup_info) {
        resp_add_raw(b, "state:idle\r\n", 12);
        return;
    }
    n = c->env->backup_info(c->env->backup_ctx, buf, sizeof buf);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    buf[n] = '\0';
    for (char *line = buf; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len && line[len - 1] == '\r')
            len--;
        if (len && line[0] != '#') {
            char *colon = memchr(line, ':', len);
            if (colon && (size_t)(colon - line) + 1 < len && colon[1] == ' ') {
                resp_add_raw(b, line, (size_t)(colon - line) + 1);
                resp_add_raw(b, colon + 2, len - (size_t)(colon - line) - 2);
            } else {
                resp_add_raw(b, line, len);
            }
            resp_add_raw(b, "\r\n", 2);
        }
        line = end ? end + 1 : line + strlen(line);
    }
}

static void cmd_info(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    int all = 1, server = 0, clients = 0, keyspace = 0, backup = 0;
    char line[256];
    resp_buf b;

    for (size_t i = 1; i < argc; i++) {
        if (arg_is(&argv[i], "all") || arg_is(&argv[i], "everything") || arg_is(&argv[i], "default"))
            continue;
        all = 0;
        server |= arg_is(&argv[i], "server");
        clients |= arg_is(&argv[i], "clients");
        keyspace |= arg_is(&argv[i], "keyspace");
        backup |= arg_is(&argv[i], "backup");
    }
    if (argc == 1 || all)
        server = clients = keyspace = backup = 1;

    resp_buf_init(&b);
    if (server) {
        int n = snprintf(line, sizeof line,
                         "# Server\r\nredis_version:%s\r\njetsnap_version:%s\r\n"
                         "redis_mode:standalone\r\nprocess_id:%ld\r\nuptime_in_seconds:%lld\r\n"
                         "dbdir:%s\r\n",
                         REDIS_COMPAT_VERSION, JETSNAP_VERSION, (long)getpid(),
                         (long long)(time(NULL) - c->env->started),
                         c->env->inst ? js_instance_dir(c->env->inst) : "");
        resp_add_raw(&b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    if (clients) {
        size_t nc = c->env->client_count ? c->env->client_count(c->env->client_ctx) : 1;
        if (b.len)
            resp_add_raw(&b, "\r\n", 2);
        int n = snprintf(line, sizeof line, "# Clients\r\nconnected_clients:%zu\r\n", nc);
        resp_add_raw(&b, line, (size_t)n);
    }
    if (keyspace) {
        uint64_t keys = 0;
        JET_ERR rc = js_count(c->sess, &keys);
        if (rc != JET_errSuccess) {
            resp_buf_free(&b);
            reply_jet(c, rc);
            return;
        }
        if (b.len)
            resp_add_raw(&b, "\r\n", 2);
        int n = snprintf(line, sizeof line,
                         "# Keyspace\r\ndb0:keys=%" PRIu64 ",expires=0,avg_ttl=0\r\n", keys);
        resp_add_raw(&b, line, (size_t)n);
    }
    if (backup) {
        if (b.len)
            resp_add_raw(&b, "\r\n", 2);
        resp_add_raw(&b, "# Backup\r\n", 10);
        info_backup(c, &b);
    }
    if (b.oom)
        c->out->oom = 1;
    else
        resp_add_bulk(c->out, b.p ? b.p : "", b.len);
    resp_buf_free(&b);
}

static void cmd_select(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    long long db;
    if (resp_parse_ll(argv[1].p, argv[1].len, &db) != 0) {
        resp_add_error(c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (db != 0) {
        resp_add_error(c->out, "ERR DB index is out of range");
        return;
    }
    resp_add_status(c->out, "OK");
}

static void cmd_quit(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    c->quit = 1;
    resp_add_status(c->out, "OK");
}

static void cmd_command(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    /* Just enough for redis-cli and redis-benchmark: they ask for DOCS and
     * cope with an empty answer (no hints, no completion metadata). */
    if (argc == 1 || arg_is(&argv[1], "DOCS")) {
        resp_add_array(c->out, 0);
        return;
    }
    if (arg_is(&argv[1], "COUNT")) {
        resp_add_int(c->out, (long long)cmd_table_size());
        return;
    }
    if (arg_is(&argv[1], "INFO")) {
        resp_add_array(c->out, (long long)(argc - 2));
        for (size_t i = 2; i < argc; i++)
            resp_add_null(c->out);
        return;
    }
    resp_add_error(c->out, "ERR unknown subcommand '%.128s'. Try COMMAND HELP.", argv[1].p);
}

static void cmd_config(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    /* The settings a client may look for; jetsnap's real settings are the
     * daemon's -o options.  Persistence is the engine's own log, not RDB
     * snapshots or an AOF, hence "" and "no". */
    static const char *const params[][2] = {
        { "save", "" },
        { "appendonly", "no" },
        { "databases", "1" },
    };
    const size_t nparams = sizeof params / sizeof params[0];
    int hit[sizeof params / sizeof params[0]] = { 0 };
    long long pairs = 0;

    if (!arg_is(&argv[1], "GET")) {
        resp_add_error(c->out, "ERR unknown subcommand '%.128s'. Try CONFIG HELP.", argv[1].p);
        return;
    }
    if (argc < 3) {
        resp_add_error(c->out, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    for (size_t i = 2; i < argc; i++)
        for (size_t k = 0; k < nparams; k++)
            if (!hit[k] && cmd_glob_match(argv[i].p, argv[i].len, params[k][0], strlen(params[k][0]), 1)) {
                hit[k] = 1;
                pairs++;
            }
    resp_add_array(c->out, pairs * 2);
    for (size_t k = 0; k < nparams; k++)
        if (hit[k]) {
            resp_add_cbulk(c->out, params[k][0]);
            resp_add_cbulk(c->out, params[k][1]);
        }
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
};

size_t cmd_table_size(void)
{
    return sizeof cmd_table / sizeof cmd_table[0];
}

static const cmd_def *lookup(const resp_arg *name)
{
    for (size_t i = 0; i < cmd_table_size(); i++)
        if (arg_is(name, cmd_table[i].name))
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
        reply_arity(c, &argv[0]);
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
    def->fn(c, argc, argv);
}

/* ------------------------------------------------------------------ */
/* Glob                                                                 */
/* ------------------------------------------------------------------ */

static int fold(int ch, int nocase)
{
    return nocase ? tolower(ch) : ch;
}

/* Redis's stringmatchlen_impl.  *skip_longer is set once a '*' tried every
 * remaining suffix and failed: a longer suffix cannot match either, which
 * keeps patterns like "a*a*a*a*b" linear instead of exponential.  depth
 * bounds recursion for hostile patterns. */
static int glob_impl(const char *p, size_t pl, const char *s, size_t sl, int nocase,
                     int *skip_longer, int depth)
{
    if (depth > 1000)
        return 0;
    while (pl && sl) {
        switch (p[0]) {
        case '*':
            while (pl > 1 && p[1] == '*') {
                p++;
                pl--;
            }
            if (pl == 1)
                return 1;
            while (sl) {
                if (glob_impl(p + 1, pl - 1, s, sl, nocase, skip_longer, depth + 1))
                    return 1;
                if (*skip_longer)
                    return 0;
                s++;
                sl--;
            }
            *skip_longer = 1;
            return 0;
        case '?':
            s++;
            sl--;
            break;
        case '[': {
            int negate, match = 0;
            p++;
            pl--;
            negate = pl > 0 && p[0] == '^';
            if (negate) {
                p++;
                pl--;
            }
            for (;;) {
                if (pl == 0) {
                    /* Unterminated class: step back so the outer p++ lands
                     * on the end. */
                    p--;
                    pl++;
                    break;
                }
                if (p[0] == '\\' && pl >= 2) {
                    p++;
                    pl--;
                    if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase))
                        match = 1;
                } else if (p[0] == ']') {
                    break;
                } else if (pl >= 3 && p[1] == '-') {
                    int lo = fold((unsigned char)p[0], nocase), hi = fold((unsigned char)p[2], nocase);
                    int ch = fold((unsigned char)s[0], nocase);
                    if (lo > hi) {
                        int t = lo;
                        lo = hi;
                        hi = t;
                    }
                    p += 2;
                    pl -= 2;
                    if (ch >= lo && ch <= hi)
                        match = 1;
                } else if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase)) {
                    match = 1;
                }
                p++;
                pl--;
            }
            if (negate)
                match = !match;
            if (!match)
                return 0;
            s++;
            sl--;
            break;
        }
        case '\\':
            if (pl >= 2) {
                p++;
                pl--;
            }
            /* fall through */
        default:
            if (fold((unsigned char)p[0], nocase) != fold((unsigned char)s[0], nocase))
                return 0;
            s++;
            sl--;
            break;
        }
        p++;
        pl--;
        if (sl == 0)
            break;
    }
    /* Trailing stars match the empty rest of the string (unlike Redis,
     * "*" also matches an empty string). */
    if (sl == 0)
        while (pl && p[0] == '*') {
            p++;
            pl--;
        }
    return pl == 0 && sl == 0;
}

int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen, int nocase)
{
    int skip_longer = 0;
    return glob_impl(pat, plen, str, slen, nocase, &skip_longer, 0);
}

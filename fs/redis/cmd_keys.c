/*
 * cmd_keys.c - the key/value commands of the Redis front: SET, GET, DEL,
 * EXISTS, MSET, MGET, INCR, DBSIZE.  Transaction and error rules are in
 * commands.c's opening comment.
 */
#include "cmd_family.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

void cmd_set(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    /* Only the plain form: EX, PX, NX, XX, KEEPTTL, GET are not supported. */
    if (argc != 3) {
        resp_add_error(c->out, "ERR syntax error");
        return;
    }
    if (!cmd_key_ok(c, &argv[1]))
        return;
    int opened;
    JET_ERR rc = cmd_txn_open(c, 0, &opened);
    if (rc == JET_errSuccess)
        rc = js_put(c->sess, argv[1].p, argv[1].len, argv[2].p, argv[2].len);
    rc = cmd_txn_close(c, opened, 0, rc);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    cmd_watch_touch(c, argv[1].p, argv[1].len);
    resp_add_status(c->out, "OK");
}

void cmd_get(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    void *val = NULL;
    size_t vlen = 0;

    if (!cmd_key_ok(c, &argv[1]))
        return;
    JET_ERR rc = js_get(c->sess, argv[1].p, argv[1].len, &val, &vlen);
    if (rc == JET_errRecordNotFound) {
        resp_add_null(c->out);
        return;
    }
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    resp_add_bulk(c->out, val, vlen);
    free(val);
}

void cmd_del(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    long long deleted = 0;
    int opened;
    JET_ERR rc;

    for (size_t i = 1; i < argc; i++)
        if (!cmd_key_ok(c, &argv[i]))
            return;
    rc = cmd_txn_open(c, 0, &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i++) {
        rc = js_del(c->sess, argv[i].p, argv[i].len);
        if (rc == JET_errSuccess) {
            deleted++;
            cmd_watch_touch(c, argv[i].p, argv[i].len);
        } else if (rc == JET_errRecordNotFound)
            rc = JET_errSuccess;
    }
    rc = cmd_txn_close(c, opened, 0, rc);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, deleted);
}

void cmd_exists(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    long long found = 0;
    int opened;
    JET_ERR rc;

    for (size_t i = 1; i < argc; i++)
        if (!cmd_key_ok(c, &argv[i]))
            return;
    rc = cmd_txn_open(c, cmd_read_flags(argc - 1), &opened);
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
    rc = cmd_txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, found);
}

void cmd_mset(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    int opened;
    JET_ERR rc;

    if ((argc - 1) % 2 != 0) {
        cmd_reply_arity(c, &argv[0]);
        return;
    }
    for (size_t i = 1; i < argc; i += 2)
        if (!cmd_key_ok(c, &argv[i]))
            return;
    rc = cmd_txn_open(c, 0, &opened);
    for (size_t i = 1; rc == JET_errSuccess && i < argc; i += 2)
        rc = js_put(c->sess, argv[i].p, argv[i].len, argv[i + 1].p, argv[i + 1].len);
    if (c->in_exec && rc != JET_errSuccess && cmd_is_input_error(rc)) {
        /* Inside EXEC an MSET refused half-way would leave its first pairs
         * in the shared transaction; that cannot be undone alone, so the
         * whole EXEC is aborted rather than half-applying one command. */
        c->exec_err = rc;
    }
    rc = cmd_txn_close(c, opened, 0, rc);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    for (size_t i = 1; i < argc; i += 2)
        cmd_watch_touch(c, argv[i].p, argv[i].len);
    resp_add_status(c->out, "OK");
}

void cmd_mget(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    resp_buf tmp;
    int opened;
    JET_ERR rc;

    /* Replies are built aside so an engine error half-way can still be one
     * clean error reply instead of a truncated array. */
    resp_buf_init(&tmp);
    rc = cmd_txn_open(c, cmd_read_flags(argc - 1), &opened);
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
    rc = cmd_txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess)
        cmd_reply_jet(c, rc);
    else if (tmp.oom)
        c->out->oom = 1;
    else {
        resp_add_array(c->out, (long long)(argc - 1));
        resp_add_raw(c->out, tmp.p, tmp.len);
    }
    resp_buf_free(&tmp);
}

void cmd_incr(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    void *val = NULL;
    size_t vlen = 0;
    long long v = 0;
    char num[32];
    int opened;
    JET_ERR rc;

    if (!cmd_key_ok(c, &argv[1]))
        return;
    rc = cmd_txn_open(c, 0, &opened);
    if (rc != JET_errSuccess)
        goto out_reply;
    rc = js_get(c->sess, argv[1].p, argv[1].len, &val, &vlen);
    if (rc == JET_errRecordNotFound) {
        rc = JET_errSuccess;
    } else if (rc == JET_errSuccess) {
        if (resp_parse_ll(val, vlen, &v) != 0) {
            cmd_txn_close(c, opened, 0, JET_errInvalidParameter);
            resp_add_error(c->out, "ERR value is not an integer or out of range");
            goto out_free;
        }
        if (v == LLONG_MAX) {
            cmd_txn_close(c, opened, 0, JET_errInvalidParameter);
            resp_add_error(c->out, "ERR increment or decrement would overflow");
            goto out_free;
        }
    }
    if (rc == JET_errSuccess) {
        v++;
        int n = snprintf(num, sizeof num, "%lld", v);
        rc = js_put(c->sess, argv[1].p, argv[1].len, num, (size_t)n);
    }
    rc = cmd_txn_close(c, opened, 0, rc);
out_reply:
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
    } else {
        cmd_watch_touch(c, argv[1].p, argv[1].len);
        resp_add_int(c->out, v);
    }
out_free:
    free(val);
}

void cmd_dbsize(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    uint64_t n = 0;
    JET_ERR rc = js_count(c->sess, &n);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        return;
    }
    resp_add_int(c->out, (long long)n);
}

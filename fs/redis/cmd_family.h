/*
 * cmd_family.h - what commands.c shares with the handler files
 * (cmd_keys.c, cmd_scan.c, cmd_server.c): the helpers every handler uses
 * and the handlers the command table names.  Internal to the Redis front.
 *
 * Every handler appends exactly one reply to c->out; arity has been
 * checked from the table before it runs.
 */
#ifndef JS_CMD_FAMILY_H
#define JS_CMD_FAMILY_H

#include "commands.h"

/** 1 when argument a equals s, ignoring case. */
int cmd_arg_is(const resp_arg *a, const char *s);
/** 1 for errors caused by the request itself (key or value length, bad
 *  parameter): inside EXEC they stay local to the command; everything else
 *  aborts EXEC. */
int cmd_is_input_error(JET_ERR err);
/** Redis's "wrong number of arguments for 'name' command" error. */
void cmd_reply_arity(cmd_conn *c, const resp_arg *name);
/** Reply to an engine error with a message a Redis user can act on; inside
 *  EXEC an engine failure (not one caused by the input) also marks the
 *  transaction to be rolled back. */
void cmd_reply_jet(cmd_conn *c, JET_ERR err);
/** Keys are 1..255 bytes (SPEC 5).  The engine refuses a long key with
 *  JET_errKeyTooBig; an empty key would come back as the generic
 *  JET_errInvalidParameter, so it is named here instead.  Returns 0 after
 *  replying when k is empty. */
int cmd_key_ok(cmd_conn *c, const resp_arg *k);
/** Open the command's own transaction, unless EXEC's is already open
 *  (*opened tells which). */
JET_ERR cmd_txn_open(cmd_conn *c, unsigned flags, int *opened);
/** Commit the open transaction with c->commit_flags, raising
 *  c->commit_pos to where it ends in the log. */
JET_ERR cmd_commit(cmd_conn *c);
/** End what cmd_txn_open opened: commit on success, roll back on failure;
 *  a transaction that only read (read_only, whatever its flags) is just
 *  rolled back.  Returns the first error. */
JET_ERR cmd_txn_close(cmd_conn *c, int opened, int read_only, JET_ERR rc);
/** Flags for a transaction that only reads several keys and must see them
 *  as of one commit (MGET, EXISTS): the engine's read-only transaction is
 *  a snapshot, and it does not exclude other readers or writers' work (only
 *  the moment a commit installs its pages waits for it). */
unsigned cmd_read_flags(size_t nkeys);

/** Forget the connection's watched keys (after EXEC, DISCARD, UNWATCH,
 *  and when it closes). */
void cmd_watch_clear(cmd_conn *c);
/** A write of key succeeded: mark every connection watching it. */
void cmd_watch_touch(cmd_conn *c, const void *key, size_t len);

/* Handlers, by family. */
void cmd_set(cmd_conn *c, size_t argc, const resp_arg *argv);      /* cmd_keys.c */
void cmd_get(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_del(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_exists(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_mset(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_mget(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_incr(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_dbsize(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_scan(cmd_conn *c, size_t argc, const resp_arg *argv);     /* cmd_scan.c */
void cmd_ping(cmd_conn *c, size_t argc, const resp_arg *argv);     /* cmd_server.c */
void cmd_echo(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_info(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_select(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_quit(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_command(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_config(cmd_conn *c, size_t argc, const resp_arg *argv);
void cmd_watch(cmd_conn *c, size_t argc, const resp_arg *argv);    /* cmd_watch.c */
void cmd_unwatch(cmd_conn *c, size_t argc, const resp_arg *argv);

#endif

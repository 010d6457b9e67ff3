/*
 * cmd_watch.c - WATCH and UNWATCH: optimistic transactions as Redis client
 * libraries use them (WATCH keys, read, MULTI ... EXEC; EXEC answers a null
 * array and runs nothing when a watched key was written meanwhile).
 *
 * One thread runs every command (the event loop, server.c), so no lock is
 * needed: each watching connection is linked into the server's
 * cmd_watch_list with the keys it watches, and every successful write of a
 * key marks the connections watching it (cmd_watch_touch).  A write that
 * turns out to change nothing may still mark them, as in Redis: the
 * client retries, nothing is lost.
 */
#include "cmd_family.h"

#include <stdlib.h>
#include <string.h>

typedef struct cmd_watched {
    size_t len;
    unsigned char key[JS_KEY_MAX];
} cmd_watched;

static void unlink_conn(cmd_conn *c)
{
    cmd_watch_list *wl = c->env->watchers;
    if (!c->watch_linked || !wl)
        return;
    if (c->watch_prev)
        c->watch_prev->watch_next = c->watch_next;
    else
        wl->head = c->watch_next;
    if (c->watch_next)
        c->watch_next->watch_prev = c->watch_prev;
    c->watch_next = c->watch_prev = NULL;
    c->watch_linked = 0;
}

void cmd_watch_clear(cmd_conn *c)
{
    unlink_conn(c);
    free(c->watch_keys);
    c->watch_keys = NULL;
    c->watch_n = c->watch_cap = 0;
    c->watch_dirty = 0;
}

void cmd_watch_touch(cmd_conn *c, const void *key, size_t len)
{
    cmd_watch_list *wl = c->env->watchers;
    if (!wl)
        return;
    for (cmd_conn *w = wl->head; w; w = w->watch_next) {
        if (w->watch_dirty)
            continue;
        for (size_t i = 0; i < w->watch_n; i++)
            if (w->watch_keys[i].len == len && memcmp(w->watch_keys[i].key, key, len) == 0) {
                w->watch_dirty = 1;
                break;
            }
    }
}

void cmd_watch(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    cmd_watch_list *wl = c->env->watchers;
    if (c->in_multi) {
        resp_add_error(c->out, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    if (!wl) {
        resp_add_error(c->out, "ERR WATCH is not available here");
        return;
    }
    for (size_t i = 1; i < argc; i++) {
        if (argv[i].len == 0 || argv[i].len > JS_KEY_MAX)
            continue; /* no such key can ever be written */
        if (c->watch_n == CMD_WATCH_MAX) {
            resp_add_error(c->out, "ERR too many watched keys (at most %u)", CMD_WATCH_MAX);
            return;
        }
        if (c->watch_n == c->watch_cap) {
            size_t ncap = c->watch_cap ? c->watch_cap * 2 : 4;
            cmd_watched *nk = realloc(c->watch_keys, ncap * sizeof *nk);
            if (!nk) {
                resp_add_error(c->out, "ERR out of memory");
                return;
            }
            c->watch_keys = nk;
            c->watch_cap = ncap;
        }
        c->watch_keys[c->watch_n].len = argv[i].len;
        memcpy(c->watch_keys[c->watch_n].key, argv[i].p, argv[i].len);
        c->watch_n++;
    }
    if (!c->watch_linked) {
        c->watch_prev = NULL;
        c->watch_next = wl->head;
        if (wl->head)
            wl->head->watch_prev = c;
        wl->head = c;
        c->watch_linked = 1;
    }
    resp_add_status(c->out, "OK");
}

void cmd_unwatch(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    cmd_watch_clear(c);
    resp_add_status(c->out, "OK");
}

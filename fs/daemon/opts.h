/*
 * opts.h - command line of jetsnapfs (SPEC section 1).
 *
 * `jetsnapfs [options] DBDIR MOUNTPOINT`: -o takes comma-separated options
 * (repeatable), -f stays in the foreground, -d adds FUSE debug output
 * (implies -f), -h/--help and -V/--version print and exit 0.  Parsing is pure
 * (no I/O) so it can be tested in-process.
 */
#ifndef JS_FS_OPTS_H
#define JS_FS_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

#define OPTS_VERSION "0.1"

struct fs_opts {
    const char *dbdir;          /* as given (points into argv) */
    const char *mountpoint;     /* as given (points into argv) */
    js_params params;           /* page_size ... cache_size */
    int create;                 /* -o create */
    int allow_other;            /* -o allow_other */
    int snapshot_store_ahead;   /* -o snapshot_store_ahead (fs/daemon/snap_ahead.c) */
    int auto_unmount;           /* -o auto_unmount (tests) */
    int foreground;             /* -f or -d */
    int debug;                  /* -d */
    int show_help, show_version;
    char **listen;              /* listen= endpoints, malloc'd copies */
    size_t n_listen;
    char *backup_root;          /* backup_root=, malloc'd, NULL when unset */
    /* Redis endpoint limits (fs/redis/server.h); 0: the server's default. */
    uint64_t maxclients;        /* maxclients=N */
    uint64_t client_buffer_total; /* client_buffer_total=SIZE */
    uint64_t timeout;           /* timeout=SECONDS (0: never; the default) */
    char *archive_command;      /* archive_command=CMD, malloc'd, NULL when unset */
    uint64_t archive_command_timeout; /* seconds (0: the archiver's default, 300) */
    uint64_t archive_timeout;   /* seconds (0: off) */
};

/** Parse argv into *o (which it initialises).  Returns 0, or -1 with a
 *  one-line reason in err (usage error: exit status 2).  With show_help or
 *  show_version set, DBDIR and MOUNTPOINT may be missing.  Free with
 *  opts_free() in every case. */
int opts_parse(int argc, char **argv, struct fs_opts *o, char *err, size_t errcap);
void opts_free(struct fs_opts *o);

/** "64K", "5M", "1G", "8192" -> bytes; -1 on a malformed number.  The one
 *  parser is fs/proto's proto_parse_size(); this name stays for the tests. */
int opts_parse_size(const char *s, uint64_t *out);

/** The --help text. */
void opts_usage(void *file /* FILE* */);

#endif

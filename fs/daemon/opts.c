/*
 * opts.c - parse the jetsnapfs command line (SPEC section 1).
 *
 * Hand-written rather than fuse_opt: every option here is ours (none is
 * passed through to libfuse), and a refused value must name itself in the
 * usage error.
 */
#include "opts.h"
#include "proto/proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int opts_parse_size(const char *s, uint64_t *out)
{
    return proto_parse_size(s, out);
}

static int add_listen(struct fs_opts *o, const char *ep)
{
    char **n = realloc(o->listen, (o->n_listen + 1) * sizeof(*n));
    if (n == NULL)
        return -1;
    o->listen = n;
    if ((n[o->n_listen] = strdup(ep)) == NULL)
        return -1;
    o->n_listen++;
    return 0;
}

/*
 * Options mount(8) and mount.fuse3 put in the list for every filesystem
 * (`mount -t fuse.jetsnapfs DBDIR MNT -o ...`, an /etc/fstab line): they
 * mean nothing to jetsnapfs and are accepted so such a line works.  The
 * mount is always nosuid,nodev (libfuse's default), whatever dev/suid say:
 * it holds no device or set-id file.  `ro` is not among them: control must
 * stay writable, and live/ is read-only already.
 */
static int generic_mount_option(const char *item)
{
    static const char *const names[] = {
        "rw", "defaults", "dev", "nodev", "suid", "nosuid", "exec", "noexec",
        "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "diratime", "nodiratime", "lazytime", "nolazytime", "async", "auto", "noauto",
        "user", "nouser", "users", "owner", "group", "nofail", "_netdev", NULL
    };
    size_t i;

    /* x-systemd.automount, x-systemd.requires=..., x-gvfs-hide: userspace
     * options for systemd and friends; comment=... is their older form. */
    if (strncmp(item, "x-", 2) == 0 || strncmp(item, "comment=", 8) == 0)
        return 1;
    for (i = 0; names[i] != NULL; i++)
        if (strcmp(item, names[i]) == 0)
            return 1;
    return 0;
}

/* One `name[=value]` item of a -o list. */
static int parse_one(struct fs_opts *o, char *item, char *err, size_t cap)
{
    char *val = strchr(item, '=');
    uint64_t n;

    if (generic_mount_option(item))
        return 0;
    if (strcmp(item, "ro") == 0)
        return fail(err, cap, "option ro: not supported (control must stay writable; "
                              "live/ is read-only already)");
    if (val != NULL)
        *val++ = '\0';
#define FLAG(name, field) \
    if (strcmp(item, name) == 0) { \
        if (val != NULL) return fail(err, cap, "option %s takes no value", name); \
        o->field = 1; return 0; }
    FLAG("create", create)
    FLAG("allow_other", allow_other)
    FLAG("snapshot_store_ahead", snapshot_store_ahead)
    FLAG("auto_unmount", auto_unmount)
    FLAG("circular_log", params.circular_log)
    FLAG("no_log", params.no_log)
#undef FLAG
    if (val == NULL)
        return fail(err, cap, "unknown option '%s'", item);
    if (strcmp(item, "page_size") == 0) {
        if (proto_parse_size(val, &n) != 0 ||
            (n != 4096 && n != 8192 && n != 16384 && n != 32768))
            return fail(err, cap, "page_size=%s: must be 4096, 8192, 16384 or 32768", val);
        o->params.page_size = (uint32_t)n;
    } else if (strcmp(item, "log_file_size") == 0) {
        if (proto_parse_size(val, &n) != 0 || n < (64u << 10) || n > (1u << 30))
            return fail(err, cap, "log_file_size=%s: must be 64K..1G", val);
        o->params.log_file_size = n;
    } else if (strcmp(item, "cache_size") == 0) {
        if (proto_parse_size(val, &n) != 0 || n == 0)
            return fail(err, cap, "cache_size=%s: not a size", val);
        o->params.cache_size = n;
    } else if (strcmp(item, "snapshot_max") == 0) {
        if (proto_parse_size(val, &n) != 0 || n == 0 || n > 100000)
            return fail(err, cap, "snapshot_max=%s: a count, 1..100000", val);
        o->params.snapshot_max = (uint32_t)n;
    } else if (strcmp(item, "backup_max_rate") == 0) {
        if (proto_parse_size(val, &n) != 0 || n < (1u << 20))
            return fail(err, cap, "backup_max_rate=%s: a rate in bytes/s, at least 1M", val);
        o->params.backup_max_rate = n;
    } else if (strcmp(item, "commit") == 0) {
        if (strcmp(val, "durable") == 0)
            o->params.commit_mode = JS_COMMIT_DURABLE;
        else if (strcmp(val, "lazy") == 0)
            o->params.commit_mode = JS_COMMIT_LAZY;
        else
            return fail(err, cap, "commit=%s: must be durable or lazy", val);
    } else if (strcmp(item, "listen") == 0) {
        if (*val == '\0')
            return fail(err, cap, "listen= needs a PATH or HOST:PORT");
        if (add_listen(o, val) != 0)
            return fail(err, cap, "out of memory");
    } else if (strcmp(item, "maxclients") == 0) {
        if (proto_parse_size(val, &n) != 0 || n == 0 || n > 1000000)
            return fail(err, cap, "maxclients=%s: must be 1..1000000", val);
        o->maxclients = n;
    } else if (strcmp(item, "client_buffer_total") == 0) {
        if (proto_parse_size(val, &n) != 0 || n < (1u << 20))
            return fail(err, cap, "client_buffer_total=%s: a size, at least 1M", val);
        o->client_buffer_total = n;
    } else if (strcmp(item, "timeout") == 0) {
        char *end;
        errno = 0;
        unsigned long long t = strtoull(val, &end, 10);
        if (*val < '0' || *val > '9' || *end != '\0' || errno != 0 || t > 100000000ull)
            return fail(err, cap, "timeout=%s: seconds, 0 for never", val);
        o->timeout = t;
    } else if (strcmp(item, "archive_command") == 0) {
        if (*val == '\0')
            return fail(err, cap, "archive_command= needs a command");
        free(o->archive_command);
        if ((o->archive_command = strdup(val)) == NULL)
            return fail(err, cap, "out of memory");
    } else if (strcmp(item, "archive_command_timeout") == 0 || strcmp(item, "archive_timeout") == 0) {
        char *end;
        errno = 0;
        unsigned long long t = strtoull(val, &end, 10);
        int cmd = item[8] == 'c';
        if (*val < '0' || *val > '9' || *end != '\0' || errno != 0 || t > 100000000ull || (cmd && t == 0))
            return fail(err, cap, "%s=%s: seconds%s", item, val, cmd ? ", at least 1" : ", 0 for off");
        if (cmd)
            o->archive_command_timeout = t;
        else
            o->archive_timeout = t;
    } else if (strcmp(item, "backup_root") == 0) {
        if (*val != '/')
            return fail(err, cap, "backup_root=%s: must be an absolute path", val);
        free(o->backup_root);
        if ((o->backup_root = strdup(val)) == NULL)
            return fail(err, cap, "out of memory");
    } else {
        return fail(err, cap, "unknown option '%s'", item);
    }
    return 0;
}

/* Items are separated by commas; `\,` is a comma inside a value (an
 * archive_command with a comma in it).  Empty items are skipped. */
static int parse_list(struct fs_opts *o, const char *list, char *err, size_t cap)
{
    char *copy = malloc(strlen(list) + 1);
    int rc = 0;

    if (copy == NULL)
        return fail(err, cap, "out of memory");
    for (const char *p = list; rc == 0;) {
        size_t n = 0;
        for (; *p && *p != ','; p++) {
            if (p[0] == '\\' && p[1] == ',')
                p++;
            copy[n++] = *p;
        }
        copy[n] = '\0';
        if (n)
            rc = parse_one(o, copy, err, cap);
        if (*p == '\0')
            break;
        p++;
    }
    free(copy);
    return rc;
}

int opts_parse(int argc, char **argv, struct fs_opts *o, char *err, size_t cap)
{
    int i, npos = 0;

    memset(o, 0, sizeof(*o));
    js_params_default(&o->params);
    err[0] = '\0';
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->show_help = 1;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            o->show_version = 1;
        } else if (strcmp(a, "-f") == 0) {
            o->foreground = 1;
        } else if (strcmp(a, "-d") == 0) {
            o->debug = o->foreground = 1;
        } else if (strcmp(a, "-o") == 0) {
            if (++i >= argc)
                return fail(err, cap, "-o needs an argument");
            if (parse_list(o, argv[i], err, cap) != 0)
                return -1;
        } else if (strncmp(a, "-o", 2) == 0) {
            if (parse_list(o, a + 2, err, cap) != 0)
                return -1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return fail(err, cap, "unknown argument '%s'", a);
        } else if (npos == 0) {
            o->dbdir = a;
            npos++;
        } else if (npos == 1) {
            o->mountpoint = a;
            npos++;
        } else {
            return fail(err, cap, "unexpected argument '%s'", a);
        }
    }
    if (o->show_help || o->show_version)
        return 0;
    if (npos != 2)
        return fail(err, cap, "DBDIR and MOUNTPOINT are required");
    if (o->dbdir[0] == '\0' || o->mountpoint[0] == '\0')
        return fail(err, cap, "DBDIR and MOUNTPOINT must not be empty");
    return 0;
}

void opts_free(struct fs_opts *o)
{
    size_t i;
    for (i = 0; i < o->n_listen; i++)
        free(o->listen[i]);
    free(o->listen);
    free(o->backup_root);
    free(o->archive_command);
    o->archive_command = NULL;
    o->listen = NULL;
    o->n_listen = 0;
    o->backup_root = NULL;
}

void opts_usage(void *file)
{
    fputs("usage: jetsnapfs [options] DBDIR MOUNTPOINT\n"
          "\n"
          "Serve the jetsnap instance in DBDIR and mount its control filesystem\n"
          "(control, status, events, live/) on MOUNTPOINT.\n"
          "\n"
          "  -f                  stay in the foreground\n"
          "  -d                  FUSE debug output (implies -f)\n"
          "  -h, --help          this text\n"
          "  -V, --version       print the version\n"
          "  -o OPT[,OPT...]     options:\n"
          "     create               create an instance when DBDIR is empty or missing\n"
          "     page_size=N          4096, 8192, 16384 or 32768 (creation only; 8192)\n"
          "     log_file_size=N      64K..1G per log generation (creation only; 5M)\n"
          "     circular_log         delete log generations older than the checkpoint\n"
          "     no_log               run without logging (no recovery, no backup)\n"
          "     commit=durable|lazy  commit durability (durable)\n"
          "     cache_size=N         buffer pool size, K/M/G suffixes (256M)\n"
          "     listen=PATH|HOST:PORT  Redis-protocol endpoint, repeatable\n"
          "                          (DBDIR/jetsnap.sock)\n"
          "     maxclients=N         Redis clients at once (10000)\n"
          "     client_buffer_total=N  request and reply bytes across all clients;\n"
          "                          past it the largest are closed (256M)\n"
          "     timeout=N            close Redis clients idle N seconds (0: never)\n"
          "     backup_root=DIR      backups must resolve beneath DIR, no symlinks\n"
          "     backup_max_rate=N    bytes/s a backup may copy, K/M/G suffixes (no limit)\n"
          "     snapshot_max=N       most snapshots kept at once (64)\n"
          "     snapshot_store_ahead store a snapshot's jetsnap.edb into the page cache\n"
          "                          ahead of a reader in order (off; see README)\n"
          "     archive_command=CMD  ship each closed log generation: sh -c CMD, %p path,\n"
          "                          %f name, %% a %; a comma in CMD is written \\,\n"
          "     archive_command_timeout=N  seconds before a hanging CMD is killed (300)\n"
          "     archive_timeout=N    roll and archive a generation with a commit older\n"
          "                          than N seconds (0: off)\n"
          "     allow_other          let other users read the mount\n"
          "     auto_unmount         unmount when the daemon dies (for tests)\n"
          "  Options mount(8) adds (rw, dev, suid, exec, nofail, _netdev, noauto,\n"
          "  x-systemd.*, ...) are accepted and ignored, so\n"
          "  `mount -t fuse.jetsnapfs DBDIR MOUNTPOINT -o ...` and /etc/fstab work.\n"
          "  Without -f, jetsnapfs returns once the mount and every listen endpoint\n"
          "  answer; with NOTIFY_SOCKET set it sends READY=1 then (Type=notify).\n",
          (FILE *)file);
}

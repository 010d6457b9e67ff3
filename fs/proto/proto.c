/*
 * proto.c - the control grammar, the status key table and the size parser
 * shared by jetsnapfs (fs/daemon) and the jetsnap tool (fs/tool); the
 * contract is in proto.h.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Control grammar                                                      */
/* ------------------------------------------------------------------ */

static int add_flag_word(struct ctl_cmd *cmd, const char *w)
{
    size_t n = strlen(cmd->flags);
    int r = snprintf(cmd->flags + n, sizeof(cmd->flags) - n, "%s%s", n ? " " : "", w);
    return r < 0 || (size_t)r >= sizeof(cmd->flags) - n ? -1 : 0;
}

JET_ERR ctl_parse(const char *buf, size_t len, struct ctl_cmd *cmd)
{
    char line[CTL_CMD_MAX + 1], *tok, *save = NULL;
    int full = 0, incr = 0, first = 1;

    memset(cmd, 0, sizeof(*cmd));
    if (len == 0 || len > CTL_CMD_MAX)
        return JET_errInvalidParameter;
    if (buf[len - 1] == '\n')
        len--;
    if (len == 0 || memchr(buf, '\0', len) != NULL || memchr(buf, '\n', len) != NULL)
        return JET_errInvalidParameter;
    memcpy(line, buf, len);
    line[len] = '\0';
    /* Single spaces separate words: an empty word (leading, trailing or
     * doubled space) is a malformed command, not something to guess at. */
    if (line[0] == ' ' || line[len - 1] == ' ' || strstr(line, "  ") != NULL)
        return JET_errInvalidParameter;

    for (tok = strtok_r(line, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        if (first) {
            first = 0;
            if (strcmp(tok, "truncate") == 0) {
                cmd->kind = CTL_TRUNCATE;
            } else if (strcmp(tok, "cancel") == 0) {
                cmd->kind = CTL_CANCEL;
            } else if (strcmp(tok, "snapshot") == 0 || strcmp(tok, "snapshot-delete") == 0) {
                cmd->kind = tok[8] ? CTL_SNAPSHOT_DELETE : CTL_SNAPSHOT;
                if ((tok = strtok_r(NULL, " ", &save)) == NULL || !js_snapshot_name_ok(tok))
                    return JET_errInvalidParameter;
                strcpy(cmd->path, tok);
                if (strtok_r(NULL, " ", &save) != NULL)
                    return JET_errInvalidGrbit;
                return JET_errSuccess;
            } else if (tok[0] != '/') {
                return JET_errInvalidParameter;
            } else if (strlen(tok) >= PATH_MAX) {
                return JET_errInvalidParameter;
            } else {
                cmd->kind = CTL_BACKUP;
                strcpy(cmd->path, tok);
            }
            continue;
        }
        if (cmd->kind == CTL_CANCEL)
            return JET_errInvalidGrbit;
        if (strcmp(tok, "wait") == 0) {
            cmd->wait = 1;
        } else if (cmd->kind == CTL_TRUNCATE) {
            return JET_errInvalidGrbit;
        } else if (strcmp(tok, "full") == 0) {
            full = 1;
        } else if (strcmp(tok, "incremental") == 0) {
            incr = 1;
            cmd->js_flags |= JS_BACKUP_INCREMENTAL;
        } else if (strcmp(tok, "atomic") == 0) {
            cmd->js_flags |= JS_BACKUP_ATOMIC;
        } else if (strcmp(tok, "create") == 0) {
            cmd->js_flags |= JS_BACKUP_CREATE_DIR;
        } else {
            return JET_errInvalidGrbit;
        }
        if (add_flag_word(cmd, tok) != 0)
            return JET_errInvalidParameter;
    }
    if (full && incr)
        return JET_errInvalidGrbit;
    return JET_errSuccess;
}

JET_ERR proto_ctl_errno_to_err(int e, int incremental, const char **hint)
{
    *hint = "";
    switch (e) {
    case ENOTEMPTY: return JET_errBackupDirectoryNotEmpty;
    case EBUSY:
        *hint = " (a backup is already running, or the instance is being restored)";
        return JET_errBackupInProgress;
    case EAGAIN:
        *hint = " (the instance is still starting or recovering)";
        return JET_errBackupNotAllowedYet;
    case EOPNOTSUPP:
        *hint = " (logging is disabled, or an incremental backup under circular logging)";
        return incremental ? JET_errInvalidBackup : JET_errLoggingDisabled;
    case ENODATA:
        *hint = " (no previous full backup, or a log generation since it is gone)";
        return JET_errMissingFullBackup;
    case ECANCELED: return JET_errBackupAbortByServer;
    case EINVAL: return JET_errInvalidParameter;
    case ESHUTDOWN:
        *hint = " (the daemon is shutting down)";
        return JET_errTermInProgress;
    case ENOENT: case ENOTDIR: case EXDEV: return JET_errInvalidPath;
    case EACCES: case EPERM: case EROFS: return JET_errMakeBackupDirectoryFail;
    case ENOSPC: return JET_errDiskFull;
    default: return JET_errSuccess;
    }
}

/* ------------------------------------------------------------------ */
/* Status keys                                                          */
/* ------------------------------------------------------------------ */

const char *const proto_st_keys[PST_NKEYS] = {
    [PST_STATE] = "state",
    [PST_JOB] = "job",
    [PST_OPERATION] = "operation",
    [PST_PATH] = "path",
    [PST_FLAGS] = "flags",
    [PST_PHASE] = "phase",
    [PST_PROGRESS_PERCENT] = "progress_percent",
    [PST_BYTES_DONE] = "bytes_done",
    [PST_BYTES_TOTAL] = "bytes_total",
    [PST_PAGES_VERIFIED] = "pages_verified",
    [PST_LOG_RECORDS_VERIFIED] = "log_records_verified",
    [PST_RATE_BYTES_PER_S] = "rate_bytes_per_s",
    [PST_ETA_S] = "eta_s",
    [PST_STARTED] = "started",
    [PST_FINISHED] = "finished",
    [PST_GEN_LOW] = "gen_low",
    [PST_GEN_HIGH] = "gen_high",
    [PST_TRUNCATED] = "truncated",
    [PST_RESULT] = "result",
    [PST_MESSAGE] = "message",
    [PST_PACER] = "pacer",      /* off, or holding: the backup slows for commits */
    /* The archiver's (SPEC 8), "-" without archive_command: */
    [PST_ARCHIVE_LAST_GEN] = "archive_last_gen",    /* hex, the newest archived */
    [PST_ARCHIVE_PENDING] = "archive_pending",      /* closed generations waiting */
    [PST_ARCHIVE_LAG_S] = "archive_lag_s",          /* oldest unarchived commit's age */
    [PST_ARCHIVE_LAST_ERROR] = "archive_last_error", /* "-" after a success */
};

size_t proto_status_write(char *buf, size_t cap, const char *const val[PST_NKEYS])
{
    size_t len = 0;

    if (cap == 0)
        return 0;
    buf[0] = '\0';
    for (int k = 0; k < PST_NKEYS && len + 1 < cap; k++) {
        const char *v = val[k] != NULL && val[k][0] != '\0' ? val[k] : "-";
        size_t start = len + strlen(proto_st_keys[k]) + 2;
        int n = snprintf(buf + len, cap - len, "%s: %s", proto_st_keys[k], v);

        if (n < 0)
            break;
        len = len + (size_t)n < cap ? len + (size_t)n : cap - 1;
        /* The value is one line: newlines from an engine detail become
         * spaces. */
        for (size_t i = start; i < len; i++)
            if ((unsigned char)buf[i] < 0x20)
                buf[i] = ' ';
        if (len + 1 < cap) {
            buf[len++] = '\n';
            buf[len] = '\0';
        }
    }
    return len;
}

void proto_status_parse(char *text, const char *val[PST_NKEYS])
{
    char *save = NULL;

    for (int k = 0; k < PST_NKEYS; k++)
        val[k] = "";
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(ln, ':'), *v;
        size_t vl;

        if (!colon)
            continue;
        *colon = '\0';
        v = colon + 1;
        while (*v == ' ')
            v++;
        vl = strlen(v);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
            v[--vl] = '\0';
        /* The daemon writes "-" for a value that has none yet. */
        if (strcmp(v, "-") == 0)
            v[0] = '\0';
        for (int k = 0; k < PST_NKEYS; k++)
            if (strcmp(ln, proto_st_keys[k]) == 0)
                val[k] = v;
    }
}

/* ------------------------------------------------------------------ */
/* Sizes                                                                */
/* ------------------------------------------------------------------ */

int proto_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;

    if (p == NULL || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': mul = 1ull << 10; p++; break;
    case 'm': case 'M': mul = 1ull << 20; p++; break;
    case 'g': case 'G': mul = 1ull << 30; p++; break;
    default: return -1;
    }
    if (*p != '\0' || (v != 0 && v > UINT64_MAX / mul))
        return -1;
    *out = v * mul;
    return 0;
}

/* archive_command and --restore-command (SPEC 8). */
int proto_expand_command(const char *cmd, const char *path, const char *name, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = cmd; *c; c++) {
        const char *add = NULL;
        char one[2] = { *c, '\0' };
        if (*c == '%' && (c[1] == 'p' || c[1] == 'f' || c[1] == '%')) {
            add = c[1] == 'p' ? path : c[1] == 'f' ? name : "%";
            c++;
        } else {
            add = one;
        }
        size_t len = strlen(add);
        if (n + len + 1 > cap)
            return -1;
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

/* Undo mountinfo's octal escapes (\040 for space, ...) in place. */
static void unescape_octal(char *s)
{
    char *r = s, *w = s;
    while (*r != '\0') {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* The next space-separated field of *p, NUL-terminated; NULL at the end. */
static char *next_field(char **p)
{
    char *s = *p;
    while (*s == ' ')
        s++;
    if (*s == '\0' || *s == '\n')
        return NULL;
    char *e = s;
    while (*e != '\0' && *e != ' ' && *e != '\n')
        e++;
    *p = *e != '\0' ? e + 1 : e;
    *e = '\0';
    return s;
}

/* "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER" */
int proto_mountinfo_line(char *line, struct proto_mount *m)
{
    char *sep = strstr(line, " - "), *p = line, *f[5];
    unsigned major;
    if (sep == NULL)
        return -1;
    *sep = '\0';
    for (int i = 0; i < 5; i++)
        if ((f[i] = next_field(&p)) == NULL)
            return -1;
    if (sscanf(f[2], "%u:%u", &major, &m->minor) != 2)
        return -1;
    p = sep + 3;
    m->mountpoint = f[4];
    m->fstype = next_field(&p);
    m->source = next_field(&p);
    if (m->fstype == NULL || m->source == NULL)
        return -1;
    unescape_octal(m->mountpoint);
    unescape_octal(m->source);
    return 0;
}

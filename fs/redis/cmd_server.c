/*
 * cmd_server.c - the connection and server commands of the Redis front:
 * PING, ECHO, INFO, SELECT, QUIT, and enough of COMMAND and CONFIG GET for
 * redis-cli and redis-benchmark to start.
 */
#include "cmd_family.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JETSNAP_VERSION "0.1.0"
/* Clients such as redis-cli and client libraries read redis_version to pick
 * features; we speak the RESP2 subset of Redis 7.0, so we report that. */
#define REDIS_COMPAT_VERSION "7.0.0"

void cmd_ping(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    if (argc > 2) {
        cmd_reply_arity(c, &argv[0]);
        return;
    }
    if (argc == 2)
        resp_add_bulk(c->out, argv[1].p, argv[1].len);
    else
        resp_add_status(c->out, "PONG");
}

void cmd_echo(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    resp_add_bulk(c->out, argv[1].p, argv[1].len);
}

/* Append "key:value\r\n" lines of the # Backup section (archive 0) or of
 * the # Archive section (archive 1: the archive_* keys) from the daemon's
 * renderer, which writes the status file's "key: value\n" lines: INFO wants
 * CRLF line ends and no blank after the colon. */
static void info_backup(cmd_conn *c, resp_buf *b, int archive)
{
    char buf[16384];  /* status lines hold a path of up to PATH_MAX */
    size_t n;

    if (!c->env->backup_info) {
        if (!archive)
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
        if (len && line[0] != '#' && (strncmp(line, "archive_", 8) == 0) == archive) {
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

/* The # Clients or # Stats section: the server's lines (loop.c). */
static void info_server_lines(cmd_conn *c, resp_buf *b, const char *section, char *line, size_t cap)
{
    int clients = strcmp(section, "clients") == 0;
    if (b->len)
        resp_add_raw(b, "\r\n", 2);
    resp_add_raw(b, clients ? "# Clients\r\n" : "# Stats\r\n", clients ? 11 : 9);
    size_t n = 0;
    if (c->env->server_info)
        n = c->env->server_info(c->env->client_ctx, section, line, cap);
    else if (clients)
        n = (size_t)snprintf(line, cap, "connected_clients:1\r\n");
    resp_add_raw(b, line, n);
}

/* "12.34M" as Redis's *_human fields write it. */
static void human_bytes(uint64_t v, char *out, size_t cap)
{
    static const char units[] = "BKMGT";
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%lluB", (unsigned long long)v);
    else
        snprintf(out, cap, "%.2f%c", d, units[u]);
}

/* Resident bytes of this process (/proc/self/statm), 0 when unknown. */
static uint64_t rss_bytes(void)
{
    unsigned long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The # Memory section: what monitoring reads of Redis (used_memory, its
 * _human and _rss forms, maxmemory), where used_memory is the buffer
 * pool's memory and the connections' buffers; then the pool's own figures.
 * Keys are never evicted (they live on disk), so maxmemory is 0 and the
 * policy noeviction. */
static void info_memory(cmd_conn *c, resp_buf *b)
{
    js_cache_info ci;
    char line[1024], h1[32], h2[32];
    if (js_cache_info_get(c->env->inst, &ci) != JET_errSuccess)
        return;
    uint64_t clients = c->env->client_bytes ? c->env->client_bytes(c->env->client_ctx) : 0;
    uint64_t used = ci.memory_bytes + clients, rss = rss_bytes();
    human_bytes(used, h1, sizeof h1);
    human_bytes(rss, h2, sizeof h2);
    if (b->len)
        resp_add_raw(b, "\r\n", 2);
    int n = snprintf(line, sizeof line,
                     "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\n"
                     "used_memory_rss:%llu\r\nused_memory_rss_human:%s\r\nmem_clients_normal:%llu\r\n"
                     "maxmemory:0\r\nmaxmemory_policy:noeviction\r\n"
                     "buffer_pool_limit:%llu\r\nbuffer_pool_pages:%llu\r\nbuffer_pool_dirty:%llu\r\n"
                     "buffer_pool_spare:%llu\r\nbuffer_pool_memory:%llu\r\nbuffer_pool_mapped:%llu\r\n"
                     "page_size:%u\r\n",
                     (unsigned long long)used, h1, (unsigned long long)rss, h2, (unsigned long long)clients,
                     (unsigned long long)ci.limit_bytes, (unsigned long long)ci.pages_bytes,
                     (unsigned long long)ci.dirty_bytes, (unsigned long long)ci.spare_bytes,
                     (unsigned long long)ci.memory_bytes, (unsigned long long)ci.mapped_bytes, ci.page_size);
    resp_add_raw(b, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
}

void cmd_info(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    int all = 1, server = 0, clients = 0, memory = 0, stats = 0, keyspace = 0, backup = 0, archive = 0;
    char line[256];
    resp_buf b;

    for (size_t i = 1; i < argc; i++) {
        if (cmd_arg_is(&argv[i], "all") || cmd_arg_is(&argv[i], "everything") || cmd_arg_is(&argv[i], "default"))
            continue;
        all = 0;
        server |= cmd_arg_is(&argv[i], "server");
        clients |= cmd_arg_is(&argv[i], "clients");
        memory |= cmd_arg_is(&argv[i], "memory");
        stats |= cmd_arg_is(&argv[i], "stats");
        keyspace |= cmd_arg_is(&argv[i], "keyspace");
        backup |= cmd_arg_is(&argv[i], "backup");
        archive |= cmd_arg_is(&argv[i], "archive");
    }
    if (argc == 1 || all)
        server = clients = memory = stats = keyspace = backup = archive = 1;

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
    if (clients)
        info_server_lines(c, &b, "clients", line, sizeof line);
    if (memory && c->env->inst)
        info_memory(c, &b);
    if (stats)
        info_server_lines(c, &b, "stats", line, sizeof line);
    if (keyspace) {
        uint64_t keys = 0;
        JET_ERR rc = js_count(c->sess, &keys);
        if (rc != JET_errSuccess) {
            resp_buf_free(&b);
            cmd_reply_jet(c, rc);
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
        info_backup(c, &b, 0);
    }
    if (archive) {
        if (b.len)
            resp_add_raw(&b, "\r\n", 2);
        resp_add_raw(&b, "# Archive\r\n", 11);
        info_backup(c, &b, 1);
    }
    if (b.oom)
        c->out->oom = 1;
    else
        resp_add_bulk(c->out, b.p ? b.p : "", b.len);
    resp_buf_free(&b);
}

void cmd_select(cmd_conn *c, size_t argc, const resp_arg *argv)
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

void cmd_quit(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    c->quit = 1;
    resp_add_status(c->out, "OK");
}

void cmd_command(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    /* Just enough for redis-cli and redis-benchmark: they ask for DOCS and
     * cope with an empty answer (no hints, no completion metadata). */
    if (argc == 1 || cmd_arg_is(&argv[1], "DOCS")) {
        resp_add_array(c->out, 0);
        return;
    }
    if (cmd_arg_is(&argv[1], "COUNT")) {
        resp_add_int(c->out, (long long)cmd_table_size());
        return;
    }
    if (cmd_arg_is(&argv[1], "INFO")) {
        resp_add_array(c->out, (long long)(argc - 2));
        for (size_t i = 2; i < argc; i++)
            resp_add_null(c->out);
        return;
    }
    resp_add_error(c->out, "ERR unknown subcommand '%.128s'. Try COMMAND HELP.", argv[1].p);
}

void cmd_config(cmd_conn *c, size_t argc, const resp_arg *argv)
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

    if (!cmd_arg_is(&argv[1], "GET")) {
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


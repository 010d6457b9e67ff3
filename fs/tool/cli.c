/*
 * cli.c - `jetsnap`, the administrator's tool (SPEC section 1).
 *
 * A thin front over libjetsnap: it parses the command line, runs one library
 * call (or one open/operation/close sequence) and turns the result into the
 * SPEC's exit status and error line.  The two mount-side commands (`backup`,
 * `truncate`) do not touch the engine: their arguments are parsed here and
 * the control/status conversation lives in cli_mount.c.  This file holds the
 * command table and main(); cli.h says where everything else is.
 *
 * Exit status: 0 success; 1 the operation failed, after one line
 * `jetsnap: NAME (NUMBER): message`; 2 usage error, after one line saying
 * why.  Every argument is validated before anything touches the disk, so a
 * misuse never changes anything.
 *
 * Keys and values on the command line and in `dump`/`get` output use one
 * escape syntax: `\\`, `\t`, `\n`, `\r`, and `\xHH` for any other byte
 * outside 0x20..0x7e (printed in lower case, read in either case).  What
 * `dump` prints can be pasted back into `put`.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const struct cli_cmd cli_cmds[] = {
    { "create", "DBDIR [--page-size N] [--log-file-size N] [--circular-log]",
      "Create an empty instance in DBDIR (missing or empty).\n"
      "  --page-size N      4096, 8192, 16384 or 32768 (default 8192; K suffix allowed)\n"
      "  --log-file-size N  bytes per log generation, 64K..1G, K/M/G suffixes (default 5M)\n"
      "  --circular-log     delete log generations older than the checkpoint\n"
      "                     (incremental backups are then refused)\n",
      cli_run_create },
    { "info", "PATH",
      "Print the database header of an instance directory, a database file or a\n"
      "backup set (PATH, PATH/new or PATH/old) as `key: value` lines.\n",
      cli_run_info },
    { "check", "PATH",
      "Verify every page checksum and every log record checksum of an instance, a\n"
      "backup set or a lone .edb file, offline (for a mounted instance check\n"
      "MOUNTPOINT/live).  Prints the counts; exit 0 only if everything passes.\n",
      cli_run_check },
    { "dump", "PATH",
      "Print every key/value of the instance in PATH (not mounted), in key order, one\n"
      "pair a line: KEY<TAB>VALUE, each escaped: \\\\, \\t, \\n, \\r, and \\xHH for other\n"
      "bytes outside 0x20..0x7e.\n",
      cli_run_dump },
    { "get", "DBDIR KEY",
      "Print the value of KEY (escaped as by dump) from an instance that is not\n"
      "mounted.  KEY accepts the escapes dump prints.\n",
      cli_run_get },
    { "put", "DBDIR KEY VALUE",
      "Store KEY=VALUE in an instance that is not mounted (one durable\n"
      "transaction).  KEY (1..255 bytes) and VALUE accept the escapes dump prints.\n",
      cli_run_put },
    { "del", "DBDIR KEY",
      "Delete KEY from an instance that is not mounted.  KEY accepts the escapes\n"
      "dump prints.  A missing key is an error (JET_errRecordNotFound).\n",
      cli_run_del },
    { "backup", "MOUNTPOINT DEST [--incremental] [--atomic] [--create]",
      "Start an online backup of the instance mounted at MOUNTPOINT into DEST\n"
      "through MOUNTPOINT/control and show its progress (a bar on a terminal, plain\n"
      "lines otherwise) until it ends; exit 0 on success.  Ctrl-C asks whether to\n"
      "cancel the backup (without a terminal it cancels at once).\n"
      "  --incremental  add the log generations since the previous backup\n"
      "  --atomic       build the set in DEST/temp, publish it as DEST/new\n"
      "  --create       create DEST if it is missing\n",
      cli_run_backup },
    { "truncate", "MOUNTPOINT",
      "Delete the log generations the instance mounted at MOUNTPOINT no longer\n"
      "needs, through MOUNTPOINT/control, and wait until that is done.\n",
      cli_run_truncate },
    { "snapshot", "MOUNTPOINT NAME | MOUNTPOINT --delete NAME | MOUNTPOINT --list",
      "Take snapshot NAME of the instance mounted at MOUNTPOINT (SPEC 7; the same as\n"
      "mkdir MOUNTPOINT/snapshots/NAME), through MOUNTPOINT/control; it is durable\n"
      "when the command returns.\n"
      "  --delete  delete snapshot NAME and free its space\n"
      "  --list    print the snapshots and the space each holds\n",
      cli_run_snapshot },
    { "restore", "BACKUP TARGET [--logs DIR | --restore-command CMD] [--until-gen N | --until-time T]",
      "Hard recovery of the backup set in BACKUP (or BACKUP/new, BACKUP/old) into\n"
      "TARGET (empty or missing); leaves a clean-shutdown instance.\n"
      "  --logs DIR       also replay the generations in DIR that continue the chain\n"
      "  --until-gen N    replay no generation after N (decimal, 0xHEX or\n"
      "                   edbXXXXXXXX.log)\n"
      "  --restore-command CMD  fetch the generations after the set's last one from\n"
      "                   an archive: sh -c CMD with %f (the name wanted) and %p\n"
      "                   (where to write it), until CMD fails; each is checked\n"
      "                   (signature, chain, every block) before it is replayed\n"
      "  --until-time T   stop after the last transaction committed at or before T\n"
      "                   (RFC 3339, e.g. 2026-12-01T14:32:00Z); `jetsnap info\n"
      "                   TARGET` shows restored_to\n",
      cli_run_restore },
    { "verify", "BACKUP [--restore-command CMD]",
      "Check a backup set without touching anything else: SHA256SUMS, page and log\n"
      "checksums, the log chain, and a trial restore into a temporary directory.\n"
      "Exit 0 only if it would restore.\n"
      "  --restore-command CMD  also fetch the archive's generations after the set\n"
      "                   (as restore does) and check they continue its chain\n",
      cli_run_verify },
};

#define CLI_NCMDS (sizeof cli_cmds / sizeof cli_cmds[0])

static void cli_cmd_help(const struct cli_cmd *cmd)
{
    printf("usage: jetsnap %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
}

static void cli_main_help(void)
{
    printf("usage: jetsnap COMMAND [ARGS...]\n\n"
           "The administrator's tool of jetsnap.  Commands:\n");
    for (size_t i = 0; i < CLI_NCMDS; i++)
        printf("  %-9s %s\n", cli_cmds[i].name, cli_cmds[i].synopsis);
    printf("\n'jetsnap COMMAND --help' describes one command.\n"
           "Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

static const struct cli_cmd *cli_find(const char *name)
{
    for (size_t i = 0; i < CLI_NCMDS; i++)
        if (strcmp(cli_cmds[i].name, name) == 0)
            return &cli_cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const struct cli_cmd *cmd;
    int rc;

    /* A closed output pipe must surface as a write error, not kill the
     * process with the instance open (it would be left dirty). */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2)
        return cli_usage(NULL, "missing command");
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc > 3)
            return cli_usage(NULL, "help takes at most one command name");
        if (argc == 3) {
            cmd = cli_find(argv[2]);
            if (!cmd)
                return cli_usage(NULL, "unknown command '%s'", argv[2]);
            cli_cmd_help(cmd);
        } else {
            cli_main_help();
        }
        return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    cmd = cli_find(argv[1]);
    if (!cmd)
        return cli_usage(NULL, "unknown command '%s'", argv[1]);
    rc = cmd->run(cmd, argc - 1, argv + 1);
    if (rc == CLI_HELP) {
        cli_cmd_help(cmd);
        return cli_stdout_failed() ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    return rc;
}

/*
 * fsmount.h - jetsnapfs mounted for real: the fixture of the mount suites
 * (a scratch ROOT holding db/, mnt/ and bk/), starting the daemon and
 * waiting until it is mounted, stopping it, reading its status file and
 * writing its control file.  Tests call tl_fs_setup from their .init, which
 * skips the test when /dev/fuse cannot be opened.
 */
#ifndef TL_FSMOUNT_H
#define TL_FSMOUNT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

extern char tl_root[PATH_MAX];   /* the test's scratch directory (real path) */
extern char tl_dbdir[PATH_MAX];  /* ROOT/db: DBDIR */
extern char tl_mnt[PATH_MAX];    /* ROOT/mnt: the mount point */
extern char tl_bk[PATH_MAX];     /* ROOT/bk: a backup destination */
extern char tl_log[PATH_MAX];    /* ROOT/daemon.log: the daemon's output */
extern char tl_sock[PATH_MAX];   /* DBDIR/jetsnap.sock: its default RESP socket */
extern char tl_daemon_bin[PATH_MAX];  /* $BUILD/jetsnapfs */
extern pid_t tl_daemon_pid;      /* a daemon the test started, or -1 */

/* 1 when a FUSE file system is mounted at path (/proc/self/mountinfo). */
int tl_is_mounted(const char *path);

/* The fixture: skip without FUSE, make ROOT (chmod to root_mode unless 0),
 * mnt/ and bk/, fill the paths above, find the daemon binary. */
void tl_fs_setup(const char *name, int root_mode);

/* The fs_mount suites' .init: tl_fs_setup("jetsnap-fs", 0). */
void tl_fs_mount_setup(void);

/* SIGKILL tl_daemon_pid if any, then detach whatever is still mounted on
 * MNT (a failed test leaves nothing behind). */
void tl_fs_unmount(void);

/* tl_fs_unmount, then remove ROOT. */
void tl_fs_teardown(void);

/* The daemon's output so far, to stderr (when a test fails). */
void tl_fs_dump_log(void);

/* Output of the daemon into tl_log: appended rather than truncated; both
 * stdout and stderr rather than stderr alone. */
enum { TL_LOG_APPEND = 1, TL_LOG_STDOUT = 2 };

/* Fork `jetsnapfs [-f] -o OPTS DBDIR MNT`, output per flags (TL_LOG_*),
 * env put into its environment when not NULL; the child's pid. */
pid_t tl_fs_exec(int fg, const char *opts, int flags, char *env);

/* Start `jetsnapfs -f -o OPTS DBDIR MNT` (stdout and stderr appended to
 * tl_log) as tl_daemon_pid; wait until mounted (a stale mount there does
 * not count: the new daemon must answer) and, if wait_idle, until recovery
 * is over (status state idle). */
void tl_fs_spawn(const char *opts, int wait_idle);

/* tl_fs_spawn with auto_unmount added to opts, as every test mount should. */
void tl_fs_start_opts(const char *opts, int wait_idle);

/* tl_fs_start_opts("create", 1). */
void tl_fs_start(void);

/* Wait (20 s at most) until sock answers PING; fails the test if the
 * daemon (tl_daemon_pid) exits first.  `idle` in status comes when
 * recovery ends, a moment before the daemon's endpoints listen. */
void tl_fs_wait_ping(const char *sock);

/* Send sig to tl_daemon_pid and wait (20 s at most); its wait status,
 * the time taken into *ms when ms is not NULL. */
int tl_fs_stop(int sig, int64_t *ms);

/* The content of MNT/name (malloc'd), NULL when it cannot be read. */
char *tl_mnt_file(const char *name);

/* The value of `key: ` in a status rendering into out; -1 when absent. */
int tl_status_value(const char *status, const char *key, char *out, size_t cap);

/* The value of key in MNT/status into out (asserts it is there). */
void tl_status_get(const char *key, char *out, size_t cap);

/* Wait until status `state` is one of the |-separated states; the state
 * seen into state_out when not NULL. */
void tl_wait_state(const char *states, long timeout_ms, char *state_out);

/* Write cmd to MNT/control through a real shell ("/bin/sh" or
 * "/bin/bash"); the shell's exit status, its stderr into err (may be
 * NULL). */
int tl_ctl_shell(const char *shell, const char *cmd, char *err, size_t errcap);

/* One write(2) of cmd and a newline to MNT/control: 0 or the errno. */
int tl_ctl_write(const char *cmd);

/* Expect cmd refused with errno e through bash and through write(2). */
void tl_ctl_refused(const char *cmd, int e);

/* Sorted names in a directory (regular files only if regular_only), at
 * most max; how many, -1 when it cannot be read. */
int tl_list_dir(const char *path, char names[][NAME_MAX + 1], int max, int regular_only);

/* Entries of a directory (at most 64 counted). */
int tl_count_entries(const char *path);

/* Create DBDIR holding n values of vsize incompressible bytes. */
void tl_fill_instance(int n, size_t vsize);

/* 1 when the events text holds a line for job id. */
int tl_events_have(const char *events, int id);

#endif

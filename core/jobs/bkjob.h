/*
 * bkjob.h - the state of one backup job, shared by the job's steps
 * (backup.c) and the handling of its set on disk (bkset.c).  Internal to
 * the jobs layer.
 */
#ifndef JS_BKJOB_H
#define JS_BKJOB_H

#include <sys/stat.h>
#include "jobs/jobs.h"

#define BK_BATCH_PAGES 256u
#define BK_FLOW_LAG 4u          /* batches written but not yet waited for */
#define BK_RESIDENT_AHEAD (64u << 20)   /* bytes: where the copy asks what the page cache holds */
#define BK_MAX_WRITTEN 4096
#define BK_NAME_MAX 64

/* The automatic pacer (backup.c): slows the copy while durable commits
 * take longer than they did without it, full speed when nobody commits. */
typedef struct bk_pacer {
    uint64_t rate;              /* bytes/s the copy is held to, 0: unlimited */
    int holding;
    uint32_t base_us;           /* lowest commit latency seen (the baseline) */
    uint64_t flushes;           /* log flush count at the window's start */
    int64_t win_ms;             /* the control window's start */
    uint64_t win_bytes;         /* bytes_done at the window's start */
    int64_t mark_ms;            /* the rate is kept from here ... */
    uint64_t mark_bytes;        /* ... and this bytes_done on */
} bk_pacer;

typedef struct bk_job {
    js_instance *inst;
    unsigned flags;
    js_status_fn status;
    void *ctx;
    /* Paths for messages and the fault filter only (see the top). */
    char dest[PATH_MAX];
    char work[PATH_MAX];        /* where this job writes */
    char target[PATH_MAX];      /* the set it adds to (incremental) */
    /* The held directories (-1: not open). */
    int parent_fd;              /* DEST's parent, while DEST is still to be made */
    int dest_fd, work_fd, target_fd;
    char dest_name[BK_NAME_MAX * 4];    /* DEST's name in parent_fd */
    const char *work_name;      /* work's name in dest_fd; NULL: work is DEST */
    struct stat dest_st, work_st;       /* what this job made (created_*) */
    int created_dest, created_work, work_is_dest;
    int wrote_manifests, linked_prev;   /* names this job made in work */
    uint32_t gen_low, gen_high, copy_from;
    js_progress prog;
    uint64_t last_pct;
    int64_t last_report_ms;
    int64_t start_ms;           /* for backup_max_rate */
    bk_pacer pacer;
    mf_sums *sums;
    mf_info info;
    char truncated[48];         /* status key `truncated` */
    char written[BK_MAX_WRITTEN][BK_NAME_MAX];   /* names this job made in work */
    size_t nwritten;
    mf_pipe *pipe;              /* SHA-256 and the writes, beside the reads */
} bk_job;

/* bkset.c: the set on disk */
/** Remember a name this job made in work (cleanup unlinks exactly these). */
JET_ERR bk_note_written(bk_job *j, const char *name);
/** Resolve DEST once (beneath root_fd when root is given) and hold it. */
JET_ERR bk_validate_path(bk_job *j, const char *dest, int root_fd, const char *root);
/** Make or open the directory the job writes in, and the set it adds to. */
JET_ERR bk_prepare_dirs(bk_job *j);
/** Undo a failed job: only what it made, relative to the held directories. */
void bk_cleanup(bk_job *j);
/** Publish a full set atomically: temp -> new, new -> old, old removed. */
JET_ERR bk_publish_full(bk_job *j);
/** Incremental: link the set's files into the staging directory. */
JET_ERR bk_share_previous_set(bk_job *j);
/** Incremental: move the new logs into the set, then replace the manifests. */
JET_ERR bk_publish_incremental(bk_job *j);
/** backup.info and SHA256SUMS into work. */
JET_ERR bk_write_manifests(bk_job *j);

#endif

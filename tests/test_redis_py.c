/*
 * test_redis_py.c - a real client library against the Redis front:
 * tests/redis_client.py, run with Debian's python3-redis, drives pipelines
 * (plain and transactional), WATCH/MULTI/EXEC through the library's
 * transaction helper, scan_iter, binary keys and values and many
 * connections, against an in-process server with durable commits.  Skipped
 * (saying so) only when there is no python3.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"
#include "respsrv.h"
#include "testlib.h"

/* Debian's interpreter first: python3-redis is installed for it, while a
 * python3 earlier on PATH (pyenv, a venv) may lack the module. */
static const char *python(void)
{
    if (access("/usr/bin/python3", X_OK) == 0)
        return "/usr/bin/python3";
    if (tl_sh("command -v python3 >/dev/null 2>&1") == 0)
        return "python3";
    return NULL;
}

TestSuite(redis_py, .init = tl_srv_setup_durable, .fini = tl_srv_teardown, .timeout = 600);

Test(redis_py, python3_redis_library)
{
    const char *py = python();
    if (!py)
        cr_skip_test("python3 is not installed: the python3-redis test cannot run (scripts/deps.sh installs it)");
    cr_assert_eq(access("tests/redis_client.py", R_OK), 0, "run from the source tree (tests/redis_client.py)");
    char *out = tl_sh_out("%s tests/redis_client.py %s 2>&1; echo \"exit=$?\"", py, tl_srv_sock);
    cr_log_info("%s", out);
    cr_assert(strstr(out, "all ok\nexit=0") != NULL,
              "redis_client.py failed (is python3-redis installed? scripts/deps.sh):\n%s", out);
    free(out);
}

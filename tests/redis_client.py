#!/usr/bin/env python3
"""redis_client.py - Debian's python3-redis (redis-py) against jetsnapfs.

Usage: redis_client.py SOCKET

Drives the Redis front the way applications do: pipelines (plain and
transactional), optimistic transactions with WATCH (the library's
transaction() helper, from several threads at once, and a conflict that
must raise WatchError), scan_iter, binary keys and values, many connections
at once.  Prints one line per part and exits 0, or raises (exit 1).
Run by tests/test_redis_py.c.
"""
import sys
import threading

import redis

SOCK = sys.argv[1]


def client():
    return redis.Redis(unix_socket_path=SOCK, socket_timeout=60)


def pipelines(r):
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set(f"pl:{i}", f"v{i}")
    res = p.execute()
    assert res == [True] * 1000, res[:5]
    got = r.mget([f"pl:{i}" for i in range(1000)])
    assert got == [f"v{i}".encode() for i in range(1000)]

    p = r.pipeline(transaction=True)
    # INCR by name: redis-py's incr() sends INCRBY, which SPEC 5 does not list.
    p.set("tx:a", "1").set("tx:b", "2").execute_command("INCR", "tx:n").get("tx:a")
    res = p.execute()
    assert res == [True, True, 1, b"1"], res
    # A command refused for its input fails alone, as in Redis.
    r.set("tx:word", "abc")
    p = r.pipeline(transaction=True)
    p.set("tx:c", "3").execute_command("INCR", "tx:word").set("tx:d", "4")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] is True, res
    assert r.get("tx:word") == b"abc" and r.get("tx:d") == b"4"
    print("pipelines: ok")


def watch(r):
    r.set("w:n", "0")

    def bump(pipe):
        v = int(pipe.get("w:n"))
        pipe.multi()
        pipe.set("w:n", v + 1)

    def worker():
        c = client()
        for _ in range(50):
            c.transaction(bump, "w:n")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.get("w:n") == b"400", r.get("w:n")

    other = client()
    with r.pipeline() as p:
        p.watch("w:n")
        p.get("w:n")
        other.set("w:n", "changed")
        p.multi()
        p.set("w:n", "mine")
        try:
            p.execute()
            raise AssertionError("EXEC ran although a watched key changed")
        except redis.WatchError:
            pass
    assert r.get("w:n") == b"changed"
    with r.pipeline() as p:
        p.watch("w:n")
        p.unwatch()
        other.set("w:n", "again")
        p.multi()
        p.set("w:n", "after-unwatch")
        assert p.execute() == [True]
    assert r.get("w:n") == b"after-unwatch"
    print("watch: ok")


def scan(r):
    want = set()
    p = r.pipeline(transaction=False)
    for i in range(1500):
        k = f"sc:{i}".encode()
        want.add(k)
        p.set(k, "x")
    p.execute()
    got = set(r.scan_iter(match="sc:*", count=100))
    assert got == want, (len(got), len(want))
    print("scan_iter: ok")


def binary(r):
    keys = [bytes([i, 0, 13, 10, 255 - i]) for i in range(1, 200)]
    vals = [bytes(range(256)) * (i + 1) for i in range(len(keys))]
    p = r.pipeline(transaction=True)
    for k, v in zip(keys, vals):
        p.set(k, v)
    p.execute()
    assert r.mget(keys) == vals
    big = bytes(range(256)) * 4096  # 1 MiB
    r.set(b"\x00big\xff", big)
    assert r.get(b"\x00big\xff") == big
    print("binary: ok")


def many(n=200):
    conns = [client() for _ in range(n)]
    for i, c in enumerate(conns):
        c.set(f"many:{i}", i)
    for i, c in enumerate(conns):
        assert c.get(f"many:{i}") == str(i).encode()
    for c in conns:
        c.close()
    print(f"{n} connections: ok")


def main():
    r = client()
    assert r.ping()
    pipelines(r)
    watch(r)
    scan(r)
    binary(r)
    many()
    print("all ok")


if __name__ == "__main__":
    main()

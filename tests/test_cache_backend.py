"""labelapp.cache.RedisCache: Django's Redis cache with one redis-py client per pool.

Building a client needs no server; the round trips through it are covered by the
integration tier, where every session and cache call goes through this backend."""

import threading

from labelapp.cache import RedisCache


def test_one_client_per_pool_shared_by_every_thread():
    # (Django gives each thread its own backend instance; one shared by threads is safe too)
    inner = RedisCache("redis://127.0.0.1:6379/15", {})._cache
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(inner.get_client(write=True))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    assert inner.get_client() is seen[0]  # one server: reads use the same pool
    assert seen[0].connection_pool is inner._get_connection_pool(True)


def test_replicas_get_their_own_client():
    cache = RedisCache("redis://127.0.0.1:6379/15,redis://127.0.0.1:6379/14", {})
    writer = cache._cache.get_client(write=True)
    reader = cache._cache.get_client(write=False)
    assert writer is not reader
    assert writer.connection_pool.connection_kwargs["db"] == 15
    assert reader.connection_pool.connection_kwargs["db"] == 14

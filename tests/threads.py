"""Run test work in real threads, the way concurrent requests or workers hit the database."""

import threading

from django.db import connections


def in_threads(n: int, work, *, timeout: float | None = 120) -> list:
    """Run ``work(i)`` for i in 0..n-1 in ``n`` threads released together by a barrier.

    Returns each call's result, or the exception it raised (for the test to inspect, never
    swallowed). Each thread closes its own database connections, so the test database can be
    dropped afterwards. A thread still running after ``timeout`` seconds is an error.
    """
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    if stuck:
        raise AssertionError(f"threads {stuck} still running after {timeout}s")
    return results


def errors(results: list) -> list[BaseException]:
    """The exceptions among ``in_threads`` results."""
    return [r for r in results if isinstance(r, BaseException)]

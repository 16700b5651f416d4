"""The in_threads test helper: results in thread order, exceptions returned, hangs caught."""

import threading

import pytest

from tests.threads import errors, in_threads


def test_results_come_back_in_thread_order_with_exceptions_kept():
    def work(i):
        if i == 2:
            raise ValueError("thread 2")
        return i * 10

    results = in_threads(4, work)
    assert results[:2] == [0, 10] and results[3] == 30
    assert [str(e) for e in errors(results)] == ["thread 2"]


def test_a_thread_still_running_after_the_timeout_fails_the_test():
    release = threading.Event()
    with pytest.raises(AssertionError, match=r"threads \[1\] still running after 0.2s"):
        in_threads(2, lambda i: i == 1 and release.wait(5), timeout=0.2)
    release.set()

"""Progress reports reach the listener while it listens, and a broken listener breaks nothing."""

from __future__ import annotations

import threading

from clv.progress import report, reporting


def test_a_listener_hears_reports_from_any_thread_only_inside_its_block() -> None:
    heard: list[str] = []
    report("before")
    with reporting(heard.append):
        report("main thread")
        worker = threading.Thread(target=report, args=("worker thread",))
        worker.start()
        worker.join()
    report("after")
    assert heard == ["main thread", "worker thread"]


def test_a_listener_that_raises_is_dropped_and_the_work_goes_on() -> None:
    calls: list[str] = []

    def broken(message: str) -> None:
        calls.append(message)
        raise RuntimeError("terminal went away")

    heard: list[str] = []
    with reporting(broken), reporting(heard.append):
        report("one")
        report("two")
    assert calls == ["one"]
    assert heard == ["one", "two"]

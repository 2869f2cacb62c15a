"""Workers' threads leave SIGINT and SIGTERM to the main thread, where Python handles them."""

from __future__ import annotations

import signal
import threading

from workers.outages import STOP_SIGNALS, stop_signals_to_the_main_thread


def blocked_in_a_new_thread() -> set[signal.Signals]:
    seen: dict[str, set[signal.Signals]] = {}

    def record() -> None:
        seen["blocked"] = signal.pthread_sigmask(signal.SIG_BLOCK, set())

    thread = threading.Thread(target=record)
    thread.start()
    thread.join()
    return seen["blocked"]


def test_threads_started_inside_block_the_stop_signals_and_the_main_thread_does_not() -> None:
    assert not STOP_SIGNALS & blocked_in_a_new_thread()
    with stop_signals_to_the_main_thread():
        inside = blocked_in_a_new_thread()
    assert inside >= STOP_SIGNALS
    assert not STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, set())

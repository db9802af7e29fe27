"""SIGTERM and SIGHUP end a Kubernetes session as Ctrl+C does, so that its agents go with it."""

from __future__ import annotations

import asyncio
import signal
import threading


class TerminationSignals:
    """A command that handles SIGTERM itself (``dump`` does) keeps doing so, and SIGHUP is
    routed to it; otherwise the task that entered the session is cancelled, which runs the
    session's cleanup."""

    def __init__(self) -> None:
        self._installed: list[signal.Signals] = []
        self._owner: asyncio.Task[object] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._owner = asyncio.current_task()
        if threading.current_thread() is not threading.main_thread():
            return
        command_stops_on_term = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_DFL:
                continue
            if sig == signal.SIGHUP and command_stops_on_term:
                loop.add_signal_handler(sig, signal.raise_signal, signal.SIGTERM)
            else:
                loop.add_signal_handler(sig, self._stop)
            self._installed.append(sig)

    def _stop(self) -> None:
        if self._owner is not None:
            self._owner.cancel()

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

"""Progress of long work: a Rich bar on a terminal, plain log lines otherwise.

The layers that do long work report through :class:`Progress`; only the CLI decides how
it is shown.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBar

log = logging.getLogger("clanpulse")


class Progress(Protocol):
    def start(self, name: str, total: int | None = None) -> None: ...

    def advance(self, name: str, amount: int = 1) -> None: ...

    def finish(self, name: str, note: str = "") -> None: ...


class SilentProgress:
    def start(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, name: str, amount: int = 1) -> None:
        pass

    def finish(self, name: str, note: str = "") -> None:
        pass


class LogProgress:
    """For logs and pipes: a line at the start, every ``interval`` seconds, and at the end."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}
        self._last: dict[str, float] = {}

    def start(self, name: str, total: int | None = None) -> None:
        self._done[name], self._total[name], self._last[name] = 0, total, time.monotonic()
        log.info("%s: started%s", name, f" ({total} to do)" if total else "")

    def advance(self, name: str, amount: int = 1) -> None:
        self._done[name] = self._done.get(name, 0) + amount
        now = time.monotonic()
        if now - self._last.get(name, 0.0) >= self.interval:
            self._last[name] = now
            total = self._total.get(name)
            log.info("%s: %d%s", name, self._done[name], f"/{total}" if total else "")

    def finish(self, name: str, note: str = "") -> None:
        log.info("%s: done%s", name, f" ({note})" if note else "")
        for table in (self._done, self._total, self._last):
            table.pop(name, None)


class BarProgress:
    """Rich progress bars on the terminal (stderr), one per named task."""

    def __init__(self, console: Console) -> None:
        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, name: str, total: int | None = None) -> None:
        self._tasks[name] = self._bar.add_task(name, total=total)

    def advance(self, name: str, amount: int = 1) -> None:
        task = self._tasks.get(name)
        if task is not None:
            self._bar.advance(task, amount)

    def finish(self, name: str, note: str = "") -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            total = self._bar.tasks[task].total
            self._bar.update(
                task,
                description=f"{name} [green]{note}" if note else name,
                completed=total if total is not None else self._bar.tasks[task].completed,
            )

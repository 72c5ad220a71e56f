"""Training progress on stderr: a self-redrawing bar on a terminal, plain periodic lines in logs and CI.

No dependency: one line of text per update, rate-limited so that printing never slows training down.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """`1h02m`, `3m05s` or `12s`."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Reports step, loss, tasks/s and ETA of a run of `total` steps.

    Args:
        total: last step of the run.
        start: step the run (re)starts from.
        enabled: False prints nothing; None prints when the stream is a TTY (bar) or otherwise plain lines.
        stream: where to write (stderr by default).
        interval: minimum seconds between two plain lines (the bar redraws at most 10 times a second).
    """

    def __init__(self, total: int, *, start: int = 0, enabled: bool | None = None, stream: Any = None,
                 interval: float = 10.0):
        self.total = max(total, 1)
        self.start = start
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = True if enabled is None else enabled
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # CI logs keep every carriage return as a new line: plain lines there even on a pseudo-terminal.
        self.bar = is_tty and not os.environ.get("CI")
        self.interval = 0.1 if self.bar else interval
        self._t0 = time.perf_counter()
        self._t_first: float | None = None  # time of the first finished step: ETA excludes compilation
        self._step_first = start
        self._last = -float("inf")
        self._drawn = False
        self._signals: str | None = None

    def due(self) -> bool:
        """Whether `update` would print now (callers skip fetching values from the device otherwise)."""
        return self.enabled and time.perf_counter() - self._last >= self.interval

    def update(
        self,
        step: int,
        loss: float | None = None,
        tasks_per_s: float | None = None,
        *,
        force: bool = False,
        signals: str | None = None,
    ) -> None:
        """Report that `step` steps are done.

        `signals`: the run's health signals (`tok 5/8 ppl 4.2 skip 0.31 id 0.97`, `nlic.runtime.health
        .signal_text`), shown after the loss from now on, until other signals replace them.
        """
        if signals is not None:
            self._signals = signals
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first, self._step_first = now, step
        if not self.enabled or (not force and now - self._last < self.interval):
            return
        self._last = now
        done = step - self._step_first
        eta = (now - self._t_first) / done * (self.total - step) if done > 0 else None
        parts = [f"step {step}/{self.total}"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if self._signals:
            parts.append(self._signals)
        if tasks_per_s is not None:
            parts.append(f"{tasks_per_s:,.0f} tasks/s")
        parts.append(f"elapsed {format_duration(now - self._t0)}")
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        if self.bar:
            width = 24
            filled = int(width * min(step, self.total) / self.total)
            line = f"\r[{'#' * filled}{'.' * (width - filled)}] " + "  ".join(parts)
            self.stream.write(line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write("  ".join(parts) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Print a line without breaking the bar."""
        if not self.enabled:
            return
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
            self._last = -float("inf")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

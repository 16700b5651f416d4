"""A dependency-free progress bar for long management commands.

On a terminal it redraws one line; in a log (CI, cron) it prints a line every 10% so the
log stays short but shows that work is moving.
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = self.last = time.perf_counter()
        self.stage = None
        self.last_decile = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            if self.stage is not None and self.tty:
                self.stream.write("\n")
            # a stage starts when the previous report ended, not at its own first report
            self.stage, self.last_decile, self.t0 = stage, -1, self.last
        now = self.last = time.perf_counter()
        frac = done / total if total else 1.0
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        bar = "#" * int(frac * self.width)
        line = (
            f"{stage:>15} [{bar:<{self.width}}] {done:>9,}/{total:,} {rate:,.0f}/s eta {eta:.0f}s"
        )
        if self.tty:
            self.stream.write("\r" + line)
            if done >= total:
                self.stream.write("\n")
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

"""Progress of long work (import-nova, reconcile, demo): a bar on a terminal, lines elsewhere.

On a terminal, a tqdm bar with the total, the rate and the ETA.  When the output is a file or a
pipe (a log, systemd's journal), a bar's carriage returns would be noise, so one plain line
every ``every`` seconds says the same, and a last one when the work ends:

    import-nova: 40000/100000 servers (40%), 2,315/s, 17s elapsed, ETA 26s

``total`` may be None (unknown): then no percentage and no ETA.
"""
from __future__ import annotations

import os
import sys
import time

EVERY = 2.0


def _size(out) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(out.fileno())
        return size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        return 0, 0


def _eta(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


class Progress:
    def __init__(self, label: str, total: int | None = None, unit: str = "servers",
                 out=None, every: float = EVERY, tty: bool | None = None):
        self.label, self.total, self.unit = label, total, unit
        self.out = out if out is not None else sys.stderr
        self.every = every
        self.done = 0
        self.extra = ""                  # a short note after the figures (e.g. memory)
        self.start = self._last = time.monotonic()
        if tty is None:
            isatty = getattr(self.out, "isatty", None)
            tty = bool(isatty and isatty())
        self._bar = None
        if tty:
            from tqdm import tqdm
            # A terminal that reports no size (a serial console, a bare pty) would get no bar
            # at all from tqdm (0 columns, 0 rows): give it a fixed one.
            width, height = _size(self.out)
            self._bar = tqdm(total=total, unit=" " + unit, desc=label, file=self.out,
                             unit_scale=True, dynamic_ncols=width > 0,
                             ncols=None if width else 100, nrows=None if height else 24,
                             smoothing=0.1)

    def set_total(self, total: int | None):
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, done: int, extra: str = ""):
        """``done`` units so far (absolute, not an increment)."""
        if extra:
            self.extra = extra
        if self._bar is not None:
            if extra:
                self._bar.set_postfix_str(extra, refresh=False)
            self._bar.update(done - self.done)
            self.done = done
            return
        self.done = done
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._line(now)

    def close(self):
        """The last word: the bar completes, or one more line with the final figures."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        self._line(time.monotonic(), final=True)

    def line(self, now: float | None = None) -> str:
        took = (time.monotonic() if now is None else now) - self.start
        rate = self.done / took if took > 0 else 0.0
        parts = ["%s: %d" % (self.label, self.done)]
        if self.total:
            parts[0] += "/%d %s (%d%%)" % (self.total, self.unit,
                                            min(100, 100 * self.done // self.total))
        else:
            parts[0] += " " + self.unit
        parts.append("{:,.0f}/s".format(rate))
        parts.append("%s elapsed" % _eta(took))
        if self.total and rate > 0 and self.done < self.total:
            parts.append("ETA %s" % _eta((self.total - self.done) / rate))
        if self.extra:
            parts.append(self.extra)
        return ", ".join(parts)

    def _line(self, now: float, final: bool = False):
        print(self.line(now) + (" (done)" if final else ""), file=self.out, flush=True)

"""A progress bar for training epochs, in the manner of tqdm, with no dependency.

On a terminal the bar is redrawn in place (carriage return, at most ~10 times a second)::

    epoch  3/15 [##########..........]  12/23  loss 0.412  acc 91.2%  176 img/s  0:04<0:04

and finished with the epoch's summary.  When the stream is not a terminal (a log file, CI, a
pipe) nothing is drawn during the epoch and exactly one line per epoch is written, so logs stay
readable.  Times are wall-clock, from ``time.perf_counter``.
"""
from __future__ import annotations

import sys
import time


def format_seconds(s):
    """``75.3 -> '1:15'``, ``3725 -> '1:02:05'``."""
    s = int(round(max(0.0, s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class EpochProgress:
    """Progress of one epoch of ``total`` batches, drawn on ``stream`` (default: stderr).

    Inputs:
    - epoch, epochs: the epoch being run (1-based for display) and the run's number of epochs.
    - total: batches in the epoch; start: batches already done (a resumed epoch).
    - stream: a text stream; tty: force terminal (True) or log (False) style; None: ask the stream.
    - width: characters of the bar.
    """

    def __init__(self, epoch, epochs, total, start=0, stream=None, tty=None, width=20, min_interval=0.1):
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty, self.width, self.min_interval = tty, width, min_interval
        self.epoch, self.epochs, self.total, self.done = epoch, epochs, total, start
        self.prefix = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
        self.t0, self._last_draw = time.perf_counter(), 0.0
        self.start, self.stats = start, {}

    def update(self, done, images_per_s=None, **stats):
        """Record that ``done`` batches are finished; ``stats``: e.g. loss=..., acc=... (fraction)."""
        self.done, self.stats, self.rate = done, stats, images_per_s
        now = time.perf_counter()
        if self.tty and (now - self._last_draw >= self.min_interval or done == self.total):
            self._last_draw = now
            self._write("\r" + self._bar_line() + "\033[K")

    def _stats_text(self, stats):
        parts = []
        for k, v in stats.items():
            parts.append(f"{k} {100 * v:.1f}%" if k.endswith("acc") else f"{k} {v:.4g}" if isinstance(v, float)
                         else f"{k} {v}")
        return "  ".join(parts)

    def _bar_line(self):
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(self.width * frac))
        elapsed = time.perf_counter() - self.t0
        per_batch = elapsed / max(1, self.done - self.start)
        eta = per_batch * (self.total - self.done)
        rate = f"  {self.rate:.0f} img/s" if self.rate else ""
        return (f"{self.prefix} [{'#' * fill}{'.' * (self.width - fill)}] {self.done:>{len(str(self.total))}}/"
                f"{self.total}  {self._stats_text(self.stats)}{rate}  {format_seconds(elapsed)}<{format_seconds(eta)}")

    def note(self, text):
        """Show ``text`` after the bar (e.g. while the epoch is being evaluated); terminal only."""
        if self.tty:
            self._write("\r" + self._bar_line() + f"  {text}\033[K")

    def close(self, summary):
        """End the epoch with its one-line ``summary`` (replacing the bar on a terminal)."""
        self._write(("\r" if self.tty else "") + f"{self.prefix}  {summary}" + ("\033[K" if self.tty else "") + "\n")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

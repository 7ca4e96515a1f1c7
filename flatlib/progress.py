"""Progress of the long loops (training, sampling, flatness, exposure, FeatureNet): tqdm's bar on a terminal,
plain log lines anywhere else.

A stage under ``dvc repro`` writes where dvc writes. On a terminal the loop draws tqdm's bar; into a pipe or
a file (``dvc repro 2>&1 | tee repro.log``, CI), where a bar's carriage returns are no use, it writes a line
every :data:`INTERVAL_S` seconds and one at the end, each flushed at once (stderr)::

    train runs/adm/seed0: step 500/2000  loss 0.0312  mse 0.0301  3.1 steps/s  ETA 8m04s
    train runs/adm/seed0: step 2000/2000  loss 0.0297  mse 0.0288  3.1 steps/s  done in 10m45s

Progress only reads the clock: it draws no random numbers and changes no result.
"""
from __future__ import annotations

import io
import sys
import time

from tqdm import tqdm

INTERVAL_S = 30.0  # seconds between two progress lines in a log


def progress_bar(total: int | None, desc: str, unit: str = "step", initial: int = 0, enabled: bool = True,
                 stream=None):
    """A bar with tqdm's ``update``, ``set_postfix`` and ``close`` (and ``with``): tqdm when ``stream``
    (default: stderr) is a terminal or the bar is disabled, else :class:`LogLines`."""
    stream = stream or sys.stderr
    if not enabled or stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, disable=not enabled,
                    dynamic_ncols=True)
    return LogLines(total, desc, unit, initial, stream)


def add_progress_flag(parser) -> None:
    """``--no-progress`` for a CLI whose loops report progress (``args.progress``, True unless given)."""
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help=f"report no progress (else a bar on a terminal, a line every {INTERVAL_S:g} s in a log)")


def line_buffered_stdout() -> None:
    """Flush stdout at every newline, into a pipe too (Python buffers a pipe in blocks): a stage's result lines
    then reach a ``dvc repro`` log as they are printed, in order with its progress lines."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)


def track(iterable, desc: str, unit: str = "step", enabled: bool = True, stream=None):
    """Yield the items of ``iterable``, counting each on a :func:`progress_bar` once the loop is done with it
    (a ``break`` counts the item it left on)."""
    total = len(iterable) if hasattr(iterable, "__len__") else None
    with progress_bar(total, desc, unit, enabled=enabled, stream=stream) as bar:
        for item in iterable:
            try:
                yield item
            finally:
                bar.update()


def duration(seconds: float) -> str:
    """``45s``, ``8m04s``, ``1h02m03s``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LogLines:
    """tqdm's interface for a log: after an update, a line when :data:`INTERVAL_S` seconds have passed since
    the last one (or the start), and a last line at :meth:`close` ("done in", or "stopped after" short of
    ``total``). ``clock``: seconds, for tests."""

    def __init__(self, total: int | None, desc: str, unit: str = "step", initial: int = 0, stream=None,
                 clock=time.monotonic):
        self.total, self.desc, self.unit, self.n, self.initial = total, desc, unit, initial, initial
        self.stream, self.clock, self.postfix, self.closed = stream or sys.stderr, clock, {}, False
        self.start = self.last = clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= INTERVAL_S:
            rate = self._rate(now)
            known = rate and self.total is not None
            self._write(now, f"ETA {duration(max(self.total - self.n, 0) / rate)}" if known else "")

    def set_postfix(self, **values) -> None:
        """Values shown after the count until replaced (training: the loss of the last log row)."""
        self.postfix = values

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            now = self.clock()
            finished = self.total is None or self.n >= self.total
            self._write(now, f"{'done in' if finished else 'stopped after'} {duration(now - self.start)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rate(self, now: float) -> float:
        return (self.n - self.initial) / (now - self.start) if now > self.start else 0.0

    def _write(self, now: float, tail: str) -> None:
        rate = self._rate(now)
        parts = [f"{self.unit} {self.n}" + ("" if self.total is None else f"/{self.total}"),
                 *(f"{key} {value}" for key, value in self.postfix.items())]
        if rate:
            parts.append(f"{rate:.3g} {self.unit}s/s" if rate < 1000 else f"{rate:.0f} {self.unit}s/s")
        self.stream.write(f"{self.desc}: " + "  ".join(p for p in (*parts, tail) if p) + "\n")
        self.stream.flush()
        self.last = now

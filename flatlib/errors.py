"""One kind of error for expected failures, and the one way every command line reports them.

An expected failure is something the user fixes without touching the code: a missing input, an unusable
parameter, a corrupt or mismatched checkpoint, a run folder another trainer holds (issue 14, guarantee 2).
Its message says what is wrong, which path or key, and what to do. A command line wraps its work in
:func:`cli_errors`: an expected failure prints one line ``flatlib.<cli>: error: <message>`` and exits with
status 2 (or the error's own ``exit_code``), no traceback; ``--debug`` or ``FLATLIB_DEBUG=1`` re-raises it
with its traceback. A full disk (``OSError`` ENOSPC, wherever it is raised) is one too (:class:`DiskFullError`).
Under torchrun every rank stops at the same step on a signal; rank 0 alone says so. Any other exception is a bug
and always raises with its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path


class FlatlibError(Exception):
    """Base of every expected failure; ``exit_code`` is the status the command line exits with."""
    exit_code = 2


class MissingInputError(FlatlibError, FileNotFoundError):
    """A file or folder the run needs is absent (data set, weights, run folder, checkpoint)."""


class CorruptFileError(FlatlibError):
    """A file exists but cannot be used: unreadable checkpoint, not a plain weights file, wrong digest."""


class RunFolderError(FlatlibError):
    """A run folder cannot be written now (another trainer holds it)."""


class DiskFullError(FlatlibError):
    """A write failed for lack of space (ENOSPC): names the path and the space left; nothing is half-written
    (atomic writes), so rerunning the same command after freeing space resumes."""

    @classmethod
    def of(cls, path: str | os.PathLike) -> DiskFullError:
        path = Path(path).absolute()
        folder = next(p for p in (path, *path.parents) if p.exists())
        free = shutil.disk_usage(folder).free
        return cls(f"no space left on the device writing {path} ({free / 2 ** 20:.1f} MiB free there): free some "
                   "space and rerun the same command (training resumes from its newest complete checkpoint)")


class Interrupted(FlatlibError):
    """SIGINT/SIGTERM stopped the work; exits 128 + the signal number (130, 143) as a shell would."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def debug_requested(debug: bool = False) -> bool:
    return debug or os.environ.get("FLATLIB_DEBUG", "") not in ("", "0")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an expected failure (also: FLATLIB_DEBUG=1)")


@contextlib.contextmanager
def cli_errors(cli: str, debug: bool = False):
    """Report a :class:`FlatlibError` raised inside the block as ``flatlib.<cli>: error: <message>`` on
    stderr and exit with its ``exit_code`` (2 by default); re-raise it when debugging is requested."""
    try:
        yield
    except (FlatlibError, OSError) as err:
        if isinstance(err, OSError) and not isinstance(err, FlatlibError):
            if err.errno != errno.ENOSPC:
                raise  # another OSError is a bug, or a FlatlibError subclass of it
            err = DiskFullError.of(err.filename or os.getcwd())
        if debug_requested(debug):
            raise
        if not (isinstance(err, Interrupted) and os.environ.get("RANK", "0") != "0"):
            print(f"flatlib.{cli}: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None

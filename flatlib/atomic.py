"""Atomic file writes: a file is either its old complete version or its new complete version, never a
half-written one, whatever stops the process (issue 14, guarantee 3).

Each helper writes to a hidden temporary file in the destination's folder (same file system), flushes and
fsyncs it, renames it over the destination with ``os.replace`` (atomic on POSIX) and fsyncs the folder so
the rename itself survives a power cut. On an exception the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb"):
    """Open a temporary file for writing; on a clean exit it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, payload, **dump_kwargs) -> None:
    """``json.dumps(payload, **dump_kwargs)`` plus a final newline, written atomically."""
    write_text(path, json.dumps(payload, **dump_kwargs) + "\n")


def torch_save(obj, path: str | Path) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def savez_compressed(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to exactly ``path`` (no ``.npz`` appended), atomically."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (call it only while holding the folder)."""
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)

"""Atomic file writes: a file is either its old complete version or its new complete version, never a
half-written one, whatever stops the process (issue 14, guarantee 3).

Each helper writes to a hidden temporary file in the destination's folder (same file system), created with
the mode a plain ``open`` gives (0666 less the process umask, so a group-shared workspace stays readable;
``tempfile.mkstemp`` would give 0600), flushes and fsyncs it, renames it over the destination with
``os.replace`` (atomic on POSIX) and fsyncs the folder so the rename itself survives a power cut. On an
exception the temporary file is removed; a full disk (ENOSPC) becomes one
:class:`~flatlib.errors.DiskFullError` naming the destination and the space left.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
from pathlib import Path

import numpy as np
import torch

from flatlib.errors import DiskFullError

TEMP_SUFFIX = ".tmp"


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, opened for writing with mode 0666 less the umask (as ``open`` does)."""
    while True:
        temp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), temp
        except FileExistsError:
            continue


@contextlib.contextmanager
def disk_full_as_error(path: str | Path):
    """Turn an ENOSPC ``OSError`` raised inside the block into a :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise DiskFullError.of(path) from err


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb"):
    """Open a temporary file for writing; on a clean exit it replaces ``path`` atomically."""
    path = Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = _create_temporary(path)
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


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


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

"""Making a file's name durable: after a rename or a create, the directory itself must be
synced, or a crash can leave the file's bytes on disk under no name (or the old one)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["sync_dir"]


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

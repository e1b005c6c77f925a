"""Path containment: every file name read from a user's metadata stays under its root.

Dataset metadata (CheXpert's ``Path`` column, Oxford Pets annotation names), manifests, reject
files, LCL files and episode rows all name files relative to a folder. A name such as
``../../outside/x`` or a symlink pointing out of the folder must be refused, not read: one helper
for every reader, so a new reader cannot forget the check.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import UserError


def contained(root: str | os.PathLike, name: str | os.PathLike, *, what: str = "path", source=None) -> Path:
    """``root / name``, resolved (symlinks followed), or a one-line ``UserError`` if it leaves ``root``.

    ``what`` names the field in the message (``"Path"``, ``"image"``); ``source`` the file that
    held the name (defaults to ``root``). The file need not exist.
    """
    root_resolved = Path(root).resolve()
    text = os.fspath(name)
    origin = source if source is not None else root
    if not text or "\x00" in text:
        raise UserError(f"{origin}: {what} {text!r} is not a file name")
    if os.path.isabs(text) or PurePosixPath(text).is_absolute():
        raise UserError(f"{origin}: {what} {text!r} is an absolute path; it must be relative to {root}")
    target = (root_resolved / text).resolve()
    if target != root_resolved and not target.is_relative_to(root_resolved):
        raise UserError(f"{origin}: {what} {text!r} points outside {root}")
    return target


def check_file_name(name: str, *, what: str = "file_name", source=None) -> str:
    """A bare file name (no folder part, no ``..``): what split rows and tar members must hold."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UserError(f"{source or 'split'}: {what} {name!r} must be a bare file name (no folders)")
    return name

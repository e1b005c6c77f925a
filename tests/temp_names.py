"""Temporary names as a killed writer leaves them: ``fileio.temp_prefix`` of a process that is gone."""

from __future__ import annotations

from pathlib import Path

from isekai_gen.fileio import TEMP_MARKER


def _no_such_pid() -> int:
    """A pid above the kernel's ``pid_max``: no process has it, now or later (unlike a reaped one)."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        return 4194305  # Linux's highest pid_max + 1


DEAD_PID = _no_such_pid()


def leftover(target: str, tail: str = "k1ll3d") -> str:
    """The name of a temporary sibling of ``target`` whose writer died."""
    return f"{TEMP_MARKER}{DEAD_PID}-{target}.{tail}"

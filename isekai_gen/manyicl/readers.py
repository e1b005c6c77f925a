"""Reading helpers shared by the dataset adapters: metadata tables, folders of images."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def find_existing(root: Path, candidates: list[str], what: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that exists."""
    for candidate in candidates:
        path = root / candidate
        if path.exists():
            return path
    raise UserError(f"{root / candidates[0]}: {what} not found (looked for {', '.join(candidates)} under {root})")


def sniff_delimiter(path: Path) -> str:
    """Tab when the header line holds a tab, else comma (HAM10000 ships both)."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            header = handle.readline()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text table") from None
    if not header.strip():
        raise UserError(f"{path}: empty file, expected a header line")
    return "\t" if "\t" in header else ","


def read_table(path: Path, required: list[str], *, sep: str | None = None):
    """A delimited table as strings (blank cells are ''), with ``required`` columns present."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: file not found")
    sep = sep or sniff_delimiter(path)
    try:
        # The pyarrow engine reads CheXpert's 224k rows as strings about 3x faster than the C engine.
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig", engine="pyarrow")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable table ({' '.join(str(exc).split())[:200]})") from None
    require_columns(frame, required, path)
    return frame


def require_columns(frame, required: list[str], path: Path) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ",".join(str(c) for c in frame.columns[:12])
        raise UserError(f"{path}: wrong header: missing column(s) {', '.join(missing)} (header: {found})")


def lookup(values, mapping: dict, path: Path, what: str, first_line: int = 2):
    """``mapping[value]`` for every value (numpy array); the first unknown value names its file and line."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=False)
    known = np.array([value in mapping for value in uniques], dtype=bool)
    if not known.all():
        row = int(np.flatnonzero(~known[codes])[0])
        allowed = ", ".join(repr(k) for k in mapping)
        value = uniques[codes[row]]
        raise UserError(f"{path}:{first_line + row}: unknown {what} {value!r} (expected one of {allowed})")
    return np.array([mapping[value] for value in uniques])[codes]


def check_values(values, allowed, path: Path, what: str, first_line: int = 2) -> None:
    """Every value must be in ``allowed``; otherwise name the file and line of the first one that is not."""
    lookup(values, {value: True for value in allowed}, path, what, first_line)


def list_files(folder: Path, suffixes=IMAGE_SUFFIXES) -> list[str]:
    """Sorted names of the image files directly in ``folder`` (hidden files skipped)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        raise UserError(f"{folder}: folder not found") from None
    return sorted(
        e.name for e in entries if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(suffixes)
    )


def list_folders(folder: Path) -> list[str]:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        raise UserError(f"{folder}: folder not found") from None
    return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def class_folders(base: Path, root: Path, known: tuple[str, ...], source_split: str) -> list[dict]:
    """Rows of a ``<base>/<class>/<image>`` layout; a folder that is no known class is an error."""
    rows = []
    for class_name in list_folders(base):
        if class_name not in known:
            expected = ", ".join(known)
            raise UserError(f"{base / class_name}: unknown label value {class_name!r} (expected one of {expected})")
        for name in list_files(base / class_name):
            rows.append({
                "file_name": name, "label": class_name, "source_split": source_split,
                "source_path": (base / class_name / name).relative_to(root).as_posix(),
            })
    return rows


def join_strings(*parts):
    """Element-wise concatenation of string Series and constants, in Arrow (3x pandas' ``+``)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    def arrow(part):
        if isinstance(part, str):
            return pa.scalar(part, pa.large_string())
        if isinstance(part, pd.Series):
            part = pa.array(part)  # zero-copy for pandas' Arrow-backed str dtype
        return pc.cast(part, pa.large_string())

    joined = pc.binary_join_element_wise(*map(arrow, parts), pa.scalar("", pa.large_string()))
    return pd.Series(pd.array(joined, dtype="str"))


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped line) of a text list, skipping blank and ``#`` comment lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    return [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip() and not line.startswith("#")]

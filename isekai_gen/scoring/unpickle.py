"""Load a pickle without letting it run code.

A pickle names the classes and functions to rebuild its objects, and loading it calls them: a
crafted file can run any command. ManyICL's raw-response files only hold a dict of strings and a
tuple of numbers, which pickle encodes with its own opcodes and never through ``find_class``. So
refusing every ``find_class`` (and persistent id) loads exactly the builtin containers, strings,
numbers, booleans and None, and nothing else.

A pickle cannot be parsed in parts, and the loaded dict takes about twice the file's size: a
file over ``MAX_PICKLE_BYTES`` is refused before it is read. ManyICL's run.py writes a few MB
(one response of a few KB per batch of queries), so the limit is ~50x any real one.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ..errors import UserError
from .textio import read_bytes


MAX_PICKLE_BYTES = 256 * 2 ** 20


class RefusedGlobal(pickle.UnpicklingError):
    pass


class _BuiltinsOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        raise RefusedGlobal(f"persistent id {pid!r}")


def load_restricted_pickle(path: str | Path):
    """Unpickle ``path`` accepting only builtin containers, str, bytes, numbers, bool and None."""
    data = read_bytes(path, MAX_PICKLE_BYTES, "a ManyICL raw-response pickle")
    try:
        return _BuiltinsOnlyUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise UserError(
            f"{path}: refusing to load this pickle: it references {exc}; only builtin containers, "
            "strings and numbers are allowed (loading other objects can run code)"
        ) from None
    except Exception as exc:  # a corrupt pickle raises nearly anything (EOFError, ValueError, KeyError, ...)
        raise UserError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None

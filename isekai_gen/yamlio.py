"""The one loader of user YAML (configs, catalogs, ROOTS files, ``--set`` values).

PyYAML's ``safe_load`` runs no code, but an alias lets a 1 KB file stand for a document of
billions of nodes (the "billion laughs": ``b: [*a, *a, ...]`` nine times over): loading shares the
repeated objects and is quick, but every consumer that walks the result (schema validation, deep
copies, the catalog checks) walks the expanded tree and hangs. Anchors and merge keys are useful
in configs, so they stay allowed; what is bounded is the file size, the nesting depth and the
number of nodes the document stands for once every alias is expanded (counted on the shared
objects, so the count itself is linear in the file). A self-referencing alias is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

MAX_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000  # the shipped catalog expands to ~1,000 values, _base.yaml to ~200
MAX_DEPTH = 64


def _expanded_size(root: Any, source: str) -> int:
    """Nodes in ``root`` with every alias expanded; refuses cycles and documents over the bounds.

    Iterative (a 64-deep document must not meet Python's recursion limit); ``sizes`` memoises the
    shared containers an alias produces, so a bomb is counted in one pass over its distinct nodes.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
            if sizes[key] > MAX_NODES:
                raise UserError(f"{source}: YAML document expands to more than {MAX_NODES:,} values "
                                "(aliases repeating aliases?); write the values out instead")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise UserError(f"{source}: YAML alias refers to a value that contains it (a cycle)")
        if depth > MAX_DEPTH:
            raise UserError(f"{source}: YAML nested more than {MAX_DEPTH} levels deep")
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children)
    return sizes.get(id(root), 1)


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that stops composing at ``MAX_DEPTH`` levels, before Python's recursion limit
    (reached only after seconds of scanning a few KB of ``[[[[...``), and refuses a key written
    twice in one mapping (PyYAML keeps the last silently: a ROOTS file listing ``eurosat:`` twice
    would build from the second folder without a word)."""

    depth = 0

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def loads(text: str, source: str) -> Any:
    """Parse user YAML text (named ``source`` in errors) within the bounds above."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{source}: {len(text):,} characters of YAML; more than the {MAX_BYTES:,} allowed")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: builds plain data, runs no code
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source}{line}: invalid YAML ({problem})") from None
    except _TooDeep as exc:
        raise UserError(f"{source}:{exc.line}: YAML nested more than {MAX_DEPTH} levels deep") from None
    _expanded_size(data, source)
    return data


def load_yaml(path: str | Path) -> Any:
    """Read and parse a user's YAML file; one-line ``UserError`` naming the file on any problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes of YAML; more than the {MAX_BYTES:,} allowed")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:  # a folder in its place, no permission, ...
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return loads(text, str(path))

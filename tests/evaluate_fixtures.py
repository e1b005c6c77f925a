"""Tiny inputs of `isekai-gen evaluate` in their native formats: a ManyICL split folder
(`demo.csv`, `test.csv` with the unnamed index column and one-hot float columns, `images/`) and
an LCL `ISEKAI-10.json` (JSON Lines, `positive_promt` spelling included) with its image root.
Images are 8x8 PNGs whose colour comes from their number, so each file's sha256 is distinct."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image


def _image(path: Path, number: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (number * 7 % 256, number * 13 % 256, number * 29 % 256)).save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_split(root: Path, classes=("cat", "dog", "owl"), demo_per_class: int = 3, test_per_class: int = 4,
               suffix: str = ".png") -> dict[str, str]:
    """Write the folder; return image sha256 -> true label (what the double answers from)."""
    truth, number = {}, 0
    for side, per_class in (("demo", demo_per_class), ("test", test_per_class)):
        lines = ["," + ",".join(classes)]
        for k in range(per_class):          # classes interleaved, as ManyICL's demo.csv orders ranks
            for cls in classes:
                name = f"{side}_{cls}_{k}{suffix}"
                number += 1
                truth[_image(root / "images" / name, number)] = cls
                lines.append(name + "," + ",".join("1.0" if c == cls else "0.0" for c in classes))
        (root / f"{side}.csv").write_text("\n".join(lines) + "\n")
    return truth


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_isekai(root: Path, pairs=(("cactihog", "hedgehog"), ("icemic", "ice cream")), support: int = 3,
                queries: int = 1) -> tuple[Path, dict[str, str]]:
    """ISEKAI-10.json + images/<concept>/pos-<concept>/...; returns (file, sha256 -> label)."""
    truth, number, lines = {}, 0, []
    images = root / "images"

    def image(concept, kind, index):
        nonlocal number
        number += 1
        name = f"{concept}/pos-{concept}/{kind}-{index}.png"
        truth[_image(images / name, number)] = concept
        return name

    for positive, negative in pairs:
        pos_support = [image(positive, "s", i) for i in range(support)]
        neg_support = [image(negative, "s", i) for i in range(support)]
        for q in range(queries):
            for label in (positive, negative):   # symmetric pairs, as the LCL loader asserts
                lines.append({"image_name": image(label, "q", q), "positive_list": pos_support,
                              "negative_list": neg_support, "positive_promt": positive,
                              "negative_promt": negative, "label_name": label})
    path = root / "ISEKAI-10.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, truth

"""DrugOOD LBAP assay benchmark: binary binding, molecules drawn from SMILES with RDKit.

Native layout: one JSON per benchmark, e.g. ``lbap_core_ic50_assay.json``, cases at
``json["split"][name]`` (train, ood_val, ood_test, iid_val, iid_test), each with ``smiles``,
``cls_label`` (0/1) and ``domain_id`` (the assay). That is what DrugOOD's curator writes
(``drugood/curators/curator.py`` ``data_saving``: ``<target_root>/<subset>.json`` holding
``cfg``, ``split`` and ``statistics``; ``configs/_base_/curators/lbap_defaults.py`` sets
``target_root="data/"``) and what its dataset configs read (``ann_file = 'data/lbap_...json'``).
Layouts found: a DrugOOD checkout or curator working folder (``data/lbap_*.json``), a folder of
LBAP files, either inside up to two wrapper folders; or the file named by the option ``file``.

DrugOOD ships no images: each molecule is drawn into a fixed-size PNG (RDKit 2D coordinates
with a fixed seed and canonical orientation, fixed size and line width, no metadata chunk),
cached (``OUT/.cache/drugood/``; in a build ``OUT/cache/drugood/``) by a hash of the drawing settings and the SMILES.
Defaults (the paper names neither): demo from ``train``, test from ``ood_test`` (unseen assays).
A molecule listed more than once is one group; with conflicting labels it is left out.
Class names are ``negative``/``positive`` (``cls_label`` 0/1): not ``inactive``/``active``,
because ManyICL's parser matches class names as substrings.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from isekai_gen.errors import UserError
from isekai_gen.fileio import atomic_write_bytes, read_json
from isekai_gen.manyicl import Option, Pool
from isekai_gen.manyicl.layouts import Found, Layout, LayoutAdapter
from isekai_gen.paths import contained

log = logging.getLogger(__name__)

SPLITS = ("train", "iid_val", "ood_val", "iid_test", "ood_test")
IMAGE_SIZE = 512
LINE_WIDTH = 2
COORD_SEED = 0
DRAWING = f"rdkit-2d seed={COORD_SEED} size={IMAGE_SIZE} line={LINE_WIDTH}"
CURATOR = "DrugOOD drugood/curators/curator.py data_saving (target_root data/)"


class DrugOOD(LayoutAdapter):
    name = "drugood"
    title = "DrugOOD Assay"
    aliases = ("DrugOOD_Assay", "drugood_lbap", "lbap")
    all_classes = ("negative", "positive")
    demo_per_class = 800
    test_per_class = 100
    group_key = "molecule"
    license = "DrugOOD data derived from ChEMBL (CC BY-SA 3.0); drawings made by isekai-gen"
    redistributable = True
    notes = (
        "demo from train, test from ood_test (assays unseen in train); any LBAP JSON, e.g. lbap_core_ic50_assay.json",
        f"molecules drawn by RDKit: {IMAGE_SIZE}x{IMAGE_SIZE} PNG, coordinate seed {COORD_SEED}, line width {LINE_WIDTH}",
        "classes negative/positive for cls_label 0/1 (inactive/active would collide in ManyICL's substring parser)",
    )
    layouts = (
        Layout("DrugOOD curator output", CURATOR, ("data/lbap_*.json",), base="data"),
        Layout("folder of LBAP files", CURATOR, ("lbap_*.json",)),
    )
    extra_fields = ("smiles", "domain_id")
    options = {
        "file": Option(None, "the LBAP JSON relative to the root; null: the one lbap_*.json of the layout found",
                       kind=str),
        "demo_split": Option("train", "DrugOOD split feeding demo", SPLITS),
        "test_split": Option("ood_test", "DrugOOD split feeding test (ood_test: assays unseen in train)", SPLITS),
    }

    def source_splits(self, options):
        return (options["demo_split"],), (options["test_split"],)

    def find_layout(self, root: Path, recipe=None) -> Found:
        if recipe is not None and recipe.options["file"]:
            return Found(Layout("file option", "the drugood option `file`", ()), root, root)
        return super().find_layout(root, recipe)

    def read_layout(self, found, recipe):
        root = found.root
        path = self._json_path(found, recipe.options["file"])
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("split"), dict):
            raise UserError(f"{path}: expected a DrugOOD LBAP file with a `split` mapping")
        rows = []
        for split in dict.fromkeys(recipe.demo_splits + recipe.test_splits):
            cases = data["split"].get(split)
            if not isinstance(cases, list):
                raise UserError(f"{path}: no split {split!r} (splits: {', '.join(sorted(data['split']))})")
            rows += [_case_row(path, root, split, index, case) for index, case in enumerate(cases)]
        return Pool.from_rows(_drop_conflicting(rows, path), recipe, self.extra_fields)

    @staticmethod
    def _json_path(found: Found, file: str | None) -> Path:
        if file:
            # source_path (and the fingerprint) is relative to the root: the file must lie inside it.
            contained(found.root, file, what="drugood option `file`", source=found.root / file)
            return found.root / file
        files = sorted(found.base.glob("lbap_*.json"))
        if len(files) != 1:
            listed = ", ".join(p.name for p in files) or "none"
            raise UserError(f"{found.base}: expected exactly one lbap_*.json (found {listed}); "
                            "set the drugood option `file`")
        return files[0]

    def image_file(self, root: Path, row: dict, cache_dir: Path) -> Path:
        key = hashlib.sha256(f"{DRAWING}\n{row['smiles']}".encode("utf-8")).hexdigest()
        path = cache_dir / key[:2] / f"{key}.png"
        if not path.exists():
            atomic_write_bytes(path, draw_molecule(row["smiles"], f"{root / row['source_path']}"))
        return path


def _case_row(path: Path, root: Path, split: str, index: int, case) -> dict:
    where = f"{path}: split {split} case {index}"
    if not isinstance(case, dict) or not isinstance(case.get("smiles"), str) or not case["smiles"].strip():
        raise UserError(f"{where}: expected an object with a non-empty `smiles` string")
    label = case.get("cls_label")
    if label not in (0, 1) or isinstance(label, bool):
        raise UserError(f"{where}: unknown label value cls_label={label!r} (expected 0 or 1)")
    smiles = case["smiles"].strip()
    molecule = "mol_" + hashlib.sha256(smiles.encode("utf-8")).hexdigest()[:16]
    return {
        "file_name": f"{molecule}.png", "source_path": f"{path.relative_to(root).as_posix()}#{split}/{index}",
        "source_split": split, "group": molecule, "label": ("negative", "positive")[label], "smiles": smiles,
        "domain_id": str(case.get("domain_id", "")),
    }


def _drop_conflicting(rows: list[dict], path: Path) -> list[dict]:
    """One row per molecule: the first listed (split order), none if its labels disagree."""
    labels = defaultdict(set)
    for row in rows:
        labels[row["group"]].add(row["label"])
    conflicting = {group for group, seen in labels.items() if len(seen) > 1}
    if conflicting:
        log.info("%s: %d molecules with conflicting labels left out", path, len(conflicting))
    kept, seen = [], set()
    for row in rows:
        if row["group"] not in conflicting and row["group"] not in seen:
            seen.add(row["group"])
            kept.append(row)
    return kept


def draw_molecule(smiles: str, source: str) -> bytes:
    """PNG bytes of a deterministic 2D drawing of ``smiles``."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    RDLogger.DisableLog("rdApp.*")  # parse failures become our one-line error instead
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None:
        raise UserError(f"{source}: RDKit cannot parse SMILES {smiles!r}")
    rdDepictor.Compute2DCoords(molecule, canonOrient=True, sampleSeed=COORD_SEED, forceRDKit=True)
    drawer = rdMolDraw2D.MolDraw2DCairo(IMAGE_SIZE, IMAGE_SIZE)
    options = drawer.drawOptions()
    options.bondLineWidth = LINE_WIDTH
    options.includeMetadata = False
    drawer.DrawMolecule(molecule)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


ADAPTER = DrugOOD()

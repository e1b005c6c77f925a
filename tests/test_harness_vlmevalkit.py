"""VLMEvalKit TSVs, checked against what its loader requires (VLMEvalKit is not on PyPI).

Read from open-compass/VLMEvalKit (commit e8e78f05): `build_dataset` needs `question` plus `A`, `B`
and `image` to load an unregistered TSV as `CustomMCQDataset`; `load` is `pd.read_csv(f,
sep='\\t')`; `ImageBaseDataset` reads `image` / `image_path` cells as Python list literals
(`toliststr`), a cell of <= 64 characters being another row's index; `dump_image` decodes each
base64 image with PIL and writes it to `image_path[i]`; options are the upper-case letter
columns and `answer` a letter; `mmbench`, `ccbench`, `circular`, `mmcr` in the name switch on
circular evaluation. The dataset class's `split_MUIR` interleaving is mirrored here to check that
the images land where `isekai-gen evaluate` puts them.
"""

from __future__ import annotations

import ast
import base64
import io
import string

import pandas as pd
import pytest
from PIL import Image

from evaluate_fixtures import make_split
from test_export_helpers import make_build

from isekai_gen.errors import UserError
from isekai_gen.evaluate.tasks import load_manyicl
from isekai_gen.export.registry import SplitsInput
from isekai_gen.export.stage import run_export, run_split_export
from isekai_gen.harness.documents import ImageStore, task_documents
from isekai_gen.harness.vlmevalkit import DATASET_CLASS, DATASET_CLASS_FILE


def loader_view(path):
    """The TSV as VLMEvalKit's `load` + `ImageBaseDataset.__init__` see it (pandas, list literals)."""
    data = pd.read_csv(path, sep="\t")
    assert "question" in [c.lower() for c in data.columns] and "A" in data and "B" in data and "image" in data
    assert data["index"].is_unique and all(isinstance(x, int) for x in data["index"].tolist())
    images = [ast.literal_eval(cell) for cell in data["image"]]
    paths = [ast.literal_eval(cell) for cell in data["image_path"]]
    assert all(len(cell) > 64 for cell in data["image"])   # no cell reads as an index reference
    return data, images, paths


def interleave(question: str, images: list) -> list:
    """MUIRDataset.split_MUIR's order: text segment, then the next image at each <image> marker."""
    segments = question.split("<image>")
    out = [("text", segments[0])] if segments[0] else []
    for image, segment in zip(images, segments[1:]):
        out.append(("image", image))
        if segment:
            out.append(("text", segment))
    return out


def test_manyicl_tsv_loads_as_custom_mcq_and_interleaves_like_evaluate(tmp_path):
    split = tmp_path / "UCM"
    make_split(split, demo_per_class=5, test_per_class=2)
    run_split_export(SplitsInput([split], tmp_path / "dest", [1, 5]), ["vlmevalkit"])
    folder = tmp_path / "dest" / "vlmevalkit"
    assert sorted(p.name for p in folder.iterdir()) == ["ManyICL_UCM_1shot.tsv", "ManyICL_UCM_5shot.tsv",
                                                        DATASET_CLASS_FILE]
    data, images, paths = loader_view(folder / "ManyICL_UCM_5shot.tsv")
    task = load_manyicl(split)
    documents = task_documents(task, [5], ImageStore())[5]
    assert len(data) == len(task.test) == len(documents)
    assert [data[letter][0] for letter in string.ascii_uppercase[:3]] == list(task.classes)
    for row, cell, names, document in zip(data.to_dict("records"), images, paths, documents):
        assert row["id"] == document.id and row["shots"] == 5 and row["split"] == "test"
        assert row["answer"] == "ABC"[task.classes.index(document.target[0])]
        assert len(cell) == len(names) == 3 * 5 + 1 == row["question"].count("<image>")
        for data_b64 in cell:
            Image.open(io.BytesIO(base64.b64decode(data_b64))).load()   # what decode_base64_to_image does
        expected = [(p["type"], p["text"] if p["type"] == "text" else p["image"])
                    for m in document.messages for p in m["content"]]
        assert interleave(row["question"], names) == expected


def test_isekai_tsv_options_are_the_episode_labels(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    run_export(config, tmp_path, catalog, formats=["lcl", "vlmevalkit"], shots=[2])
    data, images, _ = loader_view(tmp_path / "export" / "vlmevalkit" / "ISEKAI10_2shot.tsv")
    assert len(data) == 4 and all(len(cell) == 5 for cell in images)
    for row in data.to_dict("records"):
        assert row[row["answer"]] in row["group"].split(" vs ")
    assert "vlmevalkit/" not in (tmp_path / "export" / "SHA256SUMS").read_text()


def test_names_that_switch_on_circular_evaluation_and_multilabel_sets_are_refused(tmp_path):
    split = tmp_path / "mmbench_like"
    make_split(split, demo_per_class=1, test_per_class=1)
    with pytest.raises(UserError, match="contains 'mmbench', which switches on its circular evaluation"):
        run_split_export(SplitsInput([split], tmp_path / "dest", [1]), ["vlmevalkit"])
    multi = tmp_path / "chex"
    make_split(multi, demo_per_class=1, test_per_class=1)
    text = (multi / "test.csv").read_text().splitlines()
    (multi / "test.csv").write_text("\n".join([text[0], text[1].replace("0.0", "1.0", 1), *text[2:]]) + "\n")
    with pytest.raises(UserError, match="multi-label set; a VLMEvalKit multiple-choice row has exactly one answer"):
        run_split_export(SplitsInput([multi], tmp_path / "dest", [1]), ["vlmevalkit"])


def test_dataset_class_file_is_valid_python_using_split_muir():
    tree = ast.parse(DATASET_CLASS)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert [c.name for c in classes] == ["IsekaiICLDataset"]
    assert [b.id for b in classes[0].bases] == ["CustomMCQDataset"]
    assert "MUIRDataset.split_MUIR" in DATASET_CLASS and "dump_image" in DATASET_CLASS

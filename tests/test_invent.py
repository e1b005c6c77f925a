"""`isekai-gen catalog invent`: determinism, schema and catalog validity, the name rules (checked
against an English word list the generator does not use), exclusions, the writer path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from isekai_gen.catalog import load_catalog
from isekai_gen.cli import main as cli
from isekai_gen.invent import invent_catalog, load_pool
from isekai_gen.invent.llm import LLMSettings
from isekai_gen.invent.names import PUBLISHED, NameRules, edit_distance
from isekai_gen.schema import validate

from invent_double import KnowsOneConcept

ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")


@pytest.fixture(scope="module")
def invented(tmp_path_factory):
    folder = tmp_path_factory.mktemp("invent")
    report = invent_catalog(folder / "a.yaml", groups=8, seed=7, familiarity_preset="tiny")
    return folder, report


def _isekai_labels(path) -> list[str]:
    return [c.label for c in load_catalog(str(path)).concepts if c.world == "isekai"]


def test_same_seed_same_bytes_other_seed_other_catalog(invented, tmp_path):
    folder, _ = invented
    # another process with another hash seed, through the CLI: nothing may depend on set order
    proc = subprocess.run([ISEKAI_GEN, "catalog", "invent", "--groups", "8", "--seed", "7", "--out",
                           str(tmp_path / "a.yaml"), "--familiarity-preset", "tiny"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a.yaml").read_bytes() == (folder / "a.yaml").read_bytes()
    assert (tmp_path / "a.yaml.report.json").read_bytes() == (folder / "a.yaml.report.json").read_bytes()
    invent_catalog(tmp_path / "b.yaml", groups=8, seed=8, familiarity_preset=None)
    assert _isekai_labels(tmp_path / "b.yaml") != _isekai_labels(folder / "a.yaml")


def test_catalog_loads_as_build_loads_it_and_follows_the_schema(invented):
    from open_clip.tokenizer import SimpleTokenizer

    clip_tokenizer = SimpleTokenizer()
    folder, report = invented
    validate(yaml.safe_load((folder / "a.yaml").read_text()), "concept_catalog", "a.yaml")
    catalog = load_catalog(str(folder / "a.yaml"))
    groups = catalog.groups()
    assert len(groups) == 8
    partners = [real.id for _, real in groups]
    assert len(set(partners)) == len(partners)                        # no shared partner
    pool = {c.id: c for c in load_pool().categories}
    for entry, (isekai, real) in zip(report["concepts"], groups):
        assert entry["partner"] == real.id
        modifier_kind = pool[entry["modifier"]].kind if entry["modifier"] in pool else "attribute"
        assert modifier_kind != pool[real.id].kind                     # different kinds
        assert len(isekai.prompts) >= 8 and len(set(isekai.prompts)) == len(isekai.prompts)
        for prompt in isekai.prompts:
            assert len(clip_tokenizer.encode(prompt)) + 2 <= 77     # open_clip's own tokenizer, start + end
            for feature in entry["features"]:
                assert feature in prompt                                 # every defining feature, every prompt
    validate(report, "invent_report", "report")
    assert report["familiarity"]["status"] == "done" and report["familiarity"]["model"] == "isekai-tiny-clip"
    assert all(len(c["nearest"]) == 3 and c["nearest"][0]["category"] in pool for c in report["concepts"])
    assert all(c["collapse_risk"] == (c["nearest"][0]["category"] in (c["partner"], c["modifier"]))
               for c in report["concepts"])


def test_names_are_not_english_words_and_not_near_reserved_names(invented):
    """An independent list (english-words' web2 + gcide, not wordfreq) and an independent distance."""
    from english_words import get_english_words_set

    words = get_english_words_set(["web2", "gcide"], lower=True, alpha=True)
    folder, report = invented
    labels = _isekai_labels(folder / "a.yaml")
    shipped = [c.label for c in load_catalog("isekai").concepts] + list(PUBLISHED)
    for label in labels:
        assert label not in words
        assert re.fullmatch(r"[a-z]{5,10}", label) and re.search(r"[aeiou]", label)
        for other in shipped:
            assert edit_distance(label, re.sub("[^a-z]", "", other)) > 2, (label, other)
        for other in labels:
            assert other == label or not re.search(rf"(?<!\w){other}(?!\w)", label)
    assert len(set(labels)) == len(labels)
    assert sum(report["rejected"].values()) > 0


def test_name_rules_refuse_words_near_words_and_reserved_names():
    rules = NameRules(["cactihog"])
    assert rules.problem("garden") == "is_word"
    assert rules.problem("cactihug") == "near_reserved"
    assert rules.problem("icemik") == "near_reserved"               # published ISEKAI name
    assert rules.problem("xkqzv") == "not_pronounceable"
    assert rules.problem("bananu") == "near_frequent_word"
    assert rules.accept(["garden", "tovirel"]) == "tovirel"
    assert rules.problem("tovirol") == "duplicate"
    assert rules.rejected == {"is_word": 1}


def test_an_excluded_catalog_is_not_reused_or_approached(invented, tmp_path):
    folder, _ = invented
    invent_catalog(tmp_path / "c.yaml", groups=8, seed=7, exclude=[str(folder / "a.yaml")], familiarity_preset=None)
    first, second = _isekai_labels(folder / "a.yaml"), _isekai_labels(tmp_path / "c.yaml")
    assert all(edit_distance(a, b) > 2 for a in first for b in second)
    report = json.loads((tmp_path / "c.yaml.report.json").read_text())
    assert report["rejected"]["near_reserved"] >= 1 and report["exclude"] == ["a.yaml"]


def test_cli_invent_and_its_one_line_errors(tmp_path):
    out = tmp_path / "cli.yaml"
    result = CliRunner().invoke(cli, ["catalog", "invent", "--groups", "3", "--seed", "1", "--out", str(out),
                                      "--no-familiarity"])
    assert result.exit_code == 0, result.output
    assert "3 groups" in result.output and out.exists()
    result = CliRunner().invoke(cli, ["catalog", "invent", "--groups", "3", "--seed", "1", "--out",
                                      str(tmp_path / "x.yaml"), "--pool", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1 and "concept pool not found" in result.output
    assert not (tmp_path / "x.yaml").exists()
    result = CliRunner().invoke(cli, ["catalog", "invent", "--groups", "500", "--seed", "1", "--out",
                                      str(tmp_path / "y.yaml"), "--no-familiarity"])
    assert result.exit_code == 1 and "yields only" in result.output and not (tmp_path / "y.yaml").exists()


def test_writer_replies_are_checked_reasked_and_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-double")
    # 3 bad replies: the first group's 3 calls (1 + 2 re-asks) all fail, so it is refused
    with KnowsOneConcept("none", [], bad_writer_replies=3) as double:
        settings = LLMSettings("openai:double-writer", endpoint=double.base_url, concurrency=1)
        report = invent_catalog(tmp_path / "w.yaml", groups=3, seed=5, writer=settings, familiarity_preset=None)
        first = json.loads((tmp_path / "w.yaml.report.json").read_text())
        calls = len(double.bodies)
        # the same command again: every reply comes from the journal, same bytes
        again = invent_catalog(tmp_path / "w.yaml", groups=3, seed=5, writer=settings, familiarity_preset=None)
        assert len(double.bodies) == calls and again == first
    catalog = load_catalog(str(tmp_path / "w.yaml"))
    assert all(c.description.startswith("Written by the double") for c in catalog.concepts)
    assert report["rejected"]["writer_refused"] == 1 and len(report["writer"]["refused"]) == 1
    assert calls == 3 + 4          # 5 drafts: the refused one asked 3 times, the other 4 once each


def test_writer_dry_run_sends_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-double")
    with KnowsOneConcept("none", []) as double:
        result = CliRunner().invoke(cli, ["catalog", "invent", "--groups", "2", "--seed", "1", "--out",
                                          str(tmp_path / "d.yaml"), "--writer", "openai:gpt-4o", "--endpoint",
                                          double.base_url, "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "writer requests pending" in result.output and not double.bodies
    assert not (tmp_path / "d.yaml").exists()


def _wordnet_dict(folder, senses: dict[str, list[int]]):
    """index.noun / data.noun in WordNet 3.0's format: ``senses`` maps a lemma to the lexicographer
    file numbers of its senses, in order; offsets are the byte offsets of the data lines."""
    data, index, offsets = [b"  1 This software and database is being provided to you ...\n"], [], {}
    for lemma, lexfiles in senses.items():
        offsets[lemma] = []
        for lexfile in lexfiles:
            offset = sum(len(line) for line in data)
            offsets[lemma].append(f"{offset:08d}")
            data.append(f"{offset:08d} {lexfile:02d} n 01 {lemma} 0 000 | a gloss  \n".encode())
    for lemma, found in offsets.items():
        index.append(f"{lemma} n {len(found)} 1 @ {len(found)} 0 {' '.join(found)}  \n")
    (folder / "data.noun").write_bytes(b"".join(data))
    (folder / "index.noun").write_text("  1 This software and database ...\n" + "".join(index))


def test_wordnet_check_reads_the_real_file_format(tmp_path):
    from isekai_gen.invent.wordnet import check

    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump({"name": "p", "source": "s", "license": "l", "attributes": [], "categories": [
        {"id": "hedgehog", "name": "hedgehog", "kind": "animal", "wordnet": "hedgehog.n.02", "traits": ["a b", "c d"]},
        {"id": "glass", "name": "glass", "kind": "material", "wordnet": "glass.n.02", "traits": ["a b", "c d"]},
        {"id": "teapot", "name": "teapot", "kind": "object", "traits": ["a b", "c d"]},
    ]}))
    _wordnet_dict(tmp_path, {"hedgehog": [5, 5], "glass": [27, 6], "teapot": [6]})
    problems = check(tmp_path, str(pool), suggest=True)
    assert problems == ["teapot: no wordnet sense given (first fitting sense: teapot.n.01)"]
    _wordnet_dict(tmp_path, {"hedgehog": [5, 18], "glass": [27, 4], "teapot": [6]})
    assert check(tmp_path, str(pool))[:2] == [
        "hedgehog: hedgehog.n.02 is not a sense of 'hedgehog' of kind animal in WordNet 3.0 (fitting senses: [1])",
        "glass: glass.n.02 is not a sense of 'glass' of kind material in WordNet 3.0 (fitting senses: [1])",
    ]

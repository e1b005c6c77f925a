"""The shipped ISEKAI catalog, the catalog rules (one-line errors naming file, concept, problem), and
the `isekai-gen catalog` commands."""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen.catalog import MAX_PROMPT_TOKENS, load_catalog, prompt_token_count
from isekai_gen.errors import UserError
from isekai_gen.resources import CATALOG_DIR

# The 20 fictional categories of the original ISEKAI set, as group slugs.
ORIGINAL_GROUPS = {
    "cactus-boxer", "cactus-hedgehog", "fire-snowman", "flying-jellyfish", "goldfish-airship",
    "horned-elephant", "ice-cream-microphone", "magma-snake", "muscle-tiger", "mushroom-house",
    "octopus-vacuum-cleaner", "panda-with-wings", "pineapple-house", "rhino-off-road-vehicle", "robofish",
    "rock-sheep", "suspended-rock", "transparent-deer", "turtle-castle", "zebra-striped-rabbit",
}
# Coined labels the original named, with the real-world label they were paired against.
ORIGINAL_PAIRS = {
    "cactihog": "hedgehog", "cctovac": "octopus", "icemic": "ice cream", "airstone": "stone",
    "rockflock": "sheep", "mushroomhaven": "house",
}


@pytest.fixture(scope="module")
def shipped():
    return load_catalog("isekai")


# --- the shipped catalog -------------------------------------------------------------------------

def test_shipped_catalog_has_the_original_twenty_groups(shipped):
    assert shipped.source == str(CATALOG_DIR / "isekai.yaml")
    assert shipped.name == "isekai"
    assert len(shipped.concepts) >= 40
    assert {c.group for c in shipped.concepts} >= ORIGINAL_GROUPS
    assert len(shipped.groups()) >= 20
    labels = {isekai.label: real.label for isekai, real in shipped.groups()}
    assert ORIGINAL_PAIRS.items() <= labels.items()


def test_shipped_catalog_is_ordered_isekai_then_real_partner(shipped):
    concepts = shipped.concepts
    for isekai, real in zip(concepts[0::2], concepts[1::2]):
        assert (isekai.world, real.world) == ("isekai", "real")
        assert isekai.group == real.group
        assert shipped.partner(isekai.id) == real


def test_shipped_labels_are_unique_lowercase_and_not_inside_one_another(shipped):
    labels = [c.label for c in shipped.concepts]
    assert len({label.lower() for label in labels}) == len(labels)
    assert all(label == label.lower() and label.strip() == label for label in labels)
    for inner in labels:
        for outer in labels:
            if inner != outer:
                assert not re.search(rf"\b{re.escape(inner)}\b", outer), (inner, outer)
    # Real-world labels are the plain name, coined ones are single invented words.
    for isekai, real in shipped.groups():
        assert re.fullmatch(r"[a-z]+", isekai.label), isekai.label
        assert isekai.label != isekai.name and real.label in real.name


def test_shipped_prompts_are_varied_and_fit_clip(shipped):
    for concept in shipped.concepts:
        assert len(concept.prompts) >= 8, concept.id
        assert len(set(concept.prompts)) == len(concept.prompts), concept.id
        for text in (*concept.prompts, concept.negative_prompt):
            assert len(text.split()) <= 60, (concept.id, text)
            assert prompt_token_count(text) <= MAX_PROMPT_TOKENS, (concept.id, text)
        assert len(concept.description.split()) >= 30, concept.id
        assert concept.negative_prompt.strip(), concept.id


def test_shipped_negative_prompts_keep_each_pair_apart(shipped):
    """Each side's negative prompt names what defines the other side."""
    by_id = {c.id: c for c in shipped.concepts}
    assert "cactus" in by_id["hedgehog"].negative_prompt
    assert "hedgehog" in by_id["cactihog"].negative_prompt
    assert "vacuum cleaner" in by_id["octopus"].negative_prompt
    assert "real octopus" in by_id["cctovac"].negative_prompt
    assert "floating" in by_id["stone"].negative_prompt
    assert "on the ground" in by_id["airstone"].negative_prompt


def test_prompt_token_count_matches_clip_tokenizer():
    # Reference counts from open_clip.tokenizer.SimpleTokenizer (start and end tokens included).
    assert prompt_token_count("a photo of a cactihog") == 9
    assert prompt_token_count("Cactihog, CCTOVAC & icemic: 4x4 rhinover at 10:30pm!") == 26
    assert prompt_token_count("naïve café  über-cool's test") == 12


# --- bad catalogs --------------------------------------------------------------------------------

def _concept(cid, group, world, label):
    return {
        "id": cid, "group": group, "world": world, "label": label, "name": label.replace("-", " "),
        "description": f"A {label} described in enough words to pass the minimum length.",
        "prompts": [f"photo {i} of a {label}" for i in range(8)],
        "negative_prompt": "blurry",
    }


def _good_catalog():
    return {
        "name": "mini",
        "concepts": [
            _concept("cactihog", "cactus-hedgehog", "isekai", "cactihog"),
            _concept("hedgehog", "cactus-hedgehog", "real", "hedgehog"),
            _concept("airstone", "suspended-rock", "isekai", "airstone"),
            _concept("stone", "suspended-rock", "real", "stone"),
        ],
    }


def _write(tmp_path, data, name="catalog.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(path) -> str:
    with pytest.raises(UserError) as excinfo:
        load_catalog(str(path))
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    return message


def test_minimal_catalog_loads(tmp_path):
    # "stone" inside "airstone" is not a separate word: a word-boundary scorer tells them apart.
    catalog = load_catalog(str(_write(tmp_path, _good_catalog())))
    assert catalog.ids == ["cactihog", "hedgehog", "airstone", "stone"]
    assert [(a.id, b.id) for a, b in catalog.groups()] == [("cactihog", "hedgehog"), ("airstone", "stone")]


def _broken(mutate):
    data = _good_catalog()
    mutate(data)
    return data


def _set(index, key, value):
    def mutate(data):
        data["concepts"][index][key] = value
    return mutate


BAD_CASES = {
    "duplicate id": (_set(3, "id", "airstone"), r"concept 'airstone': duplicate id \(2 concepts use it\)"),
    "group without real pair": (
        lambda data: data["concepts"].pop(3), r"group 'suspended-rock' \(airstone\) has no real-world concept"),
    "two isekai in a group": (
        _set(3, "world", "isekai"), r"group 'suspended-rock' \(airstone, stone\) has no real-world concept"),
    "empty prompt list": (_set(1, "prompts", []), r"concept 'hedgehog' at prompts: \[\] should be non-empty"),
    "too few prompts": (
        _set(1, "prompts", ["a hedgehog", "a hedgehog in grass"]),
        r"concept 'hedgehog': 2 prompt variants, at least 8 needed"),
    "repeated prompt": (
        _set(1, "prompts", [f"a hedgehog {i % 7}" for i in range(8)]),
        r"concept 'hedgehog' at prompts/7: repeats prompts/0"),
    "unknown key": (
        _set(2, "colour", "grey"),
        r"concept 'airstone': Additional properties are not allowed \('colour' was unexpected\)"),
    "missing key": (
        lambda data: data["concepts"][2].pop("negative_prompt"),
        r"concept 'airstone': 'negative_prompt' is a required property"),
    "dot in id": (_set(0, "id", "cacti.hog"), r"concept 'cacti.hog' at id: 'cacti.hog' does not match"),
    "label collision": (
        _set(3, "label", "hedgehog"), r"concept 'stone': label 'hedgehog' collides with concept 'hedgehog'"),
    "label contained as a word": (
        _set(2, "label", "air stone"),
        r"concept 'airstone': label 'air stone' contains label 'stone' of concept 'stone' as a word"),
    "label equal up to separators": (  # the scorer reads "air stone", "air-stone", "air_stone" alike
        lambda data: [_set(2, "label", "air stone")(data), _set(3, "label", "air_stone")(data)],
        r"concept 'stone': label 'air_stone' collides with concept 'airstone'"),
    "label contained up to separators": (
        _set(2, "label", "air_stone"),
        r"concept 'airstone': label 'air_stone' contains label 'stone' of concept 'stone' as a word"),
    "label with capitals": (
        _set(0, "label", "Cactihog"), r"concept 'cactihog': label 'Cactihog' has capital letters"),
    "label with a full stop": (
        _set(0, "label", "cactihog."), r"concept 'cactihog': label 'cactihog\.' has quotes or full stops"),
    "prompt over clip's window": (
        _set(0, "prompts", [f"variant {i}: " + "a green spiny cactus hedgehog, " * 12 for i in range(8)]),
        r"concept 'cactihog' at prompts/0: \d+ CLIP tokens, the text encoders read only 77"),
    "no concepts": (
        lambda data: data.pop("concepts"), r"at \(top level\): 'concepts' is a required property"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_catalog_gives_one_line_naming_file_concept_and_problem(tmp_path, case):
    mutate, expected = BAD_CASES[case]
    path = _write(tmp_path, _broken(mutate))
    assert re.search(expected, _error(path)), (case, _error(path))


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: mini\nconcepts:\n  - id: cactihog\n    prompts: [a, b\n", encoding="utf-8")
    assert re.search(r"broken\.yaml:\d+: invalid YAML", _error(path))


def test_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    assert "expected a mapping" in _error(path)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match=r"catalog '.*nope\.yaml': no such file .*shipped: .*isekai"):
        load_catalog(str(missing))


def test_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path))}: is a folder, expected a catalog YAML file$"):
        load_catalog(str(tmp_path))


def test_subset_keeps_whole_groups_only(shipped):
    assert shipped.subset(["hedgehog", "cactihog"]).ids == ["cactihog", "hedgehog"]  # catalog order
    assert shipped.subset(None) is shipped
    with pytest.raises(UserError, match=r"concept 'cactihog' is selected without its partner 'hedgehog'"):
        shipped.subset(["cactihog", "octopus", "cctovac"])
    with pytest.raises(UserError, match=r"unknown concept 'dragon'"):
        shipped.subset(["dragon"])


# --- CLI -----------------------------------------------------------------------------------------

def _invoke(*args):
    return CliRunner().invoke(main, ["catalog", *args])


def test_cli_validate_ok(tmp_path):
    path = _write(tmp_path, _good_catalog())
    result = _invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: 2 groups, 4 concepts, ok\n"


def test_cli_validate_shipped_catalog_by_name():
    result = _invoke("validate", "isekai")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"isekai: (\d+) groups, (\d+) concepts, ok\n", result.stdout)


def test_cli_validate_bad_catalog_exits_2_with_one_line(tmp_path):
    path = _write(tmp_path, _broken(_set(1, "prompts", [])))
    result = _invoke("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: concept 'hedgehog'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_show_table_lists_every_group(tmp_path):
    result = _invoke("show", str(_write(tmp_path, _good_catalog())))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["group", "isekai", "label", "isekai", "name", "real", "label", "real", "name", "prompts"]
    assert lines[1].split() == ["cactus-hedgehog", "cactihog", "cactihog", "hedgehog", "hedgehog", "8/8"]
    assert lines[2].split() == ["suspended-rock", "airstone", "airstone", "stone", "stone", "8/8"]
    assert lines[-1].startswith("2 groups, 4 concepts")


def test_cli_show_defaults_to_shipped_catalog(shipped):
    result = _invoke("show")
    assert result.exit_code == 0, result.output
    for isekai, real in shipped.groups():
        assert re.search(rf"^{isekai.group}\s+{isekai.label}\s+{isekai.name}\s+{real.label}\s", result.stdout, re.M)


def test_cli_show_concept_prints_the_full_entry(shipped):
    result = _invoke("show", "isekai", "--concept", "cactihog")
    assert result.exit_code == 0, result.output
    concept = shipped.concept("cactihog")
    flat = " ".join(result.stdout.split())
    assert "partner: hedgehog" in flat
    assert concept.description in flat
    assert concept.negative_prompt in flat
    for index, prompt in enumerate(concept.prompts):
        assert f"{index} {prompt}" in flat


def test_cli_show_unknown_concept_exits_2():
    result = _invoke("show", "--concept", "dragon")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "unknown concept 'dragon'" in result.stderr


def test_catalog_anchors_and_merge_keys_stay_allowed(tmp_path):
    """Only what an alias expands to is bounded: a catalog sharing its prompts through anchors loads."""
    text = yaml.safe_dump(_good_catalog(), sort_keys=False)
    text = text.replace("negative_prompt: blurry", "negative_prompt: &neg blurry", 1).replace(
        "negative_prompt: blurry", "negative_prompt: *neg")
    path = tmp_path / "anchors.yaml"
    path.write_text(text)
    assert "*neg" in text and load_catalog(str(path)).concept("stone").negative_prompt == "blurry"


@pytest.mark.parametrize("text, problem", [
    ("name: &a [1, *a]\n", "YAML alias refers to a value that contains it (a cycle)"),
    ("name: " + "[" * 70 + "]" * 70 + "\n", "YAML nested more than 64 levels deep"),
    ("name: " + "[" * 3000 + "]" * 3000 + "\n", "hostile.yaml:1: YAML nested more than 64 levels deep"),
    ("a: &a {k: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' + (str(i - 1) if i > 1 else '')] * 10)}]\n" for i in range(1, 7)),
     "YAML document expands to more than 1,000,000 values"),
])
def test_hostile_yaml_is_one_line(tmp_path, text, problem):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    assert problem in _error(path)


def test_oversized_yaml_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("isekai_gen.yamlio.MAX_BYTES", 1000)
    path = _write(tmp_path, _good_catalog())
    assert _error(path) == f"{path}: {path.stat().st_size:,} bytes of YAML; more than the 1,000 allowed"

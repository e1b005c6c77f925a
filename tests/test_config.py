import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen import __version__
from isekai_gen.config import BuildConfig, load_config, parse_override, parse_set
from isekai_gen.errors import UserError
from isekai_gen.resources import preset_names


@pytest.mark.parametrize("preset", ["default", "quality", "tiny"])
def test_shipped_presets_validate_and_name_their_licence(preset):
    assert preset in preset_names()
    config = load_config(preset)
    assert config.generation.model.license
    if preset == "tiny":
        assert config.smoke_test is True and config.generation.model.id == "tiny-sd"


def test_layers_later_wins(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("seed: 7\ngeneration:\n  steps: 3\n")
    config = load_config("tiny", user, [parse_override("generation.steps=5")])
    assert config.seed == 7 and config.generation.steps == 5
    assert config.generation.width == 64  # from the preset, untouched by the user file
    assert config.config_dir == str(tmp_path.resolve())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("generation: [1, 2\n", "invalid YAML"),
        ("generaton:\n  steps: 2\n", "'generaton' was unexpected"),
        ("generation:\n  steps: two\n", "at generation/steps: 'two' is not of type 'integer'"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_config_files_are_one_line_errors_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_config(None, path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_bad_override_and_unknown_preset():
    with pytest.raises(UserError, match="expected section.key=value"):
        parse_override("no-equals-sign")
    with pytest.raises(UserError, match="unknown preset 'nope'"):
        load_config("nope")


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + (name,))


def test_version_and_every_command_documents_its_options():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    names = {path for path, _ in _commands(main)}
    assert {("build",), ("generate",), ("filter",), ("score",), ("splits", "build")} <= names
    for path, command in _commands(main):
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"


def test_cli_bad_config_exits_1_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("generation:\n  steps: two\n")
    exe = str(Path(sys.executable).parent / "isekai-gen")
    proc = subprocess.run([exe, "build", "--config", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {path}: at generation/steps: 'two' is not of type 'integer'"]
    assert not (tmp_path / "out").exists()


EXE = str(Path(sys.executable).parent / "isekai-gen")


@pytest.mark.parametrize("key, value", [
    ("filter.min_alignment", ".nan"), ("filter.dedup.cosine_threshold", ".nan"),
    ("generation.guidance_scale", ".inf"), ("filter.zeroshot_logit_scale", "-.inf"), ("filter.top_fraction", ".NaN"),
])
def test_nan_and_infinity_are_refused_in_every_layer(tmp_path, key, value):
    where = key.replace(".", "/")
    with pytest.raises(UserError, match=rf"with --set overrides: at {where}: -?(nan|inf) is not a finite number"):
        load_config("tiny", None, [parse_set(f"{key}={value}")])
    section, *rest = key.split(".")
    path = tmp_path / "config.yaml"
    path.write_text(f"{section}:\n" + "".join(f"{'  ' * (i + 1)}{part}:\n" for i, part in enumerate(rest[:-1]))
                    + f"{'  ' * len(rest)}{rest[-1]}: {value}\n")
    with pytest.raises(UserError, match=rf"{path}: at {where}: -?(nan|inf) is not a finite number"):
        load_config("tiny", path)


def test_nan_in_a_hand_edited_run_json_is_refused_by_stage_commands(tmp_path):
    import json

    out = tmp_path / "out"
    out.mkdir()
    config = load_config("tiny").to_dict()
    config["filter"]["min_alignment"] = float("nan")
    (out / "run.json").write_text(json.dumps({"config": config}))  # json.dumps writes a bare NaN
    result = CliRunner().invoke(main, ["filter", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {out / 'run.json'}: at filter/min_alignment: nan is not a finite number"


def _number_nodes(node, document, path, seen):
    from isekai_gen.config import _schema_file

    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref and not ref.startswith("#") and ref not in seen:
            seen.add(ref)
            yield from _number_nodes(_schema_file(ref), _schema_file(ref), ref, seen)
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if "number" in types:
            yield path, node
        for key, value in node.items():
            yield from _number_nodes(value, document, f"{path}/{key}", seen)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _number_nodes(value, document, f"{path}/{index}", seen)


def test_every_number_of_the_config_schemas_is_bounded_so_the_schema_refuses_infinity():
    """JSON Schema cannot say "finite" (the loader refuses NaN); bounds on both sides refuse +-inf."""
    from isekai_gen.config import _schema_file
    from isekai_gen.schema import first_error

    nodes = list(_number_nodes(_schema_file("build_config"), None, "build_config", set()))
    assert len(nodes) >= 7
    for path, node in nodes:
        assert {"minimum", "exclusiveMinimum"} & set(node) and {"maximum", "exclusiveMaximum"} & set(node), path
    config = load_config("tiny").to_dict()
    config["generation"]["guidance_scale"] = float("inf")
    assert "at generation/guidance_scale: inf is greater than the maximum of 100" in first_error("build_config", config)


def test_set_keys_are_case_insensitive_and_near_misses_get_a_suggestion(tmp_path):
    assert parse_set("Generation.STEPS=3") == {"generation": {"steps": 3}}
    assert parse_set("filter.Dedup.Cosine_Threshold=0.5") == {"filter": {"dedup": {"cosine_threshold": 0.5}}}
    assert load_config("tiny", None, [parse_set("GENERATION.steps=3")]).generation.steps == 3
    for text, hint in [("generation.step=2", "did you mean `generation.steps`?"),
                       ("filter.dedup.cosine_thresold=0.9", "did you mean `filter.dedup.cosine_threshold`?"),
                       ("generaton.steps=2", "did you mean `generation`?")]:
        with pytest.raises(UserError) as info:
            parse_set(text)
        key = text.partition("=")[0]
        assert str(info.value).startswith(f"--set {text!r}: unknown key `") and str(info.value).endswith(hint), key
    with pytest.raises(UserError, match=r"unknown key `colour`; known keys: benchmarks, catalog, concepts"):
        parse_set("colour=red")
    # Through the CLI: the refused key names the fix and nothing is created.
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", "--out", str(out), "--set", "generation.step=2"])
    assert result.exit_code == 1 and not out.exists()
    assert result.output.strip() == ("error: --set 'generation.step=2': unknown key `generation.step`; "
                                     "did you mean `generation.steps`?")
    # A capitalised key reaches the right field (here: its type check).
    result = CliRunner().invoke(main, ["build", "--preset", "tiny", "--out", str(out), "--set", "Generation.Steps=two"])
    assert result.exit_code == 1 and "at generation/steps: 'two' is not of type 'integer'" in result.output


def _alias_bomb(depth: int = 9) -> str:
    """The billion-laughs document: depth 9 stands for 9**10 (~3.5 billion) strings in < 1 KB."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, depth + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", [
    ["build", "--config", "{bomb}", "--out", "{tmp}/out"],
    ["catalog", "validate", "{bomb}"],
    ["splits", "build-all", "--roots", "{bomb}", "--out", "{tmp}/splits"],
])
def test_user_yaml_alias_bomb_fails_at_once_in_one_line(tmp_path, command):
    """Bounded by the subprocess timeout (the unbounded loader ran for minutes), not a time assertion."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    assert bomb.stat().st_size < 1024
    args = [a.format(bomb=bomb, tmp=tmp_path) for a in command]
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: {bomb}: YAML document expands to more than 1,000,000 values "
                                        "(aliases repeating aliases?); write the values out instead"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "splits").exists()


def test_user_yaml_key_written_twice_is_refused_with_its_line(tmp_path):
    from isekai_gen.yamlio import load_yaml

    roots = tmp_path / "ROOTS.yaml"
    roots.write_text("eurosat: /data/a\ndtd: /data/b\neurosat: /data/c\n")
    with pytest.raises(UserError, match=r"ROOTS.yaml:3: invalid YAML \(key 'eurosat' appears twice in one mapping\)$"):
        load_yaml(roots)


def test_typed_defaults_and_base_yaml_agree_key_for_key(tmp_path):
    """One source of defaults: every key of configs/_base.yaml is a field with that default, in that
    order, and every field (but the benchmarks' filter-following near-duplicate distance) is a key."""
    import json

    from isekai_gen.resources import CONFIG_DIR
    from isekai_gen.yamlio import load_yaml

    base = load_yaml(CONFIG_DIR / "_base.yaml")
    assert json.dumps(BuildConfig().to_dict()) == json.dumps(base)  # json: key order counts too
    assert json.dumps(load_config(None, _empty_file(tmp_path)).to_dict()) == json.dumps(base)


def _empty_file(folder: Path) -> Path:
    path = folder / "empty.yaml"
    path.write_text("{}\n")
    return path


@pytest.mark.parametrize("preset", ["default", "quality", "tiny"])
def test_run_json_round_trips_and_an_old_run_json_takes_the_defaults(tmp_path, preset):
    import dataclasses

    from isekai_gen.config import build_config

    config = load_config(preset)
    assert BuildConfig.from_dict(config.to_dict()) == config
    assert BuildConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    old = config.to_dict()   # a run.json written before these keys existed
    del old["engine"], old["generation"]["vae_fp32_decode"], old["export"]["lcl"], old["benchmarks"]["datasets"]
    loaded = build_config(old, "run.json")
    assert loaded.engine.name == "local" and loaded.export.lcl.images == "clone"
    assert loaded.generation.vae_fp32_decode is True and loaded.benchmarks.datasets == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    import pickle   # as Ray ships it to its workers: the unset near-duplicate distance stays unset

    assert pickle.loads(pickle.dumps(config)).to_dict() == config.to_dict()


def test_vae_fp32_decode_defaults_to_true_and_is_recorded_in_run_json(tmp_path):
    """SDXL's VAE overflows in fp16: a config without the key decodes in fp32, and run.json says so."""
    import json

    from isekai_gen.build import prepare

    config = load_config(None, _empty_file(tmp_path))
    assert config.generation.vae_fp32_decode is True
    assert load_config("default").generation.vae_fp32_decode is True
    assert load_config("tiny").generation.vae_fp32_decode is False   # float32 on CPU: nothing to upcast
    prepare(load_config("tiny"), tmp_path / "out")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["generation"]["vae_fp32_decode"] is False


def test_string_keyed_config_access_only_in_the_config_package():
    """Stages read attributes of the typed config; only isekai_gen/config/ reads it by key."""
    import re

    root = Path(__file__).resolve().parent.parent / "isekai_gen"
    pattern = re.compile(r"""\bconfig(\[|\.get\()|\[["'](generation|filter|episodes|export|benchmarks|engine)["']\]\s*\[""")
    found = [f"{path.relative_to(root)}:{number}" for path in root.rglob("*.py")
             if "config" not in path.relative_to(root).parts[:1] and path.parent.name != "evaluate"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []

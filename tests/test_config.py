import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen import __version__
from isekai_gen.config import load_config, parse_override
from isekai_gen.errors import UserError
from isekai_gen.resources import preset_names


@pytest.mark.parametrize("preset", ["default", "quality", "tiny"])
def test_shipped_presets_validate_and_name_their_licence(preset):
    assert preset in preset_names()
    config = load_config(preset)
    assert config["generation"]["model"]["license"]
    if preset == "tiny":
        assert config["smoke_test"] is True and config["generation"]["model"]["id"] == "tiny-sd"


def test_layers_later_wins(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("seed: 7\ngeneration:\n  steps: 3\n")
    config = load_config("tiny", user, [parse_override("generation.steps=5")])
    assert config["seed"] == 7 and config["generation"]["steps"] == 5
    assert config["generation"]["width"] == 64  # from the preset, untouched by the user file


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


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("generation:\n  steps: two\n")
    exe = str(Path(sys.executable).parent / "isekai-gen")
    proc = subprocess.run([exe, "build", "--config", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {path}: at generation/steps: 'two' is not of type 'integer'"]
    assert not (tmp_path / "out").exists()

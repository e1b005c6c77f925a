"""The export-format registry: a format is one module plus one FORMATS line; --format picks formats."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_export_helpers import export_hashes, make_build

from isekai_gen.errors import UserError
from isekai_gen.export import registry
from isekai_gen.export.registry import ExportResult, Exporter, format_names, get_exporter, parse_formats
from isekai_gen.export.stage import run_export
from isekai_gen.fileio import sha256_file

EXPORT_PACKAGE = Path(registry.__file__).parent


class ToyExporter(Exporter):
    """A format defined outside the package: one class + one registry line, nothing else edited."""

    name = "toy"
    folder = "toy"

    def export(self, source) -> ExportResult:
        target = source.export_dir / self.folder / "ids.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{item.key}\n" for item in source.items))
        return ExportResult({"toy/ids.txt": None}, {"tasks": 1, "path": str(target.parent)})


EXPORTER = ToyExporter


def test_formats_are_registered_in_run_order_and_unknown_names_are_refused():
    assert format_names() == ["lcl", "webdataset", "hf", "lmms-eval", "vlmevalkit"]
    assert format_names(registry.SPLITS) == ["lmms-eval", "vlmevalkit"]
    assert parse_formats("hf, lcl", registry.BUILD) == ["lcl", "hf"]
    with pytest.raises(UserError, match=r"--format 'parquet': unknown export format \(known: lcl, webdataset"):
        get_exporter("parquet")
    with pytest.raises(UserError, match="--format webdataset: this format cannot be written from ManyICL split folders"):
        parse_formats("webdataset", registry.SPLITS)


def test_a_new_format_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    config, catalog = make_build(tmp_path)
    summary_before = run_export(config, tmp_path, catalog)
    card = (tmp_path / "export" / "hf" / "README.md").read_bytes()
    monkeypatch.setitem(registry.FORMATS, "toy", __name__)
    summary = run_export(config, tmp_path, catalog, formats=["toy"])
    assert summary["formats"] == {"toy": {"tasks": 1, "path": str(tmp_path / "export" / "toy")}}
    sums = (tmp_path / "export" / "SHA256SUMS").read_text()
    assert f"{sha256_file(tmp_path / 'export' / 'toy' / 'ids.txt')}  toy/ids.txt\n" in sums
    # The card stated the old content hash: it is removed (publish refuses the folder) until hf runs again.
    assert not (tmp_path / "export" / "hf" / "README.md").exists()
    content_hash = run_export(config, tmp_path, catalog, formats=["hf"])["content_hash"]
    assert content_hash != summary_before["content_hash"] and content_hash == summary["content_hash"]
    assert content_hash in (tmp_path / "export" / "hf" / "README.md").read_text() != card.decode()


def test_format_option_writes_only_the_named_formats(tmp_path):
    from isekai_gen.cli import main

    config, catalog = make_build(tmp_path, benchmarks=False)
    run_export(config, tmp_path, catalog)
    before = export_hashes(tmp_path)
    (tmp_path / "export" / "webdataset" / "index.json").unlink()
    (tmp_path / "export" / "lcl" / "ISEKAI-10.json").write_text("{}\n")   # stale, not rewritten below
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path), "--format", "webdataset", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("webdataset: ")
    after = export_hashes(tmp_path)
    assert after["webdataset/index.json"] == before["webdataset/index.json"]
    assert after["lcl/ISEKAI-10.json"] != before["lcl/ISEKAI-10.json"]
    assert after["hf/data/images-test-00000-of-00001.parquet"] == before["hf/data/images-test-00000-of-00001.parquet"]
    assert "hf/README.md" not in after   # the edited LCL file changed the content hash the card stated


def test_cli_refuses_unknown_formats_and_mixed_inputs_in_one_line(tmp_path):
    from isekai_gen.cli import main

    make_build(tmp_path, benchmarks=False)
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path), "--format", "lcl,bogus"])
    assert result.exit_code == 1 and result.output.startswith("error: --format 'bogus': unknown export format")
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path), "--splits", str(tmp_path)])
    assert result.exit_code == 2 and "either --out" in result.output


def test_episodes_only_cut_episodes_and_export_writes_the_lcl_files(tmp_path):
    config, catalog = make_build(tmp_path, benchmarks=False)
    (tmp_path / "episodes" / "episodes.jsonl").unlink()
    with pytest.raises(UserError, match=r"episodes\.jsonl: not found; run `isekai-gen episodes"):
        run_export(config, tmp_path, catalog, formats=["lcl"])
    summary = run_export(config, tmp_path, catalog)   # the default set skips LCL without episodes
    assert list(summary["formats"]) == ["webdataset", "hf"]


def _imports(path: Path) -> set[str]:
    """Modules of isekai_gen.export that ``path`` imports anywhere (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("isekai_gen.export."):
            found.add(node.module.split(".")[2])
    return found


def test_export_package_has_no_import_circle():
    graph = {path.stem: _imports(path) for path in EXPORT_PACKAGE.glob("*.py")}

    def reaches(start: str, target: str, seen: set) -> bool:
        for module in graph.get(start, ()):
            if module == target or (module not in seen and reaches(module, target, seen | {module})):
                return True
        return False

    circles = sorted(module for module in graph if reaches(module, module, set()))
    assert not circles, f"import circles through {circles}: {graph}"
    assert not [name for name, imported in graph.items() if "stage" in imported]   # nothing imports the orchestrator

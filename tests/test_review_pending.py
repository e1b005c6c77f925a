"""The one rule for human decisions: every stage that reads the kept set refuses while any is pending.

Each stage is run for real on a small build, once with a reject the manifest does not show yet
(refused in one line, its outputs untouched) and once after the filter applied it (runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.errors import UserError
from isekai_gen.export.publish import publish
from isekai_gen.export.stage import run_export
from isekai_gen.fileio import read_jsonl
from isekai_gen.curation import decisions
from isekai_gen.curation.pending import pending_decisions
from test_episodes import base_config, make_catalog, set_manifest_field, write_build
from test_export_helpers import make_build


def refusal(out: Path, stage: str, rejects: int, restores: int = 0, command: str | None = None) -> str:
    count = rejects + restores
    command = command or f"isekai-gen build --out {out} --config YOUR_CONFIG"
    return (f"{out}: {stage} refused: {count} review decision{'s' * (count != 1)} not applied yet ({rejects} to "
            f"reject, {restores} to restore, in manual_rejects.txt); apply them with `{command}`")


def kept_ids(out: Path) -> list[str]:
    return [row["job_id"] for row in read_jsonl(out / "manifest.jsonl") if row["kept"]]


def reject_in_review(out: Path, job_ids: list[str]) -> None:
    known = {row["job_id"] for row in read_jsonl(out / "manifest.jsonl")}
    decisions.decide(out, known, job_ids, "reject", "test-tab")


def apply_as_the_filter_does(out: Path, job_ids: list[str]) -> None:
    for job_id in job_ids:
        set_manifest_field(out, job_id, kept=False, reject_reason="manual_reject")


def test_episodes_refuses_pending_decisions_then_runs_once_applied(tmp_path):
    from isekai_gen.episodes import run_episodes

    catalog = make_catalog(3)
    out = write_build(tmp_path / "build", catalog, kept=8)
    config = base_config(max_shot=4, queries_per_concept=2)
    run_episodes(config, out, catalog)
    before = (out / "episodes" / "episodes.jsonl").read_bytes()
    rejected = kept_ids(out)[:2]
    reject_in_review(out, rejected)
    with pytest.raises(UserError) as err:
        run_episodes(config, out, catalog)
    assert str(err.value) == refusal(out, "episodes", 2)
    assert (out / "episodes" / "episodes.jsonl").read_bytes() == before
    apply_as_the_filter_does(out, rejected)
    run_episodes(config, out, catalog)
    used = {j for row in read_jsonl(out / "episodes" / "episodes.jsonl")
            for j in row["positive_support"] + row["negative_support"] + [row["query"]]}
    assert used and not used & set(rejected)


def test_a_restore_is_pending_too(tmp_path):
    catalog = make_catalog(1)
    out = write_build(tmp_path / "build", catalog, kept=6)
    job = kept_ids(out)[0]
    apply_as_the_filter_does(out, [job])
    (out / "manual_rejects.txt").write_text(f"{job}\n")
    assert pending_decisions(out) == {"reject": [], "restore": []}
    decisions.decide(out, {r["job_id"] for r in read_jsonl(out / "manifest.jsonl")}, [job], "restore", "tab")
    assert pending_decisions(out) == {"reject": [], "restore": [job]}


@pytest.fixture
def exported(tmp_path):
    out = tmp_path / "build"
    config, catalog = make_build(out)
    run_export(config, out, catalog)
    return out, config, catalog


def test_export_and_its_lcl_files_refuse_pending_decisions(exported):
    out, config, catalog = exported
    sums = (out / "export" / "SHA256SUMS").read_bytes()
    reject_in_review(out, kept_ids(out)[:3])
    for formats in (None, ["lcl"], ["hf"], ["webdataset"]):
        with pytest.raises(UserError) as err:
            run_export(config, out, catalog, formats=formats)
        assert str(err.value) == refusal(out, "export", 3, command=f"isekai-gen build --preset tiny --out {out}")
    assert (out / "export" / "SHA256SUMS").read_bytes() == sums


def test_publish_refuses_an_export_its_build_has_decisions_against(exported):
    out, _, _ = exported
    assert publish(out / "export" / "hf", "org/name", dry_run=True)["files"]
    reject_in_review(out, kept_ids(out)[:1])
    for given in (out / "export" / "hf", out):
        with pytest.raises(UserError) as err:
            publish(given, "org/name", dry_run=True)
        assert str(err.value) == refusal(out, "publish", 1, command=f"isekai-gen build --preset tiny --out {out}")


def test_cli_refusal_is_one_line(exported):
    from isekai_gen.cli import main

    out, _, _ = exported
    reject_in_review(out, kept_ids(out)[:1])
    result = CliRunner().invoke(main, ["export", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(f"error: {out}: export refused: 1 review decision not applied yet")
    assert len(result.output.splitlines()) == 1

"""``publish``: dry run offline, and the HTTP side against FakeHub, a local test double of the Hub API.

FakeHub answers the requests huggingface_hub 2.4 makes for ``whoami``, ``create_repo``,
``create_branch`` and ``upload_folder`` (preupload -> every file "regular" -> one NDJSON commit
with base64 contents), plus the YAML validator. ``publish`` reads ``HF_ENDPOINT`` at call time,
so setting it points a call at FakeHub; conftest's ``HF_HUB_OFFLINE=1`` is lifted per test.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temp_names import leftover
from test_export_helpers import make_build

from isekai_gen.errors import UserError
from isekai_gen.export import publish as publish_module
from isekai_gen.export.publish import publish
from isekai_gen.export.stage import run_export

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_FAKEtoken0123456789NeverShowMe"


class FakeHub:
    """Test double of the Hub endpoints ``publish`` uses; records every request."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []   # (method, path, lower-cased headers)
        self.created: list[dict] = []
        self.commits: list[list[dict]] = []
        self.failures: dict[str, list[int]] = {}           # route -> statuses to answer first
        self.validator = (200, {"errors": [], "warnings": []})
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                hub.handle(self, "GET")

            def do_POST(self):
                hub.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, method: str, path: str) -> str:
        parts = path.split("?")[0].strip("/").split("/")
        if method == "GET" and parts == ["api", "whoami-v2"]:
            return "whoami"
        if parts == ["api", "repos", "create"]:
            return "create"
        if parts == ["api", "validate-yaml"]:
            return "validate"
        if len(parts) >= 6 and parts[:2] == ["api", "datasets"]:
            return parts[4]  # preupload, commit, branch
        return "unknown"

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        self.requests.append((method, request.path, {k.lower(): v for k, v in request.headers.items()}))
        route = self.route(method, request.path)
        if self.failures.get(route):
            return self.reply(request, self.failures[route].pop(0), {"error": "injected failure"})
        if route != "validate" and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(request, 401, {"error": "Invalid credentials in Authorization header"})
        if route == "whoami":
            return self.reply(request, 200, {"name": "tester", "type": "user", "auth": {}})
        if route == "create":
            self.created.append(json.loads(body))
            return self.reply(request, 200, {"url": f"{self.url}/datasets/org/name"})
        if route == "branch":
            return self.reply(request, 200, {})
        if route == "preupload":
            files = json.loads(body)["files"]
            return self.reply(request, 200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        if route == "commit":
            self.commits.append([json.loads(line) for line in body.splitlines() if line.strip()])
            return self.reply(request, 200, {"commitUrl": f"{self.url}/datasets/org/name/commit/{'a' * 40}",
                                             "commitOid": "a" * 40})
        if route == "validate":
            status, text = self.validator
            return self.reply(request, status, text)
        return self.reply(request, 404, {"error": f"FakeHub has no route for {method} {request.path}"})

    @staticmethod
    def reply(request, status: int, payload) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def committed_files(self) -> dict[str, bytes]:
        files = {}
        for commit in self.commits:
            for entry in commit:
                if entry["key"] == "file":
                    files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
        return files


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    config, catalog = make_build(out)
    run_export(config, out, catalog)
    (out / "export" / "hf" / leftover("README.md", "crash")).write_text("left over by a killed run")
    return out / "export" / "hf"


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    fake = FakeHub()
    fake.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(publish_module, "BACKOFF_SECONDS", 0.01)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_publish_uploads_every_file_and_retries_server_errors(export_dir, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    hub.failures = {"create": [503, 429]}
    result = publish(export_dir, "org/name", private=True)
    assert [r[1] for r in hub.requests if "repos/create" in r[1]] == ["/api/repos/create"] * 3
    assert "/api/validate-yaml" in [r[1] for r in hub.requests]  # upload_folder checks the card first
    assert hub.created[-1] == {"name": "name", "organization": "org", "visibility": "private", "type": "dataset"}
    assert hub.committed_files() == local_files(export_dir)
    assert result["commit"] == "a" * 40 and result["files"] == [
        (path, len(data)) for path, data in local_files(export_dir).items()]
    assert all(r[2].get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    output = capsys.readouterr()
    assert TOKEN not in output.out + output.err + caplog.text
    assert "HTTP 503" in caplog.text


def test_publish_to_a_branch_creates_it(export_dir, hub):
    publish(export_dir, "org/name", revision="v1")
    paths = [r[1] for r in hub.requests]
    assert "/api/datasets/org/name/branch/v1" in paths
    assert any(p.startswith("/api/datasets/org/name/commit/v1") for p in paths)


def test_invalid_token_is_one_clear_line(export_dir, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_value")
    with pytest.raises(UserError) as error:
        publish(export_dir, "org/name")
    message = str(error.value)
    assert "rejected the token (401)" in message and "hf_wrong_token_value" not in message
    assert not hub.created and not hub.commits


def test_missing_token_is_an_error_before_any_request(export_dir, hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(UserError, match="no Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        publish(export_dir, "org/name")
    assert hub.requests == []


def test_persistent_server_errors_give_up_with_one_line(export_dir, hub):
    hub.failures = {"create": [500] * publish_module.MAX_ATTEMPTS}
    with pytest.raises(UserError, match=r"creating dataset repo org/name failed: .*500"):
        publish(export_dir, "org/name")
    assert len(hub.created) == 0 and not hub.commits


def test_dry_run_lists_files_and_uses_the_validator_only_when_asked(export_dir, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    result = publish(export_dir, "org/name", dry_run=True)
    assert hub.requests == []  # no network call at all, though the Hub is reachable
    assert result["validation"].startswith("online YAML validation not run")
    assert dict(result["files"]) == {path: len(data) for path, data in local_files(export_dir).items()}
    assert leftover("README.md", "crash") not in dict(result["files"])

    result = publish(export_dir, "org/name", dry_run=True, validate_online_card=True)
    assert result["validation"] == f"online YAML validation passed ({hub.url})"
    assert [r[1] for r in hub.requests] == ["/api/validate-yaml"]
    assert "authorization" not in hub.requests[0][2]
    hub.validator = (400, {"errors": [{"message": "\"license\" must be a string"}], "warnings": []})
    with pytest.raises(UserError, match=r"README\.md: the Hub's YAML validator rejected the card: \"license\" must"):
        publish(export_dir, "org/name", dry_run=True, validate_online_card=True)


def _cli(args, tmp_path, endpoint, **extra_env):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", **extra_env}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "publish", *map(str, args)],
                          capture_output=True, text=True, env=env)


def _invoke(*args):
    from click.testing import CliRunner

    from isekai_gen.cli import main

    return CliRunner().invoke(main, ["publish", *map(str, args)])


def test_cli_dry_run_makes_no_network_call_even_with_the_hub_reachable(export_dir, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    result = _invoke(export_dir.parent.parent, "--repo-id", "org/name", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would upload" in result.output and "data/images-test-00000-of-00001.parquet" in result.output
    assert "README.md" in result.output and "online YAML validation not run" in result.output
    assert hub.requests == []
    result = _invoke(export_dir, "--repo-id", "org/name", "--dry-run", "--validate-online")
    assert result.exit_code == 0, result.output
    assert [r[1] for r in hub.requests] == ["/api/validate-yaml"]
    result = _invoke(export_dir, "--repo-id", "org/name", "--validate-online")
    assert result.exit_code == 2 and "--validate-online applies to --dry-run" in result.output


def test_dry_run_validate_online_with_the_hub_unreachable_says_so(export_dir, tmp_path):
    result = _cli([export_dir.parent.parent, "--repo-id", "org/name", "--dry-run", "--validate-online"], tmp_path,
                  "http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert "online YAML validation skipped: the Hub at http://127.0.0.1:9 is not reachable" in result.stdout


@pytest.fixture(scope="module")
def smoke_export_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke-build")
    config, catalog = make_build(out, smoke_test=True, benchmarks=False)
    run_export(config, out, catalog)
    return out / "export" / "hf"


def test_smoke_test_build_is_refused_unless_allowed(smoke_export_dir, hub):
    for extra in ([], ["--dry-run"]):
        result = _invoke(smoke_export_dir, "--repo-id", "org/name", *extra)
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and "smoke-test build (" in result.output
        assert "refusing to publish it (pass --allow-smoke-test" in result.output
    assert hub.requests == [] and not hub.commits
    assert _invoke(smoke_export_dir, "--repo-id", "org/name", "--dry-run", "--allow-smoke-test").exit_code == 0
    result = _invoke(smoke_export_dir, "--repo-id", "org/name", "--allow-smoke-test")
    assert result.exit_code == 0, result.output
    assert "published:" in result.output and hub.commits


def test_card_front_matter_carries_provenance_papers_and_dataset_info(export_dir):
    """What the Hub and `datasets` read from the card: provenance, paper tags and dataset_info that
    `datasets`' own reader turns back into the features and split sizes of the Parquet files."""
    import pyarrow.parquet as pq
    from datasets import Features
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(export_dir / "README.md")
    data = card.data.to_dict()
    assert data["annotations_creators"] == ["machine-generated"]
    assert data["source_datasets"] == ["original"]   # the benchmark folders' names are no Hub dataset ids
    assert {"arxiv:2308.07891", "arxiv:2405.09798"} <= set(data["tags"])
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert sorted(infos) == ["images", "isekai-10", "isekai-pair"]
    for name, info in infos.items():
        files = sorted((export_dir / "data").glob(f"{name}-test-*.parquet"))
        assert info.features == Features.from_arrow_schema(pq.read_schema(files[0]))
        assert info.splits["test"].num_examples == sum(pq.read_metadata(f).num_rows for f in files)
        assert info.download_size == sum(f.stat().st_size for f in files)
    assert infos["images"].features["image"].__class__.__name__ == "Image"
    # rows of a local (non-snapshot) pipeline record no commit: the card says so rather than "main"
    assert "| revision | none recorded (a local pipeline folder, not a Hub snapshot) |" in card.text
    assert "`main`" not in card.text


REVISION_SCRIPT = r"""
import json, shutil, sys
from pathlib import Path
from isekai_gen.config import ModelRef
from isekai_gen.generation.pipeline import load_pipeline, resolved_revision
from isekai_gen.generation.tiny import ensure_tiny_pipeline
hub, commit = Path(sys.argv[1]), sys.argv[2]
snapshot = hub / "models--org--tiny-sd" / "snapshots" / commit
shutil.copytree(ensure_tiny_pipeline("tiny-sd"), snapshot)
(hub / "models--org--tiny-sd" / "refs").mkdir()
(hub / "models--org--tiny-sd" / "refs" / "main").write_text(commit)
loaded = load_pipeline(ModelRef(id="org/tiny-sd"), device="cpu")
tiny = str(ensure_tiny_pipeline("tiny-sd"))  # a save_pretrained folder: no commit
print(json.dumps({"hub": loaded.revision, "path": resolved_revision(loaded.pipe, str(snapshot), ModelRef(id="x", path=str(snapshot))),
                  "tiny": resolved_revision(object(), tiny, ModelRef(id="tiny-sd")),
                  "folder_as_id": resolved_revision(object(), tiny, ModelRef(id=tiny))}))
"""


def test_rows_record_the_resolved_commit_of_a_hub_snapshot(tmp_path, isekai_cache):
    """A real huggingface_hub cache layout (refs/main -> snapshots/<commit>/) loaded offline by
    diffusers' from_pretrained, as on a GPU machine with the weights cached."""
    import os

    commit = "0123456789abcdef0123456789abcdef01234567"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", REVISION_SCRIPT, str(tmp_path / "hub"), commit],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"hub": commit, "path": commit, "tiny": None,
                                                          "folder_as_id": None}

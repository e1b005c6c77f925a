"""Build folders on object storage (`--out s3://bucket/prefix`), against a test double of S3:
moto's server mode on loopback (conftest's ``s3``: a real HTTP S3 API; s3fs talks to it as to AWS).
`tests/test_engine_ray.py` builds into a bucket with `--engine ray` (actors PUT the images).

The byte-for-byte reference is a local build of the same config: every object in the bucket
must equal the local file of the same name, whatever machine or mirror wrote it.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.storage import mirror_path

from conftest import S3_BUCKET as BUCKET

pytest.importorskip("s3fs")

CONCEPTS = ["--preset", "tiny", "--no-progress", "--set", "concepts=[cactihog,hedgehog,cctovac,octopus]"]
# Every stage on 32 images (4 concepts x 8, in 4 batches): enough for 4-shot episodes.
SMALL_BUILD = [*CONCEPTS, "--images-per-concept", "8", "--batch-size", "8", "--set", "filter.min_per_concept=6",
               "--set", "episodes.max_shot=4", "--set", "episodes.queries_per_concept=1"]
SMALL_GENERATION = [*CONCEPTS, "--images-per-concept", "4", "--batch-size", "4"]  # 16 images in 4 batches
ISEKAI_GEN = str(Path(sys.executable).parent / "isekai-gen")
# Files that describe one machine, not the build: the lock, the mirror's own bookkeeping, journals
# (the bucket holds them as one object per committed line) and the LCL export's inode cache.
LOCAL_ONLY = (".isekai-gen.lock", "manifest.parts/part-00000-of-00001.jsonl", "cache/lcl-images.json")


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def bucket_digests(fs, url: str) -> dict[str, str]:
    root = url.removeprefix("s3://")
    fs.invalidate_cache()
    keys = fs.find(root)
    return {key[len(root) + 1:]: hashlib.sha256(data).hexdigest() for key, data in fs.cat(keys).items()}


def journal_bytes(fs, url: str) -> bytes:
    folder = f"{url.removeprefix('s3://')}/manifest.parts/part-00000-of-00001.jsonl.d"
    return b"".join(fs.cat_file(key) for key in sorted(fs.find(folder)))


def folder_digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, isekai_cache):
    out_dir = tmp_path_factory.mktemp("local") / "build"
    run("build", "--out", str(out_dir), *SMALL_BUILD)
    return out_dir


@pytest.fixture(scope="module")
def remote_build(s3, local_build):
    url = f"s3://{BUCKET}/build"
    result = run("build", "--out", url, *SMALL_BUILD)
    return url, result


def test_a_build_into_a_bucket_equals_the_local_build_byte_for_byte(s3, local_build, remote_build):
    url, result = remote_build
    assert f"results: {url}" in result.output and f"{url}/manifest.jsonl" in result.output
    remote = bucket_digests(s3, url)
    local = {name: digest for name, digest in folder_digests(local_build).items() if name not in LOCAL_ONLY}
    journal_lines = {name for name in remote if name.startswith("manifest.parts/")}
    assert {name: digest for name, digest in remote.items() if name not in journal_lines} == local
    # The journal: one object per committed batch (4 batches of 8), named by its byte offset,
    # that concatenate to exactly the local journal.
    assert len(journal_lines) == 4
    assert journal_bytes(s3, url) == (local_build / "manifest.parts/part-00000-of-00001.jsonl").read_bytes()


def test_a_new_machine_resumes_and_reads_every_stage_from_the_bucket(s3, local_build, remote_build):
    url, _ = remote_build
    before = bucket_digests(s3, url)
    shutil.rmtree(mirror_path(url))  # a driver on another machine: nothing local at all
    assert "generated 0, already done 32" in run("generate", "--out", url, "--no-progress").output
    # Later stages pull the state and (checked against their sha256) the images they read.
    run("export", "--out", url, "--no-progress")
    run("preview", url, "--no-progress")
    after = bucket_digests(s3, url)
    new = ("preview/", "cache/thumbs/")  # the contact sheets and their thumbnail cache
    assert {k: v for k, v in after.items() if not k.startswith(new)} == before
    assert {k for k in after if k.startswith(new)} == {k for k in folder_digests(mirror_path(url)) if k.startswith(new)}


def test_a_driver_killed_with_sigkill_resumes_from_the_lines_the_bucket_committed(s3, tmp_path):
    """`isekai-gen generate --out s3://...` SIGKILLed once the bucket holds a committed line, and its
    mirror lost: the rerun regenerates only the batches whose line the bucket lacks, and the bucket
    ends as a local run's folder."""
    url = f"s3://{BUCKET}/killed"
    lines = f"{url.removeprefix('s3://')}/manifest.parts"
    generation = [*CONCEPTS, "--images-per-concept", "4", "--batch-size", "2"]  # 16 images in 8 batches

    def committed() -> int:
        s3.invalidate_cache()
        return len(s3.find(lines))

    driver = subprocess.Popen([ISEKAI_GEN, "generate", "--out", url, *generation],  # the fixture's FSSPEC_S3_* env
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while committed() < 1 and driver.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    driver.kill()
    driver.wait()
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
    assert not s3.exists(f"{url.removeprefix('s3://')}/manifest.jsonl"), "killed too late to test anything"
    done = committed()
    shutil.rmtree(mirror_path(url))  # the rerun starts from the bucket alone
    output = run("generate", "--out", url, *generation).output
    assert f"generated {16 - 2 * done}, already done {2 * done}" in output
    local = tmp_path / "local"
    run("generate", "--out", str(local), *generation)
    remote = bucket_digests(s3, url)
    assert {k: v for k, v in remote.items() if k.startswith("images/")} == \
        {k: v for k, v in folder_digests(local).items() if k.startswith("images/")}
    assert remote["manifest.jsonl"] == folder_digests(local)["manifest.jsonl"]
    assert journal_bytes(s3, url) == (local / "manifest.parts/part-00000-of-00001.jsonl").read_bytes()


def test_storage_problems_are_one_line(s3, tmp_path):
    missing_bucket = CliRunner().invoke(main, ["generate", "--out", "s3://no-such-bucket/x", *SMALL_GENERATION])
    assert missing_bucket.exit_code == 1
    assert missing_bucket.stderr.strip() == "error: s3://no-such-bucket/x: bucket 'no-such-bucket' not found; create it first"
    no_backend = CliRunner().invoke(main, ["generate", "--out", "memoryless://bucket/x", *SMALL_GENERATION])
    assert no_backend.exit_code == 1 and no_backend.stderr.startswith("error: memoryless://bucket/x: ")
    assert len(no_backend.stderr.strip().splitlines()) == 1
    verify = CliRunner().invoke(main, ["generate", "--out", f"s3://{BUCKET}/build", "--verify"])
    assert verify.exit_code == 2 and "work on a local build folder" in verify.stderr


def test_a_journal_with_a_missing_line_is_refused(s3, tmp_path):
    from isekai_gen.storage import opened

    root = f"{BUCKET}/gap/manifest.parts/part-00000-of-00001.jsonl.d"
    s3.pipe_file(f"{root}/000000000000000.jsonl", b'{"rows":[]}\n')
    s3.pipe_file(f"{root}/000000000000100.jsonl", b'{"rows":[]}\n')
    with pytest.raises(UserError, match=r"committed lines missing before byte 100"):
        with opened(f"s3://{BUCKET}/gap"):
            pass


# Review of the sync itself: each test plays "another machine" with the ``s3`` fixture's own
# filesystem (a separate s3fs instance, so a separate listing cache) and calls ``storage`` directly.

def test_a_shard_sees_the_lines_another_machine_committed_after_its_pull(s3):
    """s3fs sizes an object from its cached listings before reading it: a listing of the other
    shard's journal made at the pull must not hide the lines committed since."""
    from isekai_gen.storage import opened, refresh_journals

    folder = f"{BUCKET}/shards/manifest.parts/part-00001-of-00002.jsonl.d"
    s3.pipe_file(f"{folder}/000000000000000.jsonl", b"a\n")
    with opened(f"s3://{BUCKET}/shards") as session:
        s3.pipe_file(f"{folder}/000000000000002.jsonl", b"b\n")
        refresh_journals(session.mirror)
        assert (session.mirror / "manifest.parts/part-00001-of-00002.jsonl").read_bytes() == b"a\nb\n"


def test_a_prefix_and_names_with_glob_characters_are_read_literally(s3):
    """fsspec's cat of a list glob-expands ``[...]``: s3://bucket/runs[1] would read runs1."""
    from isekai_gen.fileio import sha256_bytes
    from isekai_gen.storage import fetch_images, opened

    root = f"{BUCKET}/runs[1]"
    s3.pipe_file(f"{root}/run.json", b"{}\n")
    s3.pipe_file(f"{root}/filter/scores[a].jsonl", b"1\n")
    s3.pipe_file(f"{root}/images/c/[x].png", b"png")
    with opened(f"s3://{root}") as session:
        assert (session.mirror / "filter/scores[a].jsonl").read_bytes() == b"1\n"
        row = {"status": "ok", "image": "images/c/[x].png", "sha256": sha256_bytes(b"png"), "job_id": "x"}
        assert fetch_images(session.mirror, [row]) == 1
        assert (session.mirror / "images/c/[x].png").read_bytes() == b"png"


def test_files_a_failed_command_left_in_the_mirror_are_not_uploaded_by_the_next(s3):
    from isekai_gen.storage import opened

    url = f"s3://{BUCKET}/failed"
    s3.pipe_file(f"{BUCKET}/failed/run.json", b"{}\n")
    with pytest.raises(RuntimeError), opened(url) as session:
        (session.mirror / "filter").mkdir()
        (session.mirror / "filter/half.jsonl").write_text("half")
        raise RuntimeError("the command fails: nothing is pushed")
    with opened(url) as session:
        assert not (session.mirror / "filter/half.jsonl").exists()
    s3.invalidate_cache()
    assert s3.find(f"{BUCKET}/failed") == [f"{BUCKET}/failed/run.json"]


def test_folder_placeholders_of_a_console_are_no_build_files(s3):
    """The AWS console's "create folder" makes zero-byte ``name/`` objects."""
    from isekai_gen.storage import opened

    for key in ("placeholders/", "placeholders/filter/", "placeholders/manifest.parts/part-00000-of-00001.jsonl.d/"):
        s3.pipe_file(f"{BUCKET}/{key}", b"")
    s3.pipe_file(f"{BUCKET}/placeholders/filter/scores.jsonl", b"1\n")
    s3.pipe_file(f"{BUCKET}/placeholders/manifest.parts/part-00000-of-00001.jsonl.d/000000000000000.jsonl", b"a\n")
    with opened(f"s3://{BUCKET}/placeholders/") as session:
        files = sorted(p.relative_to(session.mirror).as_posix() for p in session.mirror.rglob("*")
                       if p.is_file() and not p.name.startswith(".isekai-gen"))
    assert files == ["filter/scores.jsonl", "manifest.parts/part-00000-of-00001.jsonl"]


def test_a_stray_object_in_a_journal_folder_is_one_line(s3):
    from isekai_gen.storage import opened

    s3.pipe_file(f"{BUCKET}/stray/manifest.parts/part-00000-of-00001.jsonl.d/notes.txt", b"x")
    with pytest.raises(UserError, match=r"^s3://isekai-test/stray/manifest.parts/part-00000-of-00001.jsonl.d/"
                                        r"notes.txt: not a journal line object"):
        with opened(f"s3://{BUCKET}/stray"):
            pass


def test_a_url_naming_no_bucket_is_refused_and_trailing_slashes_do_not_matter(s3):
    from isekai_gen.storage.remote import connect

    for url in ("s3://", "s3:", "s3:///"):
        with pytest.raises(UserError, match="names no bucket"):
            connect(url)
    assert mirror_path(f"s3://{BUCKET}/x/") == mirror_path(f"s3://{BUCKET}/x")

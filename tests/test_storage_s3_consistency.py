"""Consistent remote state (issue 25 item 6), against conftest's S3 test double (moto's server on
loopback): a push killed at any point never shows a card or index without the data it names.
"""

from __future__ import annotations

import pytest
from conftest import S3_BUCKET as BUCKET

pytest.importorskip("s3fs")

DATA = ["export/hf/data/images-test-00000-of-00001.parquet", "export/webdataset/test-000000.tar",
        "export/lcl/images/c/c-00000.png", "filter/report.json"]
# Each describing file, and the files a reader follows from it.
DESCRIBES = {
    "export/webdataset/index.json": ["export/webdataset/test-000000.tar"],
    "export/lcl/ISEKAI-10.json": ["export/lcl/images/c/c-00000.png"],
    "export/hf/README.md": ["export/hf/data/images-test-00000-of-00001.parquet"],
    "export/SHA256SUMS": [*DATA[:3], "export/webdataset/index.json", "export/lcl/ISEKAI-10.json", "export/hf/README.md"],
    "manifest.jsonl": [*DATA, "export/webdataset/index.json", "export/lcl/ISEKAI-10.json", "export/hf/README.md",
                       "export/SHA256SUMS"],
}


class Killed(BaseException):  # not an Exception: storage_errors must not turn it into an error line
    """The push stopped here (a kill of the driver, as far as the bucket can tell)."""


def bucket_files(s3, prefix: str) -> set[str]:
    s3.invalidate_cache()
    return {key[len(prefix) + 1:] for key in s3.find(prefix)}


@pytest.mark.parametrize("uploads_before_kill", range(len(DATA) + len(DESCRIBES)))
def test_a_push_killed_at_any_point_never_shows_a_card_without_its_data(s3, monkeypatch, uploads_before_kill):
    from isekai_gen.storage import opened

    prefix = f"{BUCKET}/order-{uploads_before_kill}"
    with pytest.raises(Killed), opened(f"s3://{prefix}") as session:
        # Describing files first on disk too: the upload order must not come from write order.
        for rel in [*DESCRIBES, *DATA]:
            (session.mirror / rel).parent.mkdir(parents=True, exist_ok=True)
            (session.mirror / rel).write_text(rel)
        real_put, done = session.remote.fs.put_file, []

        def put_then_die(local, key):
            if len(done) == uploads_before_kill:
                raise Killed(key)
            real_put(local, key)
            done.append(key)

        monkeypatch.setattr(session.remote.fs, "put_file", put_then_die)
    present = bucket_files(s3, prefix)
    assert len(present) == uploads_before_kill
    for describing, named in DESCRIBES.items():
        if describing in present:
            assert set(named) <= present, f"{describing} in the bucket without {set(named) - present}"


def test_a_removed_card_goes_before_its_data_and_removed_data_after_the_new_card(s3, monkeypatch):
    from isekai_gen.storage import opened

    prefix, url = f"{BUCKET}/removal", f"s3://{BUCKET}/removal"
    with opened(url) as session:
        for rel in ("export/hf/README.md", "export/hf/data/old.parquet"):
            (session.mirror / rel).parent.mkdir(parents=True, exist_ok=True)
            (session.mirror / rel).write_text(rel)
    calls = []
    with opened(url) as session:
        (session.mirror / "export/hf/data/old.parquet").unlink()
        (session.mirror / "export/hf/data/new.parquet").write_text("new")
        (session.mirror / "export/hf/README.md").unlink()
        real_put, real_rm = session.remote.fs.put_file, session.remote.fs.rm_file
        monkeypatch.setattr(session.remote.fs, "put_file",
                            lambda local, key: (calls.append(("put", key.rpartition("/")[2])), real_put(local, key)))
        monkeypatch.setattr(session.remote.fs, "rm_file",
                            lambda key: (calls.append(("rm", key.rpartition("/")[2])), real_rm(key)))
    assert calls == [("rm", "README.md"), ("put", "new.parquet"), ("rm", "old.parquet")]
    assert bucket_files(s3, prefix) == {"export/hf/data/new.parquet"}

"""Bounded memory: inputs are streamed and judged in chunks; files too large for their kind are refused unread."""

import json
import pickle

import pytest

from isekai_gen.errors import UserError
from isekai_gen.scoring import outcomes, score
from isekai_gen.scoring.textio import json_lines
from isekai_gen.scoring.truth import MAX_TRUTH_BYTES
from isekai_gen.scoring.unpickle import MAX_PICKLE_BYTES

CLASSES = ("forest", "river", "beach")


def _truth(path, n):
    rows = ["," + ",".join(CLASSES)] + [f"{k:04d}.jpg," + ",".join("1.0" if c == k % 3 else "0.0" for c in range(3))
                                        for k in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _interleaved_curve(path, n):
    """Three runs (shots 0, 4, 16) row by row, the replies right more often with more shots."""
    rows = [{"id": f"{k:04d}.jpg", "shots": shots, "model": "m",
             "prediction": f"it is {CLASSES[k % 3] if k % 17 >= shots // 2 + 3 else CLASSES[(k + 1) % 3]}"}
            for k in range(n) for shots in (16, 0, 4)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _sparse(path, size):
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def test_tiny_chunks_give_the_report_of_one_chunk(tmp_path, monkeypatch):
    """Runs interleaved row by row, split across many chunks, are scored exactly as in one chunk."""
    truth, predictions = _truth(tmp_path / "test.csv", 200), _interleaved_curve(tmp_path / "p.jsonl", 200)
    whole = score(truth, [predictions])
    monkeypatch.setattr(outcomes, "CHUNK_ROWS", 7)
    chunked = score(truth, [predictions])
    assert chunked == whole
    assert [run["shots"] for run in whole["runs"]] == [0, 4, 16]
    assert len({run["value"] for run in whole["runs"]}) == 3


def test_a_duplicate_in_a_later_chunk_names_both_lines(tmp_path, monkeypatch):
    truth = _truth(tmp_path / "test.csv", 30)
    rows = [{"id": f"{k:04d}.jpg", "prediction": "forest"} for k in range(30)] + [{"id": "0003.jpg", "prediction": "x"}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr(outcomes, "CHUNK_ROWS", 8)
    with pytest.raises(UserError, match=r"p\.jsonl:31: duplicate id '0003\.jpg' \(also at .*p\.jsonl:4\)"):
        score(truth, [path])


def test_a_run_per_row_is_refused(tmp_path, monkeypatch):
    """A garbled shots column would make one run (and its per-item arrays) per row."""
    truth = _truth(tmp_path / "test.csv", 30)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"{k:04d}.jpg", "prediction": "forest", "shots": k}) + "\n"
                            for k in range(30)))
    monkeypatch.setattr(outcomes, "MIN_RUNS", 1)
    monkeypatch.setattr(outcomes, "RUN_ARRAYS_BUDGET", 20 * 30 * (3 + 11))
    with pytest.raises(UserError, match=r"p\.jsonl: more than 20 runs \(distinct model, shots, batch_size\) in one "
                                        r"file for a truth of 30 items"):
        score(truth, [path])


def test_files_too_large_for_their_kind_are_refused_unread(tmp_path):
    truth = _truth(tmp_path / "test.csv", 3)
    big_pickle = _sparse(tmp_path / "Set_0shot_M_1.pkl", MAX_PICKLE_BYTES + 2 ** 20)
    with pytest.raises(UserError, match=r"Set_0shot_M_1\.pkl: 257 MiB is too large for a ManyICL raw-response "
                                        r"pickle \(at most 256 MiB\); not read"):
        score(truth, [big_pickle])
    (tmp_path / "big").mkdir()
    big_truth = _sparse(tmp_path / "big" / "test.csv", MAX_TRUTH_BYTES + 2 ** 20)
    small = tmp_path / "p.pkl"
    small.write_bytes(pickle.dumps({"['0000.jpg']": "Answer Choice 1: forest"}))
    with pytest.raises(UserError, match=r"big/test\.csv: 257 MiB is too large for a truth file"):
        score(big_truth, [small])


def test_line_separators_inside_json_strings_do_not_split_lines(tmp_path):
    """Lines end at \\n only: U+2028 and U+0085 are legal raw inside a JSON string (json.dumps(ensure_ascii=False))."""
    path = tmp_path / "p.jsonl"
    rows = [{"id": "a", "prediction": "forest\u2028river\x85beach"}, {"id": "b", "prediction": "x"}]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\r\n" for row in rows), encoding="utf-8")
    assert [(line, row["id"]) for line, row in json_lines(path)] == [(1, "a"), (2, "b")]
    assert next(iter(json_lines(path)))[1] == rows[0]


@pytest.mark.parametrize("head_rows", [0, 1, 3])
def test_evaluate_journal_cuts_a_torn_tail_read_from_the_end(tmp_path, monkeypatch, head_rows):
    """The torn last line is found block by block from the end (blocks far shorter than the line here)."""
    from isekai_gen.evaluate import journal as journal_module
    monkeypatch.setattr(journal_module, "TAIL_BLOCK", 5)
    path = tmp_path / "journal.jsonl"
    row = {"key": "a" * 64, "cell": "c", "attempt": 0, "status": "answered", "retries": 0, "time": 1.0, "text": "x"}
    whole = "".join(json.dumps({**row, "attempt": k}) + "\n" for k in range(head_rows))
    path.write_text(whole + json.dumps(row)[:50])
    journal_module.Journal(path).close()
    assert path.read_text() == whole


def test_a_line_past_the_line_limit_is_refused_when_reached(tmp_path, monkeypatch):
    from isekai_gen.scoring import textio
    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 2 ** 20)
    truth = _truth(tmp_path / "test.csv", 3)
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "0000.jpg", "prediction": "forest"}) + "\n"
                    + json.dumps({"id": "0001.jpg", "prediction": "river " * 200_000}))   # no line end
    with pytest.raises(UserError, match=r"p\.jsonl:2: line longer than 1 MiB; not a line of a truth or prediction"):
        score(truth, [path])

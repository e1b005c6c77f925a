"""Per-cell outputs from the journal: `predictions.jsonl`, the ManyICL pickle, cost and latency.

- `cells/<cell>/predictions.jsonl`: the scorer's rows (`schemas/predictions_row.schema.json`) with
  `shots` (demonstrations in the prompt), `shots_per_class`, `batch_size`, `model`, plus the
  request key and status. ManyICL rows hold the text after `Answer Choice i:` (null when the
  reply has no such line, as eval.py's "answer not found") and the stated confidence; LCL rows
  hold the whole reply (the ISEKAI metric reads the raw text).
- `cells/<cell>/<dataset>_<N>shot_<model>_<B>.pkl`: the pickle of ManyICL's `prompt.py` `work()`
  (`EXP_NAME`, written for run.py's runs; name and content): `str(list_of_ids) -> reply`
  (`ERROR!!!! ...` for a permanent error, as work() stores a failed call)
  and `token_usage = (completion, prompt, total)`; the released eval.py reads it unchanged.
- `cells/<cell>/predictions.fallback.jsonl` (opt-in `extractor: labels`): the same rows, where a
  query the strict parse found no answer for gets the one class name its reply segment names
  (`scoring.matching.LabelMatcher`: whole words, exactly one label, else none) — for a one-query
  request the whole reply, for a batch the reply's lines that name the query's number. Scored
  separately (report `fallback_value`), never mixed into the strict score.
- Cost and latency per cell (ManyICL Table 3): per-batch latency = mean latency of the requests'
  final calls; per-example latency = their sum / the examples they answered (batch-API results
  have no call latency and are left out); per-example cost = all calls' cost (re-asks included) /
  examples answered.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from ..fileio import atomic_write_bytes, write_jsonl
from ..scoring.manyicl import extract_answer
from ..scoring.matching import LabelMatcher
from .journal import ABSTAINED, ANSWERED, GAVE_UP, PERMANENT, request_state

CONFIDENCE = "Confidence Score {n}:"
FALLBACK_NAME = "predictions.fallback.jsonl"


def fallback_answer(text: str, number: int, count: int, matcher: LabelMatcher) -> str | None:
    """The one class named where the strict parse found nothing (see the module docstring)."""
    if count == 1:
        segment = text
    else:
        mention = re.compile(rf"(?<![0-9]){number}(?![0-9])")
        segment = "\n".join(line for line in text.split("\n") if mention.search(line))
    found = matcher.find(segment)
    return matcher.labels[found[0]] if len(found) == 1 else None


def confidence(text: str, number: int) -> float | None:
    prefix = CONFIDENCE.format(n=number)
    for line in text.split("\n"):
        if line.startswith(prefix):
            match = re.search(r"[-+]?\d*\.?\d+", line[len(prefix):])
            return float(match.group()) if match else None
    return None


def final_row(rows: list[dict]) -> dict | None:
    kept = [r for r in rows if r["status"] != GAVE_UP]
    return kept[-1] if kept else None


def pickle_name(dataset: str, n_demos: int, model: str, batch_size: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", model)
    return f"{dataset}_{n_demos}shot_{safe}_{batch_size}.pkl"


def cell_outputs(cell: dict, requests, journal_rows: dict, *, kind: str, model_spec: str, max_reasks: int,
                 dataset: str, extractor: str = "strict", classes=None) -> dict:
    """Write one cell's files; return its accounting row."""
    folder = Path(cell["dir"])
    predictions, raw, fallback = [], {}, []
    matcher = LabelMatcher(classes) if extractor == "labels" and kind == "manyicl" else None
    stats = {"requests": len(requests), "done": 0, "pending": 0, "failed": 0, "abstained": 0, "calls": 0,
             "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
             "cost_usd": 0.0, "examples": 0, "unparsed_queries": 0, "fallback_recovered": 0,
             "latency_sum_s": 0.0, "replied": 0, "latency_examples": 0}
    base = {"shots": cell["n_demos"], "shots_per_class": cell["shots"], "batch_size": cell["batch_size"],
            "model": model_spec}
    for request in requests:
        rows = journal_rows.get(request.key, [])
        state = request_state(rows, max_reasks)
        for row in rows:
            if row["status"] in (ANSWERED, ABSTAINED):
                stats["calls"] += 1
                stats["input_tokens"] += row["input_tokens"]
                stats["output_tokens"] += row["output_tokens"]
                stats["cache_read_tokens"] += row.get("cache_read_tokens", 0)
                stats["cache_write_tokens"] += row.get("cache_write_tokens", 0)
                stats["cost_usd"] += row.get("cost_usd") or 0.0
        last = final_row(rows)
        if last is None:
            stats["pending"] += 1
            continue
        if last["status"] == PERMANENT:
            stats["failed"] += 1
            raw[str(list(request.ids))] = f"ERROR!!!! {last.get('error', '')}"
            predictions += [{"id": i, "prediction": None, **base, "status": PERMANENT, "request": request.key}
                            for i in request.ids]
            continue
        if state == "reask":   # the re-ask did not happen (stopped): the abstained reply still counts
            stats["pending"] += 1
        else:
            stats["done"] += 1
        stats["abstained"] += last["status"] == ABSTAINED
        stats["examples"] += len(request.ids)
        if not last.get("batch"):   # a batch job's wait is no call latency
            stats["latency_sum_s"] += last["latency_s"]
            stats["replied"] += 1
            stats["latency_examples"] += len(request.ids)
        text = last["text"]
        raw[str(list(request.ids))] = text
        for number, item_id in enumerate(request.ids, start=1):
            if kind == "manyicl":
                row = {"id": item_id, "prediction": extract_answer(text, number), "confidence": confidence(text, number)}
                stats["unparsed_queries"] += row["prediction"] is None
            else:
                row = {"id": item_id, "prediction": text}
            predictions.append({**row, **base, "status": last["status"], "request": request.key})
            if matcher is not None and row["prediction"] is None:
                guess = fallback_answer(text, number, len(request.ids), matcher)
                stats["fallback_recovered"] += guess is not None
                row = {**row, "prediction": guess}
            if matcher is not None:
                fallback.append({**row, **base, "status": last["status"], "request": request.key,
                                 "extractor": "labels"})
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "predictions.jsonl", predictions)
    if matcher is not None:
        write_jsonl(folder / FALLBACK_NAME, fallback)
    if kind == "manyicl":
        raw["token_usage"] = (stats["output_tokens"], stats["input_tokens"],
                              stats["input_tokens"] + stats["output_tokens"])
        name = pickle_name(dataset, cell["n_demos"], model_spec.partition(":")[2], cell["batch_size"])
        atomic_write_bytes(folder / name, pickle.dumps(raw, protocol=4))
    latency_sum, replied, timed = stats.pop("latency_sum_s"), stats.pop("replied"), stats.pop("latency_examples")
    examples = stats["examples"]
    stats["per_batch_latency_s"] = latency_sum / replied if replied else None
    stats["per_example_latency_s"] = latency_sum / timed if timed else None
    stats["per_example_cost_usd"] = stats["cost_usd"] / examples if examples else None
    return {"cell": cell["name"], "shots": cell["shots"], "n_demos": cell["n_demos"],
            "batch_size": cell["batch_size"], **stats, "predictions": str(folder / "predictions.jsonl"),
            "fallback_predictions": str(folder / FALLBACK_NAME) if matcher is not None else None}

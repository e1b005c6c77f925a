"""`isekai-gen catalog probe`: does a model already know a catalog's concepts?

- Text probe: for every concept, ask what its label is, without images. An invented label the
  model describes in terms of the concept's own parts (the content words of its plain name, e.g.
  "cactus" and "hedgehog" for cactihog) or of its partner — at least two of those words, or all of
  them when there are fewer — is flagged ``known``. Real concepts are asked too, as the control: one
  described at all (not ``UNKNOWN``) is known, and a working probe finds them so.
- Image probe (a build folder): each kept image (up to ``images_per_concept`` per concept) is
  shown alone with every label of the catalog, in a seeded order, and the model is asked which
  one it shows. Per concept, the number named correctly is tested against chance (1 / labels) with
  a one-sided exact binomial test; an invented concept named above chance at ``alpha`` is
  flagged ``known``. A reply naming no label, or several, is asked again (the runner's re-asks)
  and counts as wrong when it stays so.

Run folder (``--out``): run.json, plan.jsonl, journal.jsonl (see llm.py), report.json, report.md.
Probing a build folder also records a summary in ``OUT/probes/<model>.json``, which the build's
dataset card lists (`export.card.probe_card_text`).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from pathlib import Path

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from ..fileio import atomic_write_text, read_jsonl, write_json
from ..lock import build_lock
from ..scoring.matching import LabelMatcher
from .llm import LLMSettings, make_provider, run_llm, text_request

UNKNOWN = "UNKNOWN"
STOPWORDS = frozenset("a an the of and with on in to its it is by for from at as made like shaped".split())


def text_question(label: str) -> str:
    return (f'What is a "{label}"? If you know it, describe in one or two sentences what it looks like. '
            f"If you do not know it, answer exactly: {UNKNOWN}")


def image_question(labels: list[str]) -> str:
    return ("Which one of these labels does the image show? Labels: " + ", ".join(labels)
            + ". Answer with the label only.")


def _parts(catalog: Catalog, concept) -> list[str]:
    words = re.findall(r"[a-z]+", f"{concept.name} {catalog.partner(concept.id).label}".lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and len(w) > 2 and w != concept.label))


def _mentions(reply: str, part: str) -> bool:
    """A word of the reply shares the part's first five letters (cactus / cacti, hedgehogs)."""
    stem = part[:5]
    return any(word.startswith(stem) or part.startswith(word) and len(word) >= 4
               for word in re.findall(r"[a-z]+", reply.lower()))


def text_verdict(catalog: Catalog, concept, reply: str | None) -> dict:
    if reply is None:
        return {"verdict": "no_reply", "matched": []}
    if reply.strip().upper().startswith(UNKNOWN):
        return {"verdict": "unknown", "matched": []}
    if concept.world == "real":   # the control: a real thing described at all is known
        return {"verdict": "known", "matched": []}
    parts = _parts(catalog, concept)
    matched = [p for p in parts if _mentions(reply, p)]
    known = len(matched) >= min(2, len(parts))
    return {"verdict": "known" if known else "described_otherwise", "matched": matched}


def binomial_p_greater(successes: int, trials: int, chance: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, chance): the exact one-sided test (scipy's
    ``binomtest(..., alternative="greater")``), in three lines rather than a scipy dependency."""
    tail = sum(math.comb(trials, k) * chance ** k * (1 - chance) ** (trials - k) for k in range(successes, trials + 1))
    return min(1.0, tail)


def load_target(target: str) -> tuple[Catalog, Path | None]:
    """A catalog file / shipped name, or a build folder (its catalog and images)."""
    path = Path(target)
    if path.is_dir():
        if not (path / "run.json").exists():
            raise UserError(f"{path}: a folder but not a build folder (no run.json)")
        from ..catalog import build_catalog
        from ..run_info import config_from_run

        return build_catalog(config_from_run(path))[0], path
    return load_catalog(target), None


def _images(build: Path, catalog: Catalog, per_concept: int) -> list[dict]:
    manifest = build / "manifest.jsonl"
    if not manifest.exists():
        raise UserError(f"{manifest}: not found; generate the images before an image probe")
    rows = [r for r in read_jsonl(manifest) if r.get("status") == "ok" and r.get("kept", True)]
    out = []
    for concept in catalog.concepts:
        out += [r for r in rows if r["concept_id"] == concept.id][:per_concept]
    return out


def _order(labels: list[str], seed: int, ident: str) -> list[str]:
    rng = random.Random(int(hashlib.sha256(f"{seed}/{ident}".encode()).hexdigest()[:16], 16))
    shuffled = list(labels)
    rng.shuffle(shuffled)
    return shuffled


def probe(target: str, settings: LLMSettings, out: str | Path, *, images_per_concept: int = 20,
          alpha: float = 0.01, seed: int = 0, text: bool = True, dry_run: bool = False) -> dict:
    catalog, build = load_target(target)
    out = Path(out)
    provider = make_provider(settings)
    labels = [c.label for c in catalog.concepts]
    matcher = LabelMatcher(labels)
    requests, asked = [], {}
    if text:
        for concept in catalog.concepts:
            request = text_request(settings, cell="text", ident=concept.id, system=None,
                                   text=text_question(concept.label), max_tokens=200)
            requests.append(request)
            asked[request.key] = ("text", concept, None)
    if build is not None:
        from ..evaluate.images import ImageCache

        images = ImageCache(provider.limits)
        for row in _images(build, catalog, images_per_concept):
            encoded = images.get(build / row["image"])
            request = text_request(settings, cell="image", ident=row["job_id"], system=None,
                                   text=image_question(_order(labels, seed, row["job_id"])), images=(encoded,),
                                   max_tokens=30)
            requests.append(request)
            asked[request.key] = ("image", catalog.concept(row["concept_id"]), row["job_id"])
    if not requests:
        raise UserError(f"{target}: nothing to probe (--no-text and no build folder)")

    def unanswered(request, reply: str) -> bool:
        return request.cell == "image" and len(matcher.find(reply)) != 1

    replies, summary = run_llm(out, settings, requests, unanswered, purpose="catalog-probe", dry_run=dry_run,
                               provider=provider)
    if dry_run:
        return {"dry_run": True, **summary}
    report = _report(catalog, asked, replies, matcher, labels, alpha, settings, summary, target)
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", report_markdown(report))
    if build is not None:
        with build_lock(build, "catalog probe", wait=True):
            write_json(build / "probes" / f"{_slug(settings.spec)}.json",
                       {k: report[k] for k in ("model", "catalog", "kinds", "known_share", "known", "alpha")})
    return report


def _slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", spec.lower()).strip("-")


def _report(catalog, asked, replies, matcher, labels, alpha, settings, summary, target) -> dict:
    per = {c.id: {"id": c.id, "label": c.label, "world": c.world, "text": None, "image": None}
           for c in catalog.concepts}
    tallies: dict[str, list[int]] = {}
    for key, (kind, concept, _job) in asked.items():
        reply = replies.get(key)
        if kind == "text":
            per[concept.id]["text"] = {**text_verdict(catalog, concept, reply), "reply": reply}
            continue
        found = matcher.find(reply or "")
        right = len(found) == 1 and labels[found[0]] == concept.label
        tally = tallies.setdefault(concept.id, [0, 0])
        tally[0] += int(right)
        tally[1] += 1
    chance = 1 / len(labels)
    for cid, (right, total) in tallies.items():
        p = binomial_p_greater(right, total, chance)
        per[cid]["image"] = {"correct": right, "images": total, "accuracy": right / total, "chance": chance,
                             "p_value": p, "verdict": "known" if p < alpha else "not_known"}
    for entry in per.values():
        verdicts = [(entry[k] or {}).get("verdict") for k in ("text", "image")]
        entry["known"] = "known" in verdicts
    isekai = [e for e in per.values() if e["world"] == "isekai"]
    real = [e for e in per.values() if e["world"] == "real"]
    kinds = [k for k in ("text", "image") if any(e[k] for e in per.values())]
    return {
        "model": settings.spec, "catalog": catalog.name, "target": Path(target).name, "kinds": kinds, "alpha": alpha,
        "known_share": sum(e["known"] for e in isekai) / len(isekai) if isekai else 0.0,
        "known": [e["label"] for e in isekai if e["known"]],
        "real_known_share": sum(e["known"] for e in real) / len(real) if real else None,
        "concepts": list(per.values()),
        "cost": {k: summary[k] for k in ("requests", "spent_usd", "price")} | {"outcome": summary["outcome"]},
    }


def report_markdown(report: dict) -> str:
    lines = [f"# Probe of {report['catalog']} with {report['model']}", "",
             f"Invented concepts the model knows: {len(report['known'])} "
             f"({report['known_share']:.0%}){': ' + ', '.join(report['known']) if report['known'] else ''}.",
             f"Real concepts known (control): {report['real_known_share']:.0%}." if report["real_known_share"]
             is not None else "", "",
             "| label | world | text probe | image accuracy (chance) | p | known |", "|---|---|---|---|---|---|"]
    for e in report["concepts"]:
        image = e["image"]
        lines.append(f"| {e['label']} | {e['world']} | {(e['text'] or {}).get('verdict', '-')} | "
                     + (f"{image['accuracy']:.2f} ({image['chance']:.2f}) | {image['p_value']:.3g}" if image else "- | -")
                     + f" | {'yes' if e['known'] else 'no'} |")
    cost = report["cost"]
    lines += ["", f"{cost['requests']} requests, ${cost['spent_usd']:.4f} spent ({cost['price'] or 'no price known'})."]
    return "\n".join(lines) + "\n"


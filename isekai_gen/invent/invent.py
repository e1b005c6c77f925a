"""`invent_catalog`: a fresh catalog of invented concepts and their real look-alikes.

1. Draft: every (recipe, partner, modifier) of the pool whose kinds fit the recipe (partner and
   modifier always of different kinds) in a seeded order; a draft is taken when its partner is
   free (no two groups share a partner), its modifier is free, its partner's label neither holds
   nor sits inside a taken label at a word boundary, and a coinage passes every name rule
   (`names.py`). Every refusal is counted by reason.
2. Write: the texts come from templates over the traits (`recipes.py`) or, with a writer, from a
   language model whose replies are checked (`writer.py`); then spare drafts replace refused ones.
3. Check: the catalog is validated exactly as `build` loads it (schema and catalog rules).
4. Familiarity: nearest pool categories by CLIP text similarity (`familiarity.py`).

The catalog YAML and the report (``FILE.report.json``) depend only on the seed, the pool, the
excluded catalogs, the writer's journal and the familiarity model: same inputs, same bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..catalog import _label_pattern, _scorer_form, load_catalog, parse_catalog, prompt_token_count, MAX_PROMPT_TOKENS
from ..errors import UserError
from ..fileio import atomic_write_text, dumps_canonical, sha256_file
from ..resources import CATALOG_DIR
from ..schema import validate
from .names import NameRules, blends
from .pool import Attribute, Category, Pool, load_pool
from .recipes import RECIPES, Recipe, defining_features, template_texts

SPARE_FOR_WRITER = 0.5   # drafts beyond --groups when a writer may refuse some


@dataclass(frozen=True)
class Draft:
    recipe: Recipe
    partner: Category
    modifier: Category | Attribute
    label: str

    @property
    def subject(self) -> str:
        return self.recipe.subject(self.partner, self.modifier)

    @property
    def features(self) -> tuple[str, ...]:
        return defining_features(self.partner, self.modifier)

    @property
    def group(self) -> str:
        return f"{self.modifier.id}-{self.partner.id}"


@dataclass
class Drafting:
    rules: NameRules
    rejected: Counter = field(default_factory=Counter)
    drafts: list[Draft] = field(default_factory=list)


def reserved_labels(exclude: list[str]) -> list[str]:
    """Labels and plain names of every shipped catalog and every ``--exclude`` catalog."""
    refs = [str(p) for p in sorted(CATALOG_DIR.glob("*.yaml"))] + list(exclude)
    out = []
    for ref in refs:
        catalog = load_catalog(ref)
        out += [text for c in catalog.concepts if c.world == "isekai" for text in (c.label, c.name, c.id)]
    return out


def _combinations(pool: Pool, rng: random.Random) -> list[tuple[Recipe, Category, Category | Attribute]]:
    combos = []
    for recipe in RECIPES:
        modifiers = pool.attributes if recipe.modifier_kinds == ("attribute",) else pool.of_kinds(recipe.modifier_kinds)
        for partner in pool.of_kinds(recipe.partner_kinds):
            combos += [(recipe, partner, m) for m in modifiers if m.kind != partner.kind]
    rng.shuffle(combos)
    return combos


def _overlaps(label: str, taken: list[str]) -> bool:
    form = _scorer_form(label)
    return any(_label_pattern(form).search(_scorer_form(o)) or _label_pattern(_scorer_form(o)).search(form)
               for o in taken)


def draft_groups(pool: Pool, count: int, seed: int, reserved: list[str], minimum: int | None = None) -> Drafting:
    """Up to ``count`` drafts in seeded order; fewer than ``minimum`` (default ``count``) is an error."""
    state = Drafting(NameRules(reserved))
    used_partners, used_modifiers, labels = set(), set(), []
    for recipe, partner, modifier in _combinations(pool, random.Random(seed)):
        if len(state.drafts) == count:
            break
        if partner.id in used_partners:
            state.rejected["partner_taken"] += 1
            continue
        if modifier.id in used_modifiers or modifier.id in used_partners or partner.id in used_modifiers:
            state.rejected["modifier_taken"] += 1
            continue
        if _overlaps(partner.name, labels):
            state.rejected["label_inside_label"] += 1
            continue
        label = state.rules.accept([b for b in blends(modifier.name, partner.name) if not _overlaps(b, labels)])
        if label is None:
            state.rejected["no_valid_name"] += 1
            continue
        state.drafts.append(Draft(recipe, partner, modifier, label))
        used_partners.add(partner.id)
        used_modifiers.add(modifier.id)
        labels += [label, partner.name]
    if len(state.drafts) < (count if minimum is None else minimum):
        raise UserError(f"{pool.source}: the pool yields only {len(state.drafts)} groups under the rules, "
                        f"{count if minimum is None else minimum} asked; use a larger --pool or fewer --groups")
    return state


def _too_long(texts: dict) -> bool:
    return any(prompt_token_count(p) > MAX_PROMPT_TOKENS
               for part in texts.values() for p in [*part["prompts"], part["negative_prompt"]])


def _concepts(draft: Draft, texts: dict) -> list[dict]:
    base = {"group": draft.group}
    isekai = {"id": draft.label, **base, "world": "isekai", "label": draft.label,
              "name": draft.recipe.plain_name(draft.partner, draft.modifier), **texts["isekai"]}
    real = {"id": draft.partner.id, **base, "world": "real", "label": draft.partner.name,
            "name": draft.partner.name, **texts["real"]}
    return [isekai, real]


def dump_catalog(data: dict) -> str:
    header = ("# Invented by `isekai-gen catalog invent` (see the report beside this file for how).\n"
              "# Schema: schemas/concept_catalog.schema.json; check edits with `isekai-gen catalog validate FILE`.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100_000)


def invent_catalog(out: str | Path, *, groups: int, seed: int, pool_path=None, exclude: list[str] = (),
                   writer=None, writer_dir=None, familiarity_preset: str | None = "default",
                   dry_run: bool = False) -> dict:
    """Write the catalog ``out`` and ``out.report.json``; return the report (``dry_run``: the writer's
    cost estimate only, nothing written)."""
    out = Path(out)
    if groups < 1:
        raise UserError(f"--groups {groups}: at least 1")
    pool = load_pool(pool_path)
    exclude = list(exclude)
    want = groups + (max(2, int(groups * SPARE_FOR_WRITER)) if writer else 0)
    drafting = draft_groups(pool, want, seed, reserved_labels(exclude), minimum=groups)
    rejected = Counter(drafting.rules.rejected) + drafting.rejected
    written, writer_summary = {}, None
    if writer is not None:
        written, writer_summary = _write_with(writer, drafting.drafts, writer_dir or Path(f"{out}.writer"), dry_run)
        if dry_run:
            return {"dry_run": True, "writer": writer_summary, "drafts": len(drafting.drafts)}
    chosen, concepts = [], []
    for draft in drafting.drafts:
        if len(chosen) == groups:
            break
        texts = written.get(draft.label) if writer is not None else template_texts(
            draft.recipe, draft.partner, draft.modifier, draft.label)
        if texts is None:
            rejected["writer_refused"] += 1
            continue
        if _too_long(texts):
            rejected["prompt_too_long"] += 1
            continue
        chosen.append(draft)
        concepts += _concepts(draft, texts)
    if len(chosen) < groups:
        raise UserError(f"{out}: only {len(chosen)} of {groups} groups passed the writer's checks "
                        f"({dict(sorted(rejected.items()))}); run again (the journal keeps the good replies) "
                        "or ask for fewer --groups")
    data = {"name": out.stem.split(".")[0] or "invented",
            "description": (f"{groups} invented ISEKAI-world concepts, each paired with its real-world look-alike, "
                            f"drawn by isekai-gen catalog invent (seed {seed}) from the pool {pool.name}."),
            "concepts": concepts}
    text = dump_catalog(data)
    parse_catalog(yaml.safe_load(text), str(out))   # the exact checks `build --catalog` applies
    report = _report(out, seed, pool, exclude, chosen, rejected, concepts, writer_summary, familiarity_preset,
                     drafting)
    validate(report, "invent_report", f"{out}.report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    atomic_write_text(Path(f"{out}.report.json"), dumps_canonical(report) + "\n")
    return report


def _write_with(writer, drafts, run_dir, dry_run):
    from .writer import write_texts

    return write_texts(drafts, writer, Path(run_dir), dry_run=dry_run)


def _collapse_risk(nearest: list[dict] | None, draft: Draft) -> bool | None:
    """The nearest pool category is the concept's own partner or modifier: it may render as just that."""
    return None if not nearest else nearest[0]["category"] in (draft.partner.id, draft.modifier.id)


def _report(out, seed, pool, exclude, chosen, rejected, concepts, writer_summary, familiarity_preset, drafting):
    familiarity = {"status": "skipped", "reason": "--no-familiarity"}
    if familiarity_preset is not None:
        from .familiarity import nearest_categories

        isekai = [c for c in concepts if c["world"] == "isekai"]
        try:
            familiarity = {"status": "done", "preset": familiarity_preset,
                           **nearest_categories(isekai, pool, familiarity_preset)}
        except UserError as exc:   # weights not cached: say so in the report instead of a number
            familiarity = {"status": "unavailable", "preset": familiarity_preset, "reason": str(exc)}
    nearest = familiarity.get("nearest", {})
    writer = None
    if writer_summary is not None:
        # what the journal holds, not this process's timings: a resumed run writes the same bytes
        writer = {k: writer_summary[k] for k in ("model", "requests", "spent_usd", "price", "refused")}
    return {
        "catalog": out.name, "seed": seed, "groups": len(chosen),
        "pool": {"name": pool.name, "file": Path(pool.source).name, "sha256": sha256_file(pool.source),
                 "source": pool.origin, "license": pool.license},
        "exclude": [Path(e).name for e in exclude],
        "rejected": dict(sorted(rejected.items())),
        "recipes": dict(sorted(Counter(d.recipe.id for d in chosen).items())),
        "concepts": [{"id": d.label, "group": d.group, "recipe": d.recipe.id, "partner": d.partner.id,
                      "modifier": d.modifier.id, "features": list(d.features),
                      "nearest": nearest.get(d.label, []), "collapse_risk": _collapse_risk(nearest.get(d.label), d)}
                     for d in chosen],
        "familiarity": {k: v for k, v in familiarity.items() if k != "nearest"},
        "writer": writer,
    }


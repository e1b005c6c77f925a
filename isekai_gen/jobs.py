"""Expand (catalog, images per concept, seed) into a deterministic list of generation jobs.

A job's identity and seed depend only on (global seed, concept, prompt variant, index, attempt);
never on batch size, device or sharding, so any image can be regenerated from its manifest row.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from .catalog import Catalog
from .errors import UserError

SEED_BITS = 63  # torch.Generator.manual_seed accepts any non-negative int64


@dataclass(frozen=True)
class Job:
    job_id: str
    concept_id: str
    index: int
    prompt_variant: int
    round: int  # 0 for the planned images; k for the k-th top-up round of the filter stage

    def seed(self, global_seed: int, attempt: int = 0) -> int:
        return derive_seed(global_seed, self.concept_id, self.prompt_variant, self.index, attempt)


def derive_seed(global_seed: int, concept_id: str, prompt_variant: int, index: int, attempt: int = 0) -> int:
    key = f"isekai-gen/v1/{global_seed}/{concept_id}/{prompt_variant}/{index}/{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> (64 - SEED_BITS)


def job_id(concept_id: str, index: int) -> str:
    return f"{concept_id}-{index:05d}"


def plan_jobs(catalog: Catalog, rounds: list[dict[str, int]]) -> list[Job]:
    """Jobs for every round, in order: round by round, then catalog order, then index.

    ``rounds[0]`` maps each concept to its planned image count; later rounds add images for
    some concepts (filter top-ups), continuing each concept's index numbering.
    """
    next_index = {c.id: 0 for c in catalog.concepts}
    jobs = []
    for round_number, counts in enumerate(rounds):
        for concept in catalog.concepts:
            for _ in range(counts.get(concept.id, 0)):
                index = next_index[concept.id]
                next_index[concept.id] += 1
                variant = index % len(concept.prompts)
                jobs.append(Job(job_id(concept.id, index), concept.id, index, variant, round_number))
    return jobs


def batches(jobs: list[Job], batch_size: int) -> list[list[Job]]:
    """Consecutive chunks within each round.

    Batch composition is fixed by the job list and batch size alone, so a resumed or sharded run
    hands the pipeline exactly the batches an uninterrupted single run would (batched outputs
    are reproducible bit for bit only for the same batch).
    """
    result: list[list[Job]] = []
    for job in jobs:
        if not result or len(result[-1]) == batch_size or result[-1][-1].round != job.round:
            result.append([])
        result[-1].append(job)
    return result


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, batch_number: int) -> bool:
        return batch_number % self.count == self.index


def parse_shard(text: str | None) -> Shard:
    """``--shard I/N``; without it, ``RANK``/``WORLD_SIZE`` (torchrun, accelerate); else 0/1."""
    if text is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return Shard(0, 1)
        text = f"{rank}/{world}"
    try:
        index_text, count_text = text.split("/")
        shard = Shard(int(index_text), int(count_text))
    except ValueError:
        raise UserError(f"shard {text!r}: expected I/N, e.g. 0/4") from None
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UserError(f"shard {text!r}: need 0 <= I < N")
    return shard

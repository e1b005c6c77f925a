"""The two prompt protocols, word for word, as provider-neutral requests.

ManyICL (stanfordmlgroup/ManyICL `prompt.py` `work()` and `LMM.py` `GPT4VAPI.__call__`): the
prompt is one user message built as a string with an image token per image; split at the tokens,
it becomes image, text, image, text, ... (a text segment is dropped when blank). Per demo:

    <<IMG>>Given the image above, answer the following question using the specified format. \\n
    Question: What is in the image above?\\nChoices: ['a', 'b']\\nAnswer Choice: a\\n

then per query i (1-based) the same with `Question i:` / `Choices i:` and a blank line, then per
query the format template (`Answer Choice i:` / `Confidence Score i:` lines). The choices are
`str(list_of_classes)`. `max_tokens` = 60 x batch size (prompt.py `work()`: `60*num_qns_per_round`,
also for the shorter last batch), temperature 0 (LMM.py).

Multi-label sets (CheXpert) use a variant of our own, since the released code is single-label:
the question asks which choices are present, a demo answers with every positive finding joined
by ", " (or `none`), and the template asks for a comma-separated list; the scorer reads such a list.

LCL (isekai-portal/Link-Context-Learning `isekai.py` `ISEKAIEval2Way.policy_2way` and the
`causal_v1.0` / `final_v1.0` conversation templates): the system sentence of `causal_v1.0`
(only when there are examples, as in the original, whose first example carries that template);
per support image a user turn `[BEGIN EXAMPLE] What is in the image <image>?` with the image
where `<image>` stands, and an assistant turn `there is "<label>" in the image. [END EXAMPLE]`;
k positive then k negative, shuffled; then the user turn
`[FINAL QUESTION]: Based on the previous examples, what is in the image <image>?`.

Shuffles are seeded per request (the originals used unseeded `random.shuffle`): the seed is
derived from the run seed, the cell and the request's position and recorded with the request.
"""

from __future__ import annotations

import functools
import hashlib
import random

from ..fileio import dumps_canonical
from .images import ImageCache
from .providers.base import EvalRequest, Part, Turn
from .tasks import Episode, Example, ManyICLTask

IMG = "<<IMG>>"
LEAD = "Given the image above, answer the following question using the specified format. \n"
TOKENS_PER_QUERY = 60

LCL_SYSTEM = ("You should find the causal relationship between the examples I am going to show you. "
              "And use that to answer to the [FINAL QUESTION].")
LCL_DEMO_QUESTION = "[BEGIN EXAMPLE] What is in the image <image>?"
LCL_QUERY_QUESTION = "[FINAL QUESTION]: Based on the previous examples, what is in the image <image>?"
LCL_ANSWER = 'there is "{label}" in the image. [END EXAMPLE]'


def request_seed(run_seed: int, cell: str, position: str) -> int:
    digest = hashlib.sha256(f"{run_seed}/{cell}/{position}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@functools.lru_cache(maxsize=1 << 16)
def _text_sha256(text: str) -> str:
    """Cached per text: a demo's text recurs in every request of a cell (the str keeps its hash)."""
    return hashlib.sha256(text.encode()).hexdigest()


def request_key(provider: str, model: str, system, turns, max_tokens: int, temperature: float,
                cache_prefix: int = 0) -> str:
    """sha256 of the canonical request: what is sent, texts and images by the sha256 of their bytes
    (a cache marker after the first ``cache_prefix`` parts counts only when there is one, so the
    keys of runs without one stay what they always were)."""
    canonical = {
        "provider": provider, "model": model, "max_tokens": max_tokens, "temperature": temperature,
        "system": system,
        "turns": [[turn.role, [{"text": _text_sha256(p.text)} if p.image is None else
                               {"image": p.image.sha256, "type": p.image.media_type} for p in turn.parts]]
                  for turn in turns],
    }
    if cache_prefix:
        canonical["cache_prefix"] = cache_prefix
    return hashlib.sha256(dumps_canonical(canonical).encode()).hexdigest()


# --- ManyICL -----------------------------------------------------------------------------------

def _answer(example: Example, multilabel: bool) -> str:
    return (", ".join(example.labels) or "none") if multilabel else example.labels[0]


def _question(multilabel: bool, number: str) -> str:
    if multilabel:
        return (f"Question{number}: Which of the choices are present in the image above? "
                "Answer with every choice that applies, separated by commas, or none.\n")
    return f"Question{number}: What is in the image above?\n"


def _demo_text(example: Example, choices: str, multi: bool) -> str:
    """The text after a demonstration's image token."""
    return f"{LEAD}{_question(multi, '')}Choices: {choices}\nAnswer Choice: {_answer(example, multi)}\n"


def _query_texts(count: int, choices: str, multi: bool) -> list[str]:
    """The text after each query's image token; the last one carries every format template."""
    texts = [f"{LEAD}{_question(multi, f' {n}')}Choices {n}: {choices}\n\n" for n in range(1, count + 1)]
    slot = "Answer Choices Here, separated by commas, or none," if multi else "Answer Choice Here"
    texts[-1] += "".join(f"""
Please respond with the following format for each question:
---BEGIN FORMAT TEMPLATE FOR QUESTION {n}---
Answer Choice {n}: [Your {slot} for Question {n}]
Confidence Score {n}: [Your Numerical Prediction Confidence Score Here From 0 To 1 for Question {n}]
---END FORMAT TEMPLATE FOR QUESTION {n}---

Do not deviate from the above format. Repeat the format template for the answer.""" for n in range(1, count + 1))
    return texts


def manyicl_prompt(task: ManyICLTask, demos: list[Example], queries: list[Example]) -> str:
    """The prompt string of prompt.py, image tokens included."""
    choices, multi = str(list(task.classes)), task.multilabel
    texts = [_demo_text(d, choices, multi) for d in demos] + _query_texts(len(queries), choices, multi)
    return "".join(IMG + text for text in texts)


def manyicl_requests(task: ManyICLTask, shots: int, batch_size: int, test_order: list[int], *, cell: str,
                     run_seed: int, provider: str, model: str, images: ImageCache, temperature: float = 0.0,
                     tokens_per_query: int = TOKENS_PER_QUERY, max_tokens_cap: int | None = None,
                     demo_order: str = "per-request", mark_cache: bool = True) -> list[EvalRequest]:
    """One request per consecutive batch of the shuffled test rows, demos reshuffled per request.

    With ``demo_order="cache-friendly"`` the demos are shuffled once per cell (seed from the run
    seed and the cell), so the demo block is byte-identical and first in every request of the
    cell and a provider's prompt cache can serve it; with ``mark_cache`` the requests say where
    the block ends (`EvalRequest.cache_prefix`) for providers that take an explicit marker.
    ``max_tokens_cap`` is LMM.py's `min(4096, max_tokens)`.

    The parts are those of LMM.py's split of `manyicl_prompt` at the image tokens (the prompt
    starts with an image and no text is blank, so every image is followed by its text), built
    directly: each demonstration's image and text parts are made once and shared by every
    request of the cell, so a 2,000-shot cell of 940 requests holds one copy of its demo texts,
    not 940.
    """
    demos = task.demos(shots)
    choices, multi = str(list(task.classes)), task.multilabel
    demo_parts = {e.id: (Part(image=images.get(e.image)), Part(text=_demo_text(e, choices, multi))) for e in demos}
    query_parts: dict[int, list[Part]] = {}   # by batch length: the same texts for every full batch
    requests = []
    shared = demo_order == "cache-friendly"
    cell_seed = request_seed(run_seed, cell, "demos") if shared else None
    cache_prefix = 2 * len(demos) if shared and mark_cache else 0
    for position, start in enumerate(range(0, len(test_order), batch_size)):
        queries = [task.test[i] for i in test_order[start:start + batch_size]]
        seed = cell_seed if shared else request_seed(run_seed, cell, str(position))
        order = list(demos)
        random.Random(seed).shuffle(order)
        if len(queries) not in query_parts:
            query_parts[len(queries)] = [Part(text=t) for t in _query_texts(len(queries), choices, multi)]
        parts = [part for e in order for part in demo_parts[e.id]]
        for query, text in zip(queries, query_parts[len(queries)]):
            parts += (Part(image=images.get(query.image)), text)
        turns = (Turn("user", tuple(parts)),)
        max_tokens = tokens_per_query * batch_size   # prompt.py: 60*num_qns_per_round, short last batch too
        if max_tokens_cap is not None:
            max_tokens = min(max_tokens_cap, max_tokens)
        key = request_key(provider, model, None, turns, max_tokens, temperature, cache_prefix)
        requests.append(EvalRequest(key, cell, tuple(q.id for q in queries), seed, None, turns, max_tokens,
                                    temperature, model, cache_prefix))
    return requests


# --- LCL -----------------------------------------------------------------------------------

def _question_parts(question: str, image) -> tuple[Part, ...]:
    before, _, after = question.partition("<image>")
    return tuple(p for p in (Part(text=before) if before else None, Part(image=image),
                             Part(text=after) if after else None) if p is not None)


def lcl_turns(episode: Episode, shots: int, seed: int, images: ImageCache) -> tuple[str | None, tuple[Turn, ...]]:
    support = ([(path, episode.positive_label) for path in episode.positive[:shots]]
               + [(path, episode.negative_label) for path in episode.negative[:shots]])
    random.Random(seed).shuffle(support)
    turns = []
    for path, label in support:
        turns.append(Turn("user", _question_parts(LCL_DEMO_QUESTION, images.get(path))))
        turns.append(Turn("assistant", (Part(text=LCL_ANSWER.format(label=label)),)))
    turns.append(Turn("user", _question_parts(LCL_QUERY_QUESTION, images.get(episode.query))))
    return (LCL_SYSTEM if support else None), tuple(turns)


def lcl_requests(episodes, shots: int, *, cell: str, run_seed: int, provider: str, model: str,
                 images: ImageCache, temperature: float = 0.0, max_tokens: int = 64) -> list[EvalRequest]:
    requests = []
    for episode in episodes:
        seed = request_seed(run_seed, cell, episode.id)
        system, turns = lcl_turns(episode, shots, seed, images)
        key = request_key(provider, model, system, turns, max_tokens, temperature)
        requests.append(EvalRequest(key, cell, (episode.id,), seed, system, turns, max_tokens, temperature, model))
    return requests

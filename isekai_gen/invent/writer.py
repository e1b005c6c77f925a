"""`--writer PROVIDER:MODEL`: a language model writes the texts of each drafted group.

One request per group asks for JSON with the invented concept's and the real partner's
description, prompt variants and negative prompt. A reply is accepted only when `reply_problem`
finds nothing wrong: it parses, has every field, at least 8 distinct prompts per concept, each
within CLIP's 77 tokens, each invented prompt stating every defining feature (a content word of
each), no prompt naming the coined label (a text-to-image model cannot know it) and the real
partner's prompts naming the partner. A bad reply is asked again (the runner's re-asks); a group
whose last reply is still bad is refused and the next drafted group takes its place.
"""

from __future__ import annotations

import json
import re

from ..catalog import MAX_PROMPT_TOKENS, MIN_PROMPTS, prompt_token_count
from .llm import LLMSettings, run_llm, text_request

SYSTEM = ("You write text-to-image prompts for an evaluation dataset of invented visual concepts. "
          "Answer with one JSON object and nothing else.")
STOPWORDS = frozenset("a an the of and with on in to its it is by for from at as".split())


def writer_text(draft) -> str:
    spec = {
        "invented_concept": draft.subject, "defining_features": list(draft.features),
        "real_partner": draft.partner.name, "real_partner_traits": list(draft.partner.traits),
    }
    return (
        "Write the texts of one invented concept and of the real thing it is most easily mistaken for.\n"
        f"{json.dumps(spec, sort_keys=True)}\n"
        f"Return JSON: {{\"isekai\": {{\"description\": str, \"prompts\": [{MIN_PROMPTS} to 10 str], "
        "\"negative_prompt\": str}, \"real\": {same fields}}. "
        "Every isekai prompt states every defining feature and varies setting, viewpoint, style and lighting; "
        "the real prompts show the real partner only; each prompt under 60 words; "
        "the negative prompts name what must not appear."
    )


def _content_words(phrase: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", phrase.lower()) if w not in STOPWORDS and len(w) > 2}


def parse_reply(text: str) -> dict | None:
    """The JSON object of a reply (a fenced code block is unwrapped); None when there is none."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def reply_problem(draft, text: str) -> str | None:
    data = parse_reply(text)
    if data is None:
        return "no JSON object"
    for world in ("isekai", "real"):
        part = data.get(world)
        if not isinstance(part, dict):
            return f"no {world} object"
        prompts, description, negative = part.get("prompts"), part.get("description"), part.get("negative_prompt")
        if not (isinstance(prompts, list) and all(isinstance(p, str) and p.strip() for p in prompts)):
            return f"{world}.prompts is not a list of texts"
        if not isinstance(description, str) or len(description) < 20 or not isinstance(negative, str):
            return f"{world}: description or negative_prompt missing"
        if len(set(prompts)) < MIN_PROMPTS:
            return f"{world}: {len(set(prompts))} distinct prompts, {MIN_PROMPTS} needed"
        for prompt in [*prompts, negative]:
            if prompt_token_count(prompt) > MAX_PROMPT_TOKENS:
                return f"{world}: a prompt is over {MAX_PROMPT_TOKENS} CLIP tokens"
            if re.search(rf"\b{re.escape(draft.label)}\b", prompt.lower()):
                return f"{world}: a prompt names the coined label {draft.label!r}"
        for prompt in prompts:
            words = set(re.findall(r"[a-z]+", prompt.lower()))
            if world == "isekai":
                missing = [f for f in draft.features if not _content_words(f) & words]
                if missing:
                    return f"isekai: prompt {prompt[:40]!r}... does not state {missing[0]!r}"
            elif not _content_words(draft.partner.name) <= words:
                return f"real: prompt {prompt[:40]!r}... does not name {draft.partner.name!r}"
    return None


def write_texts(drafts: list, settings: LLMSettings, run_dir, *, dry_run: bool = False) -> tuple[dict, dict]:
    """draft label -> accepted texts (``{"isekai": ..., "real": ...}``), or None when refused; and the
    cost summary."""
    requests = {d.label: text_request(settings, cell="writer", ident=d.label, system=SYSTEM, text=writer_text(d),
                                      max_tokens=1500) for d in drafts}
    by_key = {requests[d.label].key: d for d in drafts}
    texts, summary = run_llm(run_dir, settings, list(requests.values()),
                             lambda request, text: reply_problem(by_key[request.key], text) is not None,
                             purpose="catalog-writer", dry_run=dry_run)
    out, refused = {}, {}
    for draft in drafts:
        text = texts.get(requests[draft.label].key)
        problem = "no reply" if text is None else reply_problem(draft, text)
        if problem is None:
            data = parse_reply(text)
            out[draft.label] = {world: {"description": " ".join(data[world]["description"].split()),
                                        "prompts": list(dict.fromkeys(data[world]["prompts"])),
                                        "negative_prompt": data[world]["negative_prompt"]}
                                for world in ("isekai", "real")}
        else:
            out[draft.label] = None
            refused[draft.label] = problem
    summary["refused"] = refused
    return out, summary

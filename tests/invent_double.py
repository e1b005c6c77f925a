"""A test double of a language model that "knows" exactly one concept, for `catalog invent --writer`
and `catalog probe` tests. Not a model: it extends the loopback OpenAI-compatible double of
evaluate_double.py (127.0.0.1 only) with the three kinds of request these commands send.

- writer requests: valid JSON texts stating every defining feature, except that the first
  ``bad_writer_replies`` writer requests get a reply that fails the checks (the writer must
  re-ask, then refuse);
- text probes: the known label is described by its parts (``known_parts``), each of
  ``real_labels`` as the real thing it is; every other label gets ``UNKNOWN``;
- image probes: the true label (``truth``: image sha256 -> label) when it is the known label,
  otherwise the first listed label that is not the true one (always wrong).
"""

from __future__ import annotations

import json
import re

from evaluate_double import OpenAIDouble, images_and_text


class KnowsOneConcept(OpenAIDouble):
    def __init__(self, known_label: str, known_parts: list[str], truth: dict[str, str] | None = None,
                 bad_writer_replies: int = 0, real_labels=()):
        super().__init__(truth or {})
        self.real_labels = set(real_labels)
        self.known_label, self.known_parts = known_label, known_parts
        self.bad_writer_replies = bad_writer_replies

    def reply(self, messages: list[dict]) -> str:
        shas, text = images_and_text(messages)
        if "Write the texts of one invented concept" in text:
            return self._writer(json.loads(next(line for line in text.splitlines() if line.startswith("{"))))
        asked = re.search(r'What is a "([^"]+)"\?', text)
        if asked:
            if asked.group(1) == self.known_label:
                return f"A {asked.group(1)} is a small creature: a {' '.join(self.known_parts)} hybrid."
            if asked.group(1) in self.real_labels:
                return f"A {asked.group(1)} is a familiar everyday thing."
            return "UNKNOWN"
        listed = text.split("Labels: ", 1)[1].rsplit(". Answer", 1)[0].split(", ")
        true = self.truth[shas[-1]]
        return true if true == self.known_label else next(label for label in listed if label != true)

    def _writer(self, spec: dict) -> str:
        with self.lock:
            bad = self.bad_writer_replies > 0
            self.bad_writer_replies -= 1
        if bad:
            return '{"isekai": {"prompts": ["too few"]}}'
        features = ", ".join(spec["defining_features"])
        settings = ["in a forest", "on a beach", "in a studio", "at dusk", "in snow", "under neon light",
                    "in a meadow", "on a rooftop"]
        partner, traits = spec["real_partner"], ", ".join(spec["real_partner_traits"])
        return json.dumps({
            "isekai": {"description": f"Written by the double: {spec['invented_concept']}, {features}.",
                       "prompts": [f"photo of {spec['invented_concept']}, {features}, {s}" for s in settings],
                       "negative_prompt": f"ordinary {partner}, blurry"},
            "real": {"description": f"Written by the double: a real {partner}, {traits}.",
                     "prompts": [f"photo of a real {partner}, {traits}, {s}" for s in settings],
                     "negative_prompt": "blurry, low quality"},
        })

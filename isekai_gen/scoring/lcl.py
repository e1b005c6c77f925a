"""The ISEKAI metric of the original LCL code, quirks included (``--lcl-compat``).

``ISEKAIMetrics`` cleans the target answer (``there is "<label>" in the image``): it keeps the
text after the last ``ASSISTANT:`` and before ``</s>``, deletes "The answer is", "there is",
"in the image", quotes and full stops, strips and lowercases. The other label of the pair
(lowercased) is the negative. A reply is correct when the cleaned target occurs in the RAW reply
(not lowercased: a label echoed with its capitals is scored wrong) and the negative does not
occur once every copy of the target has been deleted from the reply. Accuracy = correct / lines.
"""

from __future__ import annotations


def clean_answer(text: str) -> str:
    """LCL's ``extract_target``: the bare label of an answer sentence, lowercased."""
    found = text.split("ASSISTANT:")[-1].split("</s>")[0]
    for phrase in ("The answer is", "there is", "in the image", '"', "'", "."):
        found = found.replace(phrase, "")
    return found.strip().lower()


def target_sentence(label: str) -> str:
    """The answer LCL's 2-way policy trains and evaluates against."""
    return f'there is "{label}" in the image'


def negative_of(pair: tuple[str, str], target: str) -> str:
    """LCL's ``get_neg_pair``: the last lowercased pair label that differs from the target."""
    negative = None
    for name in (pair[0].lower(), pair[1].lower()):
        if name != target:
            negative = name
    return negative


def lcl_correct(reply: str, pair: tuple[str, str], label: str) -> bool:
    target = clean_answer(target_sentence(label))
    negative = negative_of(pair, target)
    return target in reply and negative not in reply.replace(target, "")

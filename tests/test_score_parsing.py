"""Reading replies: label matching, ManyICL's eval.py rules, LCL's ISEKAI metric, the safe unpickler."""

import csv
import pickle

import numpy as np
import pytest

from isekai_gen.errors import UserError
from isekai_gen.scoring import score
from isekai_gen.scoring.lcl import lcl_correct
from isekai_gen.scoring.manyicl import SubstringMatcher, batched_answers, extract_answer, run_fields_from_name
from isekai_gen.scoring.matching import NO_LABEL, ONE_LABEL, SEVERAL_LABELS, LabelMatcher
from isekai_gen.scoring.unpickle import load_restricted_pickle

UCMERCED = ("agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
            "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
            "sparseresidential storagetanks tenniscourt").split()


@pytest.mark.parametrize("text, expected", [
    ("there is an Ice Cream Microphone", (ONE_LABEL, 1)),      # longest label wins
    ("ICE CREAM, clearly", (ONE_LABEL, 0)),                    # case-insensitive
    ("ice-cream", (ONE_LABEL, 0)),                             # separators inside a label are interchangeable
    ("ice cream or ice cream microphone?", (SEVERAL_LABELS, None)),
    ("icecreamery", (NO_LABEL, None)),                         # whole words only
    ("a nice creamy ice creams", (NO_LABEL, None)),
    ("octopus vacuum", (ONE_LABEL, 3)),
    ("an octopus next to a vacuum", (ONE_LABEL, 2)),
    ("", (NO_LABEL, None)),
])
def test_label_matching_rules(text, expected):
    matcher = LabelMatcher(["ice cream", "ice cream microphone", "octopus", "octopus vacuum"])
    assert matcher.single(text) == expected


def test_multilabel_reading_lists_and_separators():
    matcher = LabelMatcher(["Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion"])
    assert matcher.label_set("edema; pleural effusion") == (ONE_LABEL, (2, 3))
    assert matcher.label_set('["Cardiomegaly", "Edema"]') == (ONE_LABEL, (1, 2))
    assert matcher.label_set(["atelectasis"]) == (ONE_LABEL, (0,))
    assert matcher.label_set("none") == (ONE_LABEL, ()) == matcher.label_set("[]")
    assert matcher.label_set("edema, something else") == (NO_LABEL, None)
    assert matcher.label_set("edema and cardiomegaly, atelectasis")[0] == SEVERAL_LABELS


def test_manyicl_answer_extraction_follows_eval_py():
    reply = "Answer Choice 10: forest\nAnswer Choice 1: river \nAnswer Choice 1: beach\n Answer Choice 2: x"
    assert extract_answer(reply, 1) == "river"            # first line starting with the prefix, stripped
    assert extract_answer(reply, 10) == "forest"          # "Answer Choice 1:" is not a prefix of "... 10:"
    assert extract_answer(reply, 2) is None               # indented line: no match, like eval.py
    assert extract_answer("Answer Choice 1: ERROR (blocked)", 1) is None
    assert SubstringMatcher(["residential", "dense", "forest"]).find("A Dense Residential area") == [0, 1]
    answers = batched_answers({"['a.jpg', 'b.jpg']": "Answer Choice 2: beach", "token_usage": (1, 2)}, "f.pkl")
    assert answers == [("a.jpg", None, 2, "['a.jpg', 'b.jpg']"), ("b.jpg", "beach", 2, "['a.jpg', 'b.jpg']")]
    assert run_fields_from_name("out/UCMerced_210shot_Gemini1.5_50.pkl") == {
        "shots": 210, "model": "Gemini1.5", "batch_size": 50}


def _ucmerced_420(tmp_path):
    """The reference's example: 295 right, 53 wrong class, 38 naming no class, 27 naming two, 7 lost."""
    ids = [f"{name}{k:02d}.jpeg" for name in UCMERCED for k in range(20)]
    truth = {item: name for name in UCMERCED for item in ids if item[:-7] == name}
    with open(tmp_path / "test.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", *UCMERCED])
        for item in ids:
            writer.writerow([item, *(1.0 if name == truth[item] else 0.0 for name in UCMERCED)])
    order = [str(item) for item in np.random.default_rng(3).permutation(ids)]
    answers = {}
    for n, item in enumerate(order):
        name, other = truth[item], UCMERCED[(UCMERCED.index(truth[item]) + 1) % 21]
        answers[item] = ([name] * 295 + [other] * 53 + ["no idea"] * 38 + [f"{name} or {other}"] * 27 + [None] * 7)[n]
    lost = [item for item in order if answers[item] is None]
    asked = [item for item in order if item not in lost[:3]]          # 3 never asked, 4 without an answer line
    raw = {}
    for start in range(0, len(asked), 50):
        batch = asked[start:start + 50]
        lines = [f"Answer Choice {q}: {answers[item]}\nConfidence Score {q}: 0.8"
                 for q, item in enumerate(batch, 1) if answers[item] is not None]
        raw[str(batch)] = "\n".join(lines)
    raw["token_usage"] = (123, 456, 579)
    path = tmp_path / "UCMerced_210shot_GPT4o_50.pkl"
    path.write_bytes(pickle.dumps(raw))
    return tmp_path / "test.csv", path


def test_manyicl_policy_reproduces_released_eval_py(tmp_path):
    truth, predictions = _ucmerced_420(tmp_path)
    report = score(truth, [predictions], parse_failures="manyicl", bootstrap=200)
    assert report["n_total"] - report["n_scored"] == 34        # eval.py: "In total 34 errors len = 386"
    assert report["n_scored"] == 386
    assert f"{report['value']:.2f}" == "76.42"
    assert report["failures"] == {"no_label": 38, "several_labels": 27, "no_answer": 4, "missing": 3}
    assert (report["model"], report["shots"], report["batch_size"]) == ("GPT4o", 210, 50)
    wrong = score(truth, [predictions], parse_failures="wrong", bootstrap=0)
    assert wrong["n_scored"] == 420 and wrong["value"] == pytest.approx(100 * 295 / 420)
    dropped = score(truth, [predictions], parse_failures="drop", bootstrap=0)
    assert dropped["n_scored"] == 348 and dropped["value"] == pytest.approx(100 * 295 / 348)


def test_manyicl_policy_counts_an_empty_answer_wrong_like_eval_py(tmp_path):
    (tmp_path / "test.csv").write_text(",forest,river\na.jpg,1.0,0.0\nb.jpg,0.0,1.0\nc.jpg,0.0,1.0\n")
    reply = "Answer Choice 1: forest\nAnswer Choice 2: \nConfidence Score 3: 0.5"
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"['a.jpg', 'b.jpg', 'c.jpg']": reply}))
    manyicl = score(tmp_path / "test.csv", [tmp_path / "raw.pkl"], parse_failures="manyicl", bootstrap=0)
    assert (manyicl["n_scored"], manyicl["value"]) == (2, 50.0)          # b counted wrong, c dropped
    drop = score(tmp_path / "test.csv", [tmp_path / "raw.pkl"], parse_failures="drop", bootstrap=0)
    assert (drop["n_scored"], drop["failures"]["no_answer"]) == (1, 2)


def test_lcl_metric_quirks():
    pair = ("octopus vacuum", "octopus")
    # case-sensitive raw text: the lowercased target must occur as written
    assert lcl_correct('there is "octopus vacuum" in the image.', pair, "octopus vacuum")
    assert not lcl_correct('there is "Octopus Vacuum" in the image.', pair, "octopus vacuum")
    # target-deletion rule: the negative "octopus" inside the target does not count...
    assert lcl_correct("octopus vacuum", pair, "octopus vacuum")
    # ...so a reply naming the longer label is scored right for the shorter target too
    assert lcl_correct("octopus vacuum", pair, "octopus")
    assert not lcl_correct("an octopus vacuum, or an octopus", pair, "octopus vacuum")
    # quotes and full stops of the label are cleaned away before matching
    assert lcl_correct("there is mr mushroom", ("Mr. Mushroom", "mushroom house"), "Mr. Mushroom")


# A pickle that calls builtins.print when loaded, written opcode by opcode: pickling the print
# function itself would name whatever replaced it (Ray, once imported, patches builtins.print).
_EVIL_PICKLE = b"(dV['a']\ncbuiltins\nprint\n(Vpickle ran code\ntRs."


def test_restricted_unpickler_refuses_objects(tmp_path, capsys):
    path = tmp_path / "evil.pkl"
    path.write_bytes(_EVIL_PICKLE)
    with pytest.raises(UserError, match=r"evil\.pkl: refusing to load .*builtins\.print"):
        load_restricted_pickle(path)
    assert "pickle ran code" not in capsys.readouterr().out
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"['a']": "Answer Choice 1: x", "token_usage": (1, 2.5, None, True)}))
    assert load_restricted_pickle(plain)["token_usage"] == (1, 2.5, None, True)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match=r"garbage\.pkl: not a readable pickle"):
        load_restricted_pickle(garbage)


TRICKY_TEXTS = ["", "  ", "Ice Cream", "ice-cream microphone, or ice_cream?", "octopus\x00vacuum", "\x00octopus",
                "OCTOPUS VACUUM octopus", "ice creamy", "İce cream", "straße octopus", "ice\ncream", "-", "vacuum-",
                "a" * 300 + " octopus"]
# No join character: replies differing only in their numbers are read once per shape (digit runs -> "0").
NUMBERED_TEXTS = ["octopus 12", "octopus 345", "octopus7", "7octopus", "12 octopus", "ice 1 cream", "ice 22 cream",
                  "ice cream 0.93", "ice cream 0.5", "b2 octopus", "b22", "B2", "ice cream ٣", "ice cream 3",
                  "İce cream 9", "İce cream 99", "10 ice-cream microphone 10", "ice cream 10 microphone"]


@pytest.mark.parametrize("texts", [TRICKY_TEXTS, NUMBERED_TEXTS])
@pytest.mark.parametrize("labels", [["ice cream", "ice cream microphone", "octopus", "octopus vacuum"],
                                    ["-", "vacuum", "ice\x00cream"],  # a label holding the join character
                                    ["ice cream", "b2", "octopus"]])  # a label holding a digit
def test_batch_scan_reads_every_text_exactly_as_one_at_a_time(labels, texts):
    """find_many (one scan over all texts joined, numbers blanked where no label has one) must
    agree with find on each text alone, for the word-boundary matcher and for eval.py's substring rule."""
    matcher, substrings = LabelMatcher(labels), SubstringMatcher(labels)
    words = matcher.find_many(texts)
    subs = substrings.find_many(texts)
    for row, text in enumerate(texts):
        assert tuple(np.flatnonzero(words[row])) == matcher.find(text), text
        eval_py = [index for index, name in enumerate(labels) if name.lower() in text.lower()]
        assert list(np.flatnonzero(subs[row])) == substrings.find(text) == eval_py, text
    if texts is NUMBERED_TEXTS:
        assert words[texts.index("ice 1 cream")].sum() == 0 and words[texts.index("7octopus")].sum() == 0
        return
    # the join character inside a reply separates no label words: "octopus\x00vacuum" is not "octopus vacuum"
    assert words[TRICKY_TEXTS.index("octopus\x00vacuum")].sum() == 1

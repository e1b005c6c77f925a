"""Unicode-exact scoring: ids, labels and replies are compared in NFC (issue 25 item 4)."""

import json
import unicodedata

import pytest

from isekai_gen.errors import UserError
from isekai_gen.scoring import score
from isekai_gen.scoring.matching import LabelMatcher

CLASSES = ("crème brûlée", "café", "cafe", "forest")
N_ITEMS = 40   # above FOREIGN_REPLIES_MIN, so an all-wrong run would meet the "another dataset" check


def nfd(text):
    return unicodedata.normalize("NFD", text)


def _truth(path, ids, labels, classes=CLASSES):
    rows = ["," + ",".join(classes)] + [item + "," + ",".join("1.0" if name == label else "0.0" for name in classes)
                                        for item, label in zip(ids, labels)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _predictions(path, rows, ensure_ascii=True):
    path.write_text("".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows), encoding="utf-8")
    return path


def _labels():
    return [("crème brûlée", "café")[k % 2] for k in range(N_ITEMS)]


@pytest.mark.parametrize("ensure_ascii", [True, False])   # NFD as JSON escapes or as raw UTF-8
@pytest.mark.parametrize("share", ["half", "all"])
def test_nfd_replies_score_like_nfc_replies(tmp_path, share, ensure_ascii):
    ids, labels = [f"{k:03d}.jpg" for k in range(N_ITEMS)], _labels()
    truth = _truth(tmp_path / "test.csv", ids, labels, ("crème brûlée", "café", "forest"))
    replies = [f"It is {label}." for label in labels]
    decomposed = [nfd(reply) if share == "all" or k % 2 else reply for k, reply in enumerate(replies)]
    assert sum(a != b for a, b in zip(replies, decomposed)) == (N_ITEMS if share == "all" else N_ITEMS // 2)
    path = _predictions(tmp_path / "p.jsonl", [{"id": i, "prediction": r} for i, r in zip(ids, decomposed)],
                        ensure_ascii)
    for policy in ("wrong", "manyicl"):
        report = score(truth, [path], parse_failures=policy, bootstrap=0)
        # before NFC: 50.00 for half (every NFD reply named no label), a "predictions for another dataset?"
        # refusal for all
        assert (report["value"], report["n_unparsed"]) == (100.0, 0), policy


def test_nfd_ids_and_nfd_truth_labels_match_their_nfc_forms(tmp_path):
    """macOS writes file names in NFD: ids are the same file whichever form either side uses."""
    ids = [f"été-{k:03d}.jpg" for k in range(N_ITEMS)]
    labels = _labels()
    truth = _truth(tmp_path / "test.csv", map(nfd, ids), map(nfd, labels), tuple(map(nfd, CLASSES)))
    path = _predictions(tmp_path / "p.jsonl", [{"id": i, "prediction": label} for i, label in zip(ids, labels)])
    report = score(truth, [path], bootstrap=0)
    assert report["value"] == 100.0 and report["n_unknown_ids"] == 0
    assert report["truth"]["classes"] == list(CLASSES)   # reported in NFC


def test_two_truth_ids_equal_in_nfc_are_duplicates(tmp_path):
    truth = _truth(tmp_path / "test.csv", ["été.jpg", nfd("été.jpg")], ["café", "café"])
    path = _predictions(tmp_path / "p.jsonl", [{"id": "été.jpg", "prediction": "café"}])
    with pytest.raises(UserError, match=r"test\.csv:3: duplicate id 'été\.jpg' \(first on line 2\)"):
        score(truth, [path], bootstrap=0)


def test_combining_marks_belong_to_their_word(tmp_path):
    """``cafe`` + U+0301 is ``café``, never the label ``cafe``; a mark NFC cannot compose ends no word."""
    ids = [f"{k:03d}.jpg" for k in range(4)]
    truth = _truth(tmp_path / "test.csv", ids, ["café", "café", "cafe", "forest"])
    replies = [nfd("café"), nfd("Café!"), "cafe", "forest\u20dd"]   # U+20DD composes with nothing
    path = _predictions(tmp_path / "p.jsonl", [{"id": i, "prediction": r} for i, r in zip(ids, replies)])
    report = score(truth, [path], bootstrap=0)
    # before: both NFD replies read as "cafe" (wrong, silently) and "forest" + mark as "forest"
    assert report["per_class"]["café"]["recall"] == 100.0 and report["per_class"]["cafe"]["precision"] == 100.0
    assert report["failures"]["no_label"] == 1 and report["value"] == 75.0
    matcher = LabelMatcher(["q", "forest"])
    assert matcher.find("q\u0307 or forest") == (1,) and matcher.find("q or forest") == (0, 1)


def test_compatibility_look_alikes_do_not_match(tmp_path):
    """Fullwidth letters and ligatures are other characters (no NFKC): such a reply names no label."""
    ids = [f"{k:03d}.jpg" for k in range(3)]
    truth = _truth(tmp_path / "test.csv", ids, ["forest", "forest", "café"], ("forest", "café", "field"))
    replies = ["ｆｏｒｅｓｔ", "forest", "ﬁeld or café"]   # "ﬁeld" is not "field": the third names café
    path = _predictions(tmp_path / "p.jsonl", [{"id": i, "prediction": r} for i, r in zip(ids, replies)], False)
    report = score(truth, [path], bootstrap=0)
    assert report["failures"]["no_label"] == 1 and report["n_scored"] == 3
    assert report["value"] == pytest.approx(200 / 3)


def test_a_run_written_in_fullwidth_letters_is_refused_with_that_cause(tmp_path):
    ids, labels = [f"{k:03d}.jpg" for k in range(N_ITEMS)], ["forest"] * N_ITEMS
    truth = _truth(tmp_path / "test.csv", ids, labels)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "forest")
    assert fullwidth == "ｆｏｒｅｓｔ"
    path = _predictions(tmp_path / "p.jsonl", [{"id": i, "prediction": fullwidth} for i in ids], False)
    with pytest.raises(UserError, match=rf"p\.jsonl: none of its {N_ITEMS} replies names a class .* {N_ITEMS} are "
                                        r"written with compatibility characters \(fullwidth letters, ligatures; "
                                        r"first 'ｆｏｒｅｓｔ'\)"):
        score(truth, [path], bootstrap=0)


def test_lcl_compat_and_two_way_truth_read_nfd_replies(tmp_path):
    lines = [{"image_name": f"q{k}.png", "positive_list": ["a.png"], "negative_list": ["b.png"],
              "positive_promt": "crème", "negative_promt": "brûlée", "label_name": ("crème", "brûlée")[k % 2]}
             for k in range(4)]
    truth = _predictions(tmp_path / "ISEKAI-10.json", lines, False)
    replies = [{"pred": nfd(f'there is "{line["label_name"]}" in the image'), "target": nfd(line["label_name"])}
               for line in lines]
    path = _predictions(tmp_path / "ISEKAI-10_extra_prediction.jsonl", replies, False)
    for lcl_compat in (False, True):
        assert score(truth, [path], bootstrap=0, lcl_compat=lcl_compat)["value"] == 100.0

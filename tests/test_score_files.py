"""Truth and prediction file formats, bad input, and the CLI's outputs."""

import json
import pickle
import re

import pytest
from click.testing import CliRunner
from PIL import Image

from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.schema import validate
from isekai_gen.scoring import score, write_report


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _episode(episode_id, label, positive, negative):
    return {"episode_id": episode_id, "set": "ISEKAI-10", "query": f"{label}-00001", "query_image": "images/q.png",
            "query_concept": label, "label": label, "positive_label": positive, "negative_label": negative,
            "positive_concept": positive, "negative_concept": negative, "group_id": "g",
            "positive_support": ["p-00000"], "negative_support": ["n-00000"], "max_shot": 1, "pair_index": 0,
            "similarity": 1.5}


def _lcl_line(label, positive="cactihog", negative="hedgehog"):
    return {"image_name": f"{label}/q.png", "positive_list": ["a.png"], "negative_list": ["b.png"],
            "positive_promt": positive, "negative_promt": negative, "label_name": label}


def _write_chexpert_like_split(folder):
    """A multi-label split folder written by the real producer (isekai_gen.manyicl.writer)."""
    from isekai_gen.manyicl.recipe import Recipe
    from isekai_gen.manyicl.writer import split_meta, write_split_files

    recipe = Recipe("chexpert", "CheXpert", ("Atelectasis", "Edema", "Pleural Effusion"), 1, 1, ("train",),
                    ("valid",), "patient", "test", False, True)
    test_labels = [["Edema"], [], ["Atelectasis", "Pleural Effusion"], ["Edema", "Pleural Effusion"]]
    rows = [{"file_name": "d0.jpg", "side": "demo", "labels": ["Edema"], "group": "p0", "source_path": "x",
             "source_split": "train", "stratum": "Edema:positive", "demo_rank": 0}]
    rows += [{"file_name": f"t{k}.jpg", "side": "test", "labels": names, "group": f"p{k + 1}", "source_path": "x",
              "source_split": "valid", "stratum": "Edema:negative", "demo_rank": None}
             for k, names in enumerate(test_labels)]
    folder.mkdir(parents=True)
    write_split_files(folder, recipe, rows, split_meta(recipe, rows, 0, "none", {}))


def test_split_jsonl_and_test_csv_of_a_multilabel_split_agree(tmp_path):
    folder = tmp_path / "benchmarks" / "chexpert"
    _write_chexpert_like_split(folder)
    predictions = _jsonl(tmp_path / "p.jsonl", [
        {"id": "t0.jpg", "prediction": "edema"}, {"id": "t1.jpg", "prediction": []},
        {"id": "t2.jpg", "prediction": ["Atelectasis"]}, {"id": "d0.jpg", "prediction": "edema"}])
    from_split = score(folder / "split.jsonl", [predictions], parse_failures="drop", bootstrap=0, ignore_unknown_ids=True)
    from_csv = score(folder / "test.csv", [predictions], parse_failures="drop", bootstrap=0, ignore_unknown_ids=True)
    assert from_split["truth"]["classes"] == ["Atelectasis", "Edema", "Pleural Effusion"]
    assert from_split["truth"]["multilabel"] and from_split["metric"] == "macro_f1"
    for key in ("value", "n_scored", "per_class", "confusion", "failures"):
        assert from_split[key] == from_csv[key]
    # t0 and t1 exactly right, t2 misses Pleural Effusion: F1 = (1 + 1 + 0) / 3
    assert (from_split["n_scored"], from_split["value"]) == (3, pytest.approx(200 / 3))
    assert from_split["n_unknown_ids"] == 1 and from_split["failures"]["missing"] == 1   # demo id; t3
    # --strict refuses unknown ids even with --ignore-unknown-ids; the error says they are demo-side ids
    with pytest.raises(UserError, match=r"p\.jsonl: 1 of 4 prediction ids are not ids of the truth file .*split\.jsonl "
                                        r"\(first: 'd0\.jpg'\); these are demonstration ids of the same split"):
        score(folder / "split.jsonl", [predictions], strict=True, ignore_unknown_ids=True)
    known = _jsonl(tmp_path / "known.jsonl", [{"id": "t0.jpg", "prediction": "edema"}])
    with pytest.raises(UserError, match=r"known\.jsonl: no prediction for 3 truth ids \(first: 't1\.jpg'\)"):
        score(folder / "split.jsonl", [known], strict=True)


def test_episodes_truth_is_two_way(tmp_path):
    truth = _jsonl(tmp_path / "episodes.jsonl", [_episode("e-0", "cactihog", "cactihog", "hedgehog"),
                                                 _episode("e-1", "hedgehog", "cactihog", "hedgehog")])
    # ids are episode ids; each reply is matched against its episode's two labels only
    predictions = _jsonl(tmp_path / "p.jsonl", [{"id": "e-0", "prediction": 'there is "cactihog" in the image'},
                                                {"id": "e-1", "prediction": "a Cactihog"}])
    report = score(truth, [predictions], bootstrap=0)
    assert report["value"] == 50.0 and report["truth"]["kind"] == "episodes"


def test_lcl_annotations_and_prediction_lines_with_compat(tmp_path):
    truth = _jsonl(tmp_path / "ISEKAI-10.json", [_lcl_line("cactihog"), _lcl_line("hedgehog"),
                                                 _lcl_line("cactihog"), _lcl_line("hedgehog")])
    predictions = _jsonl(tmp_path / "predict_extra_prediction.jsonl", [
        {"pred": 'there is "cactihog" in the image.', "target": 'there is "cactihog" in the image.'},
        {"pred": 'there is "Hedgehog" in the image.', "target": 'there is "hedgehog" in the image.'},
        {"pred": "cactihog or hedgehog", "target": 'there is "cactihog" in the image.'},
        {"pred": "hedgehog", "target": 'there is "hedgehog" in the image.'},
    ])
    ours = score(truth, [predictions], bootstrap=0)
    assert ours["runs"][0]["format"] == "lcl"
    assert (ours["value"], ours["failures"]["several_labels"]) == (75.0, 1)
    compat = score(truth, [predictions], bootstrap=0, lcl_compat=True)
    assert compat["value"] == 50.0 and compat["confusion"] is None     # capitalised "Hedgehog" is wrong there
    assert compat["per_class"]["hedgehog"] == {"support": 2, "accuracy": 50.0}
    short = _jsonl(tmp_path / "short.jsonl", [{"pred": "x"}])
    with pytest.raises(UserError, match=r"short\.jsonl: 1 prediction lines but the truth has 4 items"):
        score(truth, [short])
    shifted = _jsonl(tmp_path / "shifted.jsonl", [{"pred": "x", "target": 'there is "hedgehog" in the image'}] * 4)
    with pytest.raises(UserError, match=r"shifted\.jsonl:1: target .* does not match"):
        score(truth, [shifted])


def test_csv_predictions_and_pickle_from_file_names(tmp_path):
    truth = tmp_path / "test.csv"
    truth.write_text(",forest,river\na.jpg,1.0,0.0\nb.jpg,0.0,1.0\n")
    predictions = tmp_path / "p.csv"
    predictions.write_text('id,prediction,shots\na.jpg,"Forest, clearly",0\nb.jpg,forest,0\n')
    assert score(truth, [predictions], bootstrap=0)["value"] == 50.0
    for shots, reply in ((0, "Answer Choice 1: river\nAnswer Choice 2: river"), (20, "Answer Choice 1: forest\nAnswer Choice 2: river")):
        (tmp_path / f"Set_{shots}shot_GPT4o_2.pkl").write_bytes(pickle.dumps({"['a.jpg', 'b.jpg']": reply}))
    report = score(truth, [tmp_path / "Set_0shot_GPT4o_2.pkl", tmp_path / "Set_20shot_GPT4o_2.pkl"], bootstrap=0)
    assert [(p["shots"], p["value"]) for p in report["curve"]] == [(0, 50.0), (20, 100.0)]
    assert report["data_efficiency"][0]["slope"] == pytest.approx(50 / __import__("math").log10(21))


@pytest.mark.parametrize("name, content, message", [
    ("dup.jsonl", b'{"id": "a.jpg", "prediction": "x"}\n{"id": "a.jpg", "prediction": "y"}\n',
     r"dup\.jsonl:2: duplicate id 'a\.jpg' \(also at .*dup\.jsonl:1\)"),
    ("empty.jsonl", b"\n\n", r"empty\.jsonl: file is empty"),
    ("bom.jsonl", b"\xef\xbb\xbf\n", r"bom\.jsonl: file is empty"),
    ("latin1.jsonl", b'{"id": "a.jpg", "prediction": "x"}\n{"id": "b.jpg", "prediction": "caf\xe9"}\n',
     r"latin1\.jsonl:2: not UTF-8 text"),
    ("bad.jsonl", b'{"id": "a.jpg", "prediction": "x"}\n{"id": "b.jpg", "prediction": \n', r"bad\.jsonl:2: invalid JSON"),
    ("first.jsonl", b'\n{"id": "a.jpg", \n', r"first\.jsonl:2: invalid JSON"),
    ("array.jsonl", b'{"id": "a.jpg", "prediction": "x"}\n["b.jpg", "y"]\n', r"array\.jsonl:2: expected a JSON object"),
    ("schema.jsonl", b'{"id": "a.jpg", "prediction": "x", "shots": -1}\n', r"schema\.jsonl:1: at shots: -1 is less than"),
    ("nocol.csv", b"id,answer\na.jpg,x\n", r"nocol\.csv:1: missing column 'prediction'"),
    ("header.csv", b"id,prediction\n", r"header\.csv: no predictions in the file"),
    ("shots.csv", b"id,prediction,shots\na.jpg,x,1.5\n", r"shots\.csv:2: column 'shots' must be a whole number, got '1\.5'"),
    ("shape.pkl", pickle.dumps(["not", "a", "dict"]), r"shape\.pkl: expected a dict"),
    ("keys.pkl", pickle.dumps({"token_usage": (1, 2)}), r"keys\.pkl: no '\[query ids\]' keys"),
    ("values.pkl", pickle.dumps({"['a.jpg']": 3}), r"values\.pkl: the response of key .* is int"),
    ("garbage.txt", b"\x00\x01garbage", r"garbage\.txt: cannot tell the prediction format"),
    ("quote.csv", b"id,prediction\na.jpg,\"x\n" + b"b.jpg,y\n" * 20000, r"quote\.csv:\d+: malformed CSV \(field larger than field limit"),
])
def test_bad_prediction_files_give_one_line_errors(tmp_path, name, content, message):
    truth = tmp_path / "test.csv"
    truth.write_text(",forest,river\na.jpg,1.0,0.0\nb.jpg,0.0,1.0\n")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        score(truth, [tmp_path / name])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content, message", [
    (",forest,river\na.jpg,1.0,0.0\na.jpg,0.0,1.0\n", r"test\.csv:3: duplicate id 'a\.jpg'"),
    (",forest,river\na.jpg,1.0,yes\n", r"test\.csv:2: class columns must be 0 or 1, got 'yes'"),
    (",forest,river\na.jpg,1.0\n", r"test\.csv:2: 2 cells, the header has 3"),
    (",forest,forest\na.jpg,1.0,0.0\n", r"test\.csv:1: duplicate class names"),
    (",forest,river\n\"a.jpg,1.0,0.0\n" + "b.jpg,0.0,1.0\n" * 20000, r"test\.csv:\d+: malformed CSV \(field larger"),
])
def test_bad_truth_files_give_one_line_errors(tmp_path, content, message):
    (tmp_path / "test.csv").write_text(content)
    (tmp_path / "p.jsonl").write_text('{"id": "a.jpg", "prediction": "x"}\n')
    with pytest.raises(UserError, match=message):
        score(tmp_path / "test.csv", [tmp_path / "p.jsonl"])


def test_cli_writes_reports_deterministically_and_fails_cleanly(tmp_path):
    truth = tmp_path / "test.csv"
    truth.write_text(",forest,river\na.jpg,1.0,0.0\nb.jpg,0.0,1.0\nc.jpg,0.0,1.0\n")
    _jsonl(tmp_path / "p0.jsonl", [{"id": i, "prediction": "river", "shots": 0} for i in ("a.jpg", "b.jpg", "c.jpg")])
    _jsonl(tmp_path / "p8.jsonl", [{"id": i, "prediction": p, "shots": 8}
                                   for i, p in (("a.jpg", "forest"), ("b.jpg", "river"), ("c.jpg", "?"))])
    runner = CliRunner()
    outputs = []
    for out in ("out1", "out2"):
        result = runner.invoke(main, ["score", "--truth", str(truth), "--predictions", str(tmp_path / "p0.jsonl"),
                                      str(tmp_path / "p8.jsonl"), "--out", str(tmp_path / out), "--bootstrap", "50"])
        assert result.exit_code == 0, result.output
        outputs.append({f.name: f.read_bytes() for f in sorted((tmp_path / out).iterdir())})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["curve.png", "report.json", "report.md"]
    assert "ICL data efficiency" in result.output and "accuracy 66.67" in result.output
    report = json.loads(outputs[0]["report.json"])
    validate(report, "score_report", "report.json")
    assert {"metric", "value", "n_total", "n_scored", "n_unparsed", "std", "ci95", "per_class", "confusion",
            "curve", "data_efficiency"} <= set(report)
    with Image.open(tmp_path / "out1" / "curve.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    # A later report without a shot curve does not leave the earlier curve beside it.
    result = runner.invoke(main, ["score", "--truth", str(truth), "--predictions", str(tmp_path / "p0.jsonl"),
                                  "--out", str(tmp_path / "out1"), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["report.json", "report.md"]
    (tmp_path / "bad.jsonl").write_text('{"id": "a.jpg"}\n')
    result = runner.invoke(main, ["score", "--truth", str(truth), "--predictions", str(tmp_path / "bad.jsonl"),
                                  "--out", str(tmp_path / "out3")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "bad.jsonl:1: " in result.output and "'prediction' is a required" in result.output
    assert not (tmp_path / "out3").exists()


def test_negative_seed_or_bootstrap_is_a_one_line_error(tmp_path):
    truth = tmp_path / "test.csv"
    truth.write_text(",forest,river\na.jpg,1.0,0.0\n")
    predictions = _jsonl(tmp_path / "p.jsonl", [{"id": "a.jpg", "prediction": "forest"}])
    with pytest.raises(UserError, match=r"^--seed must be >= 0, got -1$"):
        score(truth, [predictions], seed=-1)
    with pytest.raises(UserError, match=r"^--bootstrap must be >= 0, got -2$"):
        score(truth, [predictions], bootstrap=-2)
    result = CliRunner().invoke(main, ["score", "--truth", str(truth), "--predictions", str(predictions), "--seed", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_write_report_refuses_a_malformed_report(tmp_path):
    with pytest.raises(UserError, match="score report"):
        write_report({"metric": "accuracy"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _split_csv(path, ids, classes=("forest", "river")):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("," + ",".join(classes) + "\n" + "".join(
        f"{item}," + ",".join("1.0" if c == k % len(classes) else "0.0" for c in range(len(classes))) + "\n"
        for k, item in enumerate(ids)))
    return path


def _cli_score(*args):
    return CliRunner().invoke(main, ["score", *map(str, args), "--bootstrap", "0"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "pkl"])
def test_predictions_of_another_dataset_are_refused_for_every_format(tmp_path, fmt):
    """UCMerced answers against EuroSAT's test.csv: no id in common, and the sibling folder says why."""
    benchmarks = tmp_path / "benchmarks"
    truth = _split_csv(benchmarks / "EuroSAT" / "test.csv", [f"Forest_{k}.jpg" for k in range(6)])
    ucmerced = [f"forest{k:02d}.tif" for k in range(6)]
    _split_csv(benchmarks / "UCMerced" / "test.csv", ucmerced)
    if fmt == "jsonl":
        predictions = _jsonl(tmp_path / "p.jsonl", [{"id": item, "prediction": "forest"} for item in ucmerced])
    elif fmt == "csv":
        predictions = tmp_path / "p.csv"
        predictions.write_text("id,prediction\n" + "".join(f"{item},forest\n" for item in ucmerced))
    else:
        predictions = tmp_path / "UCMerced_0shot_GPT4o_6.pkl"
        predictions.write_bytes(pickle.dumps({str(ucmerced): "\n".join(
            f"Answer Choice {q}: forest" for q in range(1, 7))}))
    for extra in ((), ("--ignore-unknown-ids",)):   # no id in common is refused even then
        result = _cli_score("--truth", truth, "--predictions", predictions, *extra)
        assert result.exit_code == 1
        assert result.output.count("\n") == 1
        assert f"{predictions.name}: none of its 6 prediction ids is an id of the truth file {truth} " \
               "(first: 'forest00.tif', 'forest01.tif', 'forest02.tif', ...); these look like UCMerced's test.csv " \
               "file names; the truth is EuroSAT's test.csv" in result.output


def test_unknown_ids_are_refused_unless_ignored(tmp_path):
    truth = _split_csv(tmp_path / "Set" / "test.csv", ["a.jpg", "b.jpg", "c.jpg"])
    _split_csv(tmp_path / "Set" / "demo.csv", ["d0.jpg", "d1.jpg"])
    predictions = _jsonl(tmp_path / "p.jsonl", [{"id": i, "prediction": "forest"} for i in ("a.jpg", "b.jpg", "d0.jpg")])
    result = _cli_score("--truth", truth, "--predictions", predictions)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "p.jsonl: 1 of 3 prediction ids are not ids of the truth file" in result.output
    assert "(first: 'd0.jpg'); these are demonstration ids of the same split (the demo side of Set's test.csv), " \
           "not test items; pass --ignore-unknown-ids to score the others anyway" in result.output
    result = _cli_score("--truth", truth, "--predictions", predictions, "--ignore-unknown-ids")
    assert result.exit_code == 0, result.output
    assert "unknown ids 1" in result.output and "missing 1" in result.output


def test_other_id_shapes_name_the_likely_cause(tmp_path):
    truth = _split_csv(tmp_path / "test.csv", ["a.jpg", "b.jpg"])
    predictions = _jsonl(tmp_path / "p.jsonl", [{"id": "a.jpg", "prediction": "forest"},
                                                {"id": "images/b.png", "prediction": "river"}])
    with pytest.raises(UserError, match=r"first: 'images/b\.png'\); prediction ids end in \.png but the truth's in "
                                        r"\.jpg: predictions of another dataset\?"):
        score(truth, [predictions])


def test_lcl_ids_shifted_by_one_name_both_conventions(tmp_path):
    truth = _jsonl(tmp_path / "ISEKAI-10.json", [_lcl_line("cactihog"), _lcl_line("hedgehog")] * 20)
    zero_based = _jsonl(tmp_path / "p.jsonl", [{"id": k, "prediction": "cactihog"} for k in range(40)])
    for extra in ((), ("--ignore-unknown-ids",)):
        result = _cli_score("--truth", truth, "--predictions", zero_based, *extra)
        assert result.exit_code == 1 and result.output.count("\n") == 1
        assert f"p.jsonl: prediction ids 0..39 (0-based) are the 1-based line numbers of the LCL file {truth} " \
               "(1..40, 1-based) shifted by -1: every item would be scored against its neighbour's label; " \
               "renumber the predictions 1-based" in result.output
    padded = _jsonl(tmp_path / "padded.jsonl", [{"id": f"{k:02d}", "prediction": "cactihog"} for k in range(1, 41)])
    result = _cli_score("--truth", truth, "--predictions", padded)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "padded.jsonl: 9 of 40 prediction ids are not ids of the truth file" in result.output
    assert "(first: '01', '02', '03', ...); the prediction ids are the truth's numbers written another way ('01' for " \
           "'1', leading zeros?): write them as the truth does" in result.output
    one_based = _jsonl(tmp_path / "ok.jsonl", [{"id": k, "prediction": "cactihog"} for k in range(1, 41)])
    assert _cli_score("--truth", truth, "--predictions", one_based).exit_code == 0


@pytest.mark.parametrize("content, message", [
    # a stray quote used to swallow every later line into one prediction, scored as a plausible number
    ('id,prediction\na.jpg,"forest\nb.jpg,river\nc.jpg,river\n',
     r"p\.csv:2: malformed CSV \(unexpected end of data; the record starting on this line runs to line 4: "
     r"an unclosed '\"'\?\)"),
    ('id,prediction\na.jpg,"for"est\nb.jpg,river\n', r"p\.csv:2: malformed CSV \(',' expected after '\"'\)"),
    ("id,prediction\na.jpg\nb.jpg,river\n", r"p\.csv:2: 1 cells, the header has 2"),
])
def test_prediction_csv_that_does_not_parse_cleanly_names_the_line(tmp_path, content, message):
    truth = _split_csv(tmp_path / "test.csv", ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "p.csv").write_text(content)
    result = _cli_score("--truth", truth, "--predictions", tmp_path / "p.csv")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert re.search(message, result.output), result.output


def test_truth_csv_with_a_stray_quote_names_the_line(tmp_path):
    (tmp_path / "test.csv").write_text(',forest,river\na.jpg,1.0,0.0\n"b.jpg,0.0,1.0\nc.jpg,0.0,1.0\n')
    predictions = _jsonl(tmp_path / "p.jsonl", [{"id": "a.jpg", "prediction": "forest"}])
    result = _cli_score("--truth", tmp_path / "test.csv", "--predictions", predictions)
    assert result.exit_code == 1
    assert "test.csv:3: malformed CSV (unexpected end of data; the record starting on this line runs to line 4" \
           in result.output


def test_replies_of_another_dataset_with_the_same_file_names_are_refused(tmp_path):
    """Every id fits (both datasets call their images 0000.jpg ...), but no reply names a class of this truth."""
    ids = [f"{k:04d}.jpg" for k in range(25)]
    truth = _split_csv(tmp_path / "EuroSAT" / "test.csv", ids, classes=("Forest", "River", "SeaLake"))
    other = _jsonl(tmp_path / "p.jsonl", [{"id": item, "prediction": f"Answer: {('airplane', 'beach')[k % 2]}"}
                                          for k, item in enumerate(ids)])
    result = _cli_score("--truth", truth, "--predictions", other)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"p.jsonl: none of its 25 replies names a class of the truth file {truth} (Forest, River, " \
           "SeaLake; first reply 'Answer: airplane'): predictions for another dataset with the same file names?" \
           in result.output
    # one reply naming a class of the truth, or too few replies to tell, is a (bad) score, not a refusal
    one_fits = _jsonl(tmp_path / "one.jsonl", [{"id": ids[0], "prediction": "river"}] + [
        {"id": item, "prediction": "airplane"} for item in ids[1:]])
    assert _cli_score("--truth", truth, "--predictions", one_fits).exit_code == 0
    few = _jsonl(tmp_path / "few.jsonl", [{"id": item, "prediction": "airplane"} for item in ids[:19]])
    assert _cli_score("--truth", truth, "--predictions", few).exit_code == 0
    # eval.py's rule reads an empty answer as "no label": a run of empty answers is scored, not called foreign
    empty = _jsonl(tmp_path / "empty.jsonl", [{"id": item, "prediction": " "} for item in ids])
    assert _cli_score("--truth", truth, "--predictions", empty, "--parse-failures", "manyicl").exit_code == 0


@pytest.mark.parametrize("truth_kind", ["csv", "episodes"])
def test_lcl_prediction_lines_are_refused_against_a_truth_without_their_order(tmp_path, truth_kind):
    if truth_kind == "csv":
        truth = _split_csv(tmp_path / "test.csv", ["a.jpg", "b.jpg"])
    else:
        truth = _jsonl(tmp_path / "episodes.jsonl", [_episode("e-0", "cactihog", "cactihog", "hedgehog"),
                                                     _episode("e-1", "hedgehog", "cactihog", "hedgehog")])
    lines = _jsonl(tmp_path / "predict_extra_prediction.jsonl", [{"pred": "forest"}, {"pred": "river"}])
    result = _cli_score("--truth", truth, "--predictions", lines)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "predict_extra_prediction.jsonl: LCL prediction lines carry no id and are matched by order, so they can " \
           f"only be scored against the LCL ISEKAI-*.json file they were made for, not the " \
           f"{'manyicl-csv' if truth_kind == 'csv' else 'episodes'} truth {truth}" in result.output

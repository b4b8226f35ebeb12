"""Tests for studykit.cli.score: the shipped examples, the accepted line shapes, bad files, CLI wiring."""

from __future__ import annotations

import argparse
import json

import pytest

from studykit.cli import score
from studykit import tasks

TOY = tasks.get("toy").load("test")


def toy_line(problem, ans):
    return f"<think> sum {problem.answer} </think> <answer> {ans} </answer>"


def test_toy_example_scores():
    report = score.score_file(score.EXAMPLES_DIR / "toy_completions.jsonl", "toy", ks=[1, 2, 8])
    assert [p.correct for p in report.problems] == [7, 3, 0, 1]
    assert [p.n for p in report.problems] == [8, 8, 8, 8]
    assert [p.format_rate for p in report.problems] == [1.0, 0.875, 0.625, 0.75]
    assert report.avg_at_n == pytest.approx(11 / 32)
    assert report.pass_at_k[1] == pytest.approx(11 / 32)
    assert report.pass_at_k[8] == pytest.approx(0.75)
    # problem 2 of the example: a wrong answer is the majority although 3 samples are right
    assert [p.majority_correct for p in report.problems] == [True, False, False, False]
    assert report.maj_at_n == pytest.approx(0.25)


def test_cli_example_toy_json_and_skipped_k(capsys):
    assert score.main(["--example", "toy", "--k", "1", "4", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["pass_at_k"]) == {"1", "4"} and out["skipped_ks"] == [16]
    assert out["task"] == "toy" and len(out["problems"]) == 4
    assert score.main(["--example", "toy"]) == 0
    table = capsys.readouterr().out
    assert "toy-" in table and "pass@8" in table and "maj@n" in table


def test_math500_example_counts_equivalent_answers():
    """The example holds equivalent answers written differently (14/3 vs \\dfrac{28}{6}, \\sqrt{117} vs
    3\\sqrt{13}, .15 vs 0.150, '7, 5, 3' vs '3, 5, 7'); each counts as correct and votes together."""
    report = score.score_file(score.EXAMPLES_DIR / "math500_completions.jsonl", "math500")
    got = {p.id: (p.n, p.correct, p.majority_correct) for p in report.problems}
    assert got == {
        "math500-2": (6, 4, True),
        "math500-8": (5, 3, True),  # by string equality the wrong 3\\sqrt{5} (x2) would win the vote
        "math500-53": (4, 2, True),
        "math500-54": (5, 3, True),
        "math500-36": (5, 2, False),  # '3, 7' and '7, 3' form the wrong majority
    }
    assert report.maj_at_n == pytest.approx(0.8)
    assert report.avg_at_n == pytest.approx((4 / 6 + 3 / 5 + 2 / 4 + 3 / 5 + 2 / 5) / 5)
    assert list(report.pass_at_k) == [1, 2, 4] and report.pass_at_k[4] == pytest.approx(1.0)
    assert score.main(["--example", "math500", "--k", "1", "8"]) == 0


def test_accepted_shapes(tmp_path):
    p0, p1 = TOY[0], TOY[1]
    right0, right1 = toy_line(p0, p0.answer), toy_line(p1, p1.answer)
    lines = [
        {"problem_id": p0.id, "completion": right0},
        {"id": p0.id, "text": toy_line(p0, 0)},
        {"problem_id": p0.id, "completions": [right0, "nothing"]},
        {"id": "cmpl-1", "problem_id": p1.id, "choices": [{"text": right1}, {"text": "x"}]},
        {"problem_id": p1.id, "choices": [{"message": {"role": "assistant", "content": right1}}]},
        {"id": "batch_1", "custom_id": p1.id, "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "y"}}]}}},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    report = score.score_file(path, "toy")
    assert [(p.id, p.n, p.correct) for p in report.problems] == [(p0.id, 4, 2), (p1.id, 4, 2)]
    assert list(report.pass_at_k) == [1, 2, 4]


def test_train_split_ids_are_found(tmp_path):
    train = tasks.get("toy").load("train")[0]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"problem_id": train.id, "completion": toy_line(train, train.answer)}) + "\n")
    assert score.score_file(path, "toy").problems[0].correct == 1


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"problem_id": "toy-11111", "completion": "a"}\n', r"c\.jsonl:1: unknown problem id 'toy-11111'"),
        ('{"problem_id": "%s", "completion": "a"}\n{not json}\n', r"c\.jsonl:2: not valid JSON"),
        ('{"problem_id": "%s", "answer": "a"}\n', r"c\.jsonl:1: no completion found"),
        ('{"completion": "a"}\n', r"c\.jsonl:1: missing problem id"),
        ('[1, 2]\n', r"c\.jsonl:1: expected a JSON object"),
        ('{"custom_id": "%s", "response": null, "error": "boom"}\n', r"c\.jsonl:1: batch request failed"),
        ('{"problem_id": "%s", "choices": [{"logprobs": 1}]}\n', r"c\.jsonl:1: each choice needs"),
        ("\n\n", r"no completions"),
    ],
)
def test_bad_files_name_the_line(tmp_path, content, match):
    path = tmp_path / "c.jsonl"
    path.write_text(content.replace("%s", TOY[0].id))
    with pytest.raises(ValueError, match=match):
        score.score_file(path, "toy")


def test_cli_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem_id": "nope", "completion": "a"}\n')
    assert score.main([str(bad), "--task", "toy"]) == 2
    assert "bad.jsonl:1: unknown problem id 'nope'" in capsys.readouterr().err
    assert score.main([str(tmp_path / "missing.jsonl"), "--task", "toy"]) == 2
    assert "not found" in capsys.readouterr().err
    assert score.main([str(bad)]) == 2
    assert "--task is required" in capsys.readouterr().err
    assert score.main([str(bad), "--task", "nosuchtask"]) == 2
    assert "unknown task 'nosuchtask'" in capsys.readouterr().err
    assert score.main([]) == 2


def test_add_score_parser_wires_into_a_cli():
    parser = argparse.ArgumentParser(prog="studykit")
    sub = parser.add_subparsers(dest="command", required=True)
    score.add_score_parser(sub)
    args = parser.parse_args(["score", "--example", "toy", "--k", "1", "2"])
    assert args.ks == [1, 2] and args.func(args) == 0


def test_a_binary_file_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps({"problem_id": TOY[0].id, "completion": "a"}).encode() + b"\n\x89PNG\r\n\x1a\n\x00")
    with pytest.raises(ValueError, match=r"c\.jsonl:2: not UTF-8 text \(byte 0x89 at column 1\)"):
        score.score_file(path, "toy")
    assert score.main([str(path), "--task", "toy"]) == 2
    assert "c.jsonl:2: not UTF-8" in capsys.readouterr().err
    bom = tmp_path / "bom.jsonl"  # a UTF-8 byte-order mark is text, not an error
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"problem_id": TOY[0].id, "completion": "a"}).encode() + b"\n")
    assert score.score_file(bom, "toy").problems[0].n == 1


def _towers(tmp_path, count):
    problems = tasks.get("math500").load("test")[:count]
    path = tmp_path / "towers.jsonl"
    lines = [{"problem_id": p.id, "completion": "<think> x </think> <answer> 10^{10^{10^{%d}}} </answer>" % (10 + i)}
             for i, p in enumerate(problems)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_pathological_answers_are_bounded_by_the_file_budget_and_reported(tmp_path, capsys):
    # Regression: each power tower cost ~2.5 s with no overall bound (30 of them: 77 s), silently scored 0.
    import time

    from studykit.scoring import verify

    verify.warm_up(verify.pool_size())  # worker start-up is not what this test measures
    path = _towers(tmp_path, 30)
    t0 = time.monotonic()
    report = score.score_file(path, "math500", budget_s=3.0)
    assert time.monotonic() - t0 < 3.0 + 2.5 + 2.0  # the budget, one check's grace, thread teardown
    assert report.over_budget and report.skipped > 0 and report.timed_out + report.skipped >= 25
    assert sum(p.undecided > 0 for p in report.problems) >= 25 and "budget of 3 s spent" in report.warning()
    assert "WARNING: verifier budget" in report.format_table()
    assert score.main([str(path), "--task", "math500", "--budget-s", "2", "--json"]) == score.OVER_BUDGET_EXIT
    out, err = capsys.readouterr()
    assert json.loads(out)["over_budget"] is True and "not made" in err


def test_timed_out_checks_are_reported_within_the_budget(tmp_path):
    report = score.score_file(_towers(tmp_path, 2), "math500", task_options={"timeout_s": 0.3}, budget_s=60)
    assert not report.over_budget and report.timed_out >= 1  # (a warm worker may decide one in time)
    assert f"{report.timed_out} answer checks timed out" in report.warning()
    assert sum(p.undecided for p in report.problems) == report.timed_out

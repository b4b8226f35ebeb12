"""`studykit score --reward` with a reward plug-in (issue 22): by import path and by entry point, options validated as
`reward.options` is, run in the bounded wrapper training uses; a bad plug-in is an error naming it, exit 2, no report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from studykit.cli import commands as cli
from studykit.cli.score import EXAMPLES, EXAMPLES_DIR, read_completions
from studykit.scoring import plugins, rewards
from studykit.tasks import get as get_task
from plugin_helpers import EXAMPLE, loose_module

REWARD = "my_claim.rewards:short_answer"
TOY_FILE = EXAMPLES_DIR / EXAMPLES["toy"][0]


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))



def _score(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["score", "--example", "toy", "--json", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _expected_short(max_chars: int) -> dict[str, float]:
    """Per problem: mean over completions of (ground truth with gate) x (length <= max_chars), computed apart from
    the plug-in: studykit's own ground-truth reward and the text length."""
    task = get_task("toy")
    by_id = {p.id: p for p in task.load("test")}
    groups: dict[str, list[str]] = {}
    for _, pid, texts in read_completions(TOY_FILE):
        groups.setdefault(pid, []).extend(texts)
    truth = rewards.get("ground_truth", verify=task.verify)
    return {pid: float(np.mean(truth(texts, by_id[pid]).rewards * [len(t) <= max_chars for t in texts]))
            for pid, texts in groups.items()}


def test_score_pays_a_plugin_reward_by_import_path_with_its_option(capsys, example):
    lengths = sorted(len(t) for _, _, texts in read_completions(TOY_FILE) for t in texts)
    cut = lengths[len(lengths) // 2]  # some right answers are paid, some are too long
    code, out, err = _score(capsys, "--reward", REWARD, "--reward-option", f"max_chars={cut}")
    assert code == 0, err
    report = json.loads(out)
    expected = _expected_short(cut)
    assert {p["id"]: p["reward_mean"] for p in report["problems"]} == pytest.approx(expected)
    assert 0 < report["reward"]["mean"] < report["avg_at_n"]  # the length cut removed some correct answers
    assert report["reward"]["mean"] == pytest.approx(np.mean(list(expected.values())))
    assert report["reward"]["identity"].startswith(f"{REWARD}#")
    assert report["reward"]["options"] == {"max_chars": cut} and report["reward"]["timeouts"] == []
    assert cli.main(["score", "--example", "toy", "--reward", REWARD]) == 0
    table = capsys.readouterr().out
    assert re.search(rf"\nreward  0\.\d{{4}}  \({re.escape(REWARD)}#\w+, options {{'max_chars': 200}}", table), table


def test_score_takes_an_entry_point_name(tmp_path, monkeypatch, capsys, example):
    info = tmp_path / "site" / "my_claim_fake-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-claim-fake\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[studykit.rewards]\nshort_answer = {REWARD}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    code, out, err = _score(capsys, "--reward", "short_answer", "--reward-option", "max_chars=1000000")
    assert code == 0, err
    report = json.loads(out)
    assert report["reward"]["identity"].startswith(f"{REWARD}==0.3.0#")
    assert {p["id"]: p["reward_mean"] for p in report["problems"]} == pytest.approx(_expected_short(10**6))


BAD = {
    "missing module": (["--reward", "no_such_mod.rewards:fn"], "cannot import module 'no_such_mod.rewards'"),
    "option out of range": (["--reward", REWARD, "--reward-option", "max_chars=0"],
                            r"--reward-option \(reward.options\)(.|\n)*option 'max_chars': got 0"),
    "unknown option": (["--reward", REWARD, "--reward-option", "cutoff=3"], "cutoff"),
    "malformed option": (["--reward", REWARD, "--reward-option", "max_chars"], "expected KEY=VALUE"),
    "option twice": (["--reward", REWARD, "--reward-option", "max_chars=3", "--reward-option", "max_chars=4"],
                     "given twice"),
    "option without reward": (["--reward-option", "max_chars=3"], "given without --reward"),
    "shipped with options": (["--reward", "ground_truth", "--reward-option", "x=1"], "options reach plug-ins only"),
    "needs log-probs": (["--reward", "self_certainty"], "token log-probs"),
    "p without random": (["--reward", REWARD, "--reward-p", "0.3"], "only with 'random'"),
    "not a reward": (["--reward", "my_claim.estimators:centred_sign"], "has signature"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_reward_is_refused_by_name_with_no_report(capsys, example, case):
    args, expected = BAD[case]
    code, out, err = _score(capsys, *args)
    assert code == 2 and out == ""
    assert "studykit score: error:" in err
    assert re.search(expected, err), err


def test_a_raising_plugin_stops_score_named(tmp_path, monkeypatch, capsys):
    mod = loose_module(tmp_path, monkeypatch, "score_raises", """
        def reward(completions, problem, verify, rng):
            raise KeyError("nope")
    """)
    code, out, err = _score(capsys, "--reward", f"{mod}:reward")
    assert code == 2 and out == ""
    assert f"reward plug-in '{mod}:reward'" in err and "KeyError" in err


def test_a_hanging_plugin_is_cut_and_reported(tmp_path, monkeypatch, capsys):
    mod = loose_module(tmp_path, monkeypatch, "score_hangs", """
        def reward(completions, problem, verify, rng):
            while True:
                pass
    """)
    monkeypatch.setattr(plugins, "TIME_LIMIT_S", 0.2)
    code, out, err = _score(capsys, "--reward", f"{mod}:reward")
    assert code == 0, err
    report = json.loads(out)
    assert report["reward"]["mean"] == 0.0
    assert sorted(report["reward"]["timeouts"]) == sorted(p["id"] for p in report["problems"])


def test_shipped_random_takes_p_and_seed(capsys):
    means = []
    for seed in (0, 0, 1):
        code, out, err = _score(capsys, "--reward", "random", "--reward-p", "1.0", "--no-reward-format-gate",
                                "--reward-seed", str(seed))
        assert code == 0, err
        means.append(json.loads(out)["reward"]["mean"])
    assert means == [1.0, 1.0, 1.0]  # p = 1 pays everything, ungated
    code, out, _ = _score(capsys, "--reward", "random", "--reward-p", "0.5", "--reward-seed", "3")
    again = _score(capsys, "--reward", "random", "--reward-p", "0.5", "--reward-seed", "3")[1]
    assert json.loads(out)["reward"] == json.loads(again)["reward"]  # seeded

"""Run identity and stored artifacts survive the move to layer folders (0.1 -> 0.2).

- Config hashes are pinned: the default study and the contamination study expand to the same cells with the same
  `config_hash` as at 0.1 (b39a583), so a store made before the move skips every finished cell; the paper grid's
  pin moved once, on purpose (see PINNED). A change that is meant to move a hash updates the digest here and says so in CHANGELOG.md.
- `tests/fixtures/v0_1/` was written by 0.1's code (`make_v0_1_artifacts.py`, run on a b39a583 checkout): a policy
  artifact and a training checkpoint of a 3.6k-parameter Llama, with the logits they gave then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0_1"

# sha256 of the sorted config hashes of every cell, as computed at b39a583 (the last flat-layout commit), except
# where CHANGELOG.md says a fix moved them on purpose
PINNED = {
    "toy": (87, "bbcdca7fd1ff342a"),
    "contamination": (39, "94b1d21444010f38"),
    # 0.1: 968d3529d7e0be06. Moved in 0.2 by one fix: the paper grid's 28 w_reinforce cells train without dynamic
    # sampling (issue 20, item 2), so only their hashes changed.
    "paper": (308, "426587373d6487c2"),
}


def _digest(study: str) -> tuple[int, str]:
    from studykit.study import expand

    hashes = sorted(c.config.config_hash() for c in expand(ROOT / "params" / "studies" / f"{study}.yaml"))
    return len(hashes), hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


@pytest.mark.parametrize("study", sorted(PINNED))
def test_config_hashes_are_those_of_0_1(study, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()  # the paper grid trains on a local DeepScaleR file
    (tmp_path / "data" / "deepscaler.jsonl").write_text('{"problem": "1 + 1?", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)
    assert _digest(study) == PINNED[study]


def _logits(policy, probe: str) -> torch.Tensor:
    ids = policy.tokenizer(probe, return_tensors="pt").input_ids
    policy.model.eval()
    with torch.no_grad():
        return policy.model(ids).logits[0, -1]


def test_a_policy_artifact_written_by_0_1_loads():
    from studykit.policy import load_policy

    expected = json.loads((FIXTURE / "expected.json").read_text())
    policy = load_policy(str(FIXTURE / "policy"))
    assert policy.finetune == "full"
    torch.testing.assert_close(_logits(policy, expected["probe"]), torch.tensor(expected["policy_logits"]),
                               atol=1e-4, rtol=0)

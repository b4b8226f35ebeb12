"""Run identity and stored artifacts survive the move to layer folders (0.1 -> 0.2).

- Config hashes are pinned (PINNED): the move itself changed none; fixes that change what a cell computes moved
  some on purpose, listed beside the pins. The default and contamination studies' training cells keep their 0.1
  hashes, so a store made before the move skips them (only the three alignment cells run again). A change that
  means to move a hash updates the digest here and says so in CHANGELOG.md.
- Stored artifacts in 0.1's format, built here (no weights in git): a policy artifact is a `save_pretrained` folder
  plus `studykit_policy.json`, whose 0.1 form (`tests/fixtures/studykit_policy_v0_1.json`, written by 0.1's
  `write_policy` at b39a583) is copied beside a seeded 3.6k-parameter Llama; it loads and gives the model's logits.
  A 0.1 checkpoint (`torch.save` of a dict: a pickle) is refused by name since 0.2 (issue 21: loading one could run
  code).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
META_V0_1 = Path(__file__).resolve().parent / "fixtures" / "studykit_policy_v0_1.json"
PROBE = "Q 1 + 2 = <think>"

# sha256 of the sorted config hashes of a study's cells. The layer move (0.2) moved none of them; fixes that change
# what a cell computes move them on purpose, and each such move is listed here and in CHANGELOG.md.
# - Training cells of the default and contamination studies: as at 0.1 (b39a583), so a 0.1 store skips them.
TRAINING_AT_0_1 = {"toy": (84, "5e2fb0924c4acfb4"), "contamination": (36, "257a44fb5e5be5a5")}
# - Every cell, as of 0.2. Moved from 0.1: the alignment cells of toy and contamination (the contamination label is
#   partial-prompt answer accuracy now: issue 20, item 3), and every paper cell (W-REINFORCE without dynamic
#   sampling, item 2; truncated importance sampling on by default for vLLM + QLoRA, item 4).
PINNED = {
    "toy": (87, "a7f466e246075a1f"),  # 0.1: bbcdca7fd1ff342a
    "contamination": (39, "6533f0625110c799"),  # 0.1: 94b1d21444010f38
    # issue 24 added 196 cells (noisy_ground_truth and its fn50/fn30fp10 levels, ttrl, the `long` ablation and
    # power_sampling); the 308 cells before it keep their hashes (digest of those alone: c320597620217f65); power
    # sampling over vLLM (model.finetune lora in its 28 cells) moved the digest from c9785786ca7ec3cc, unrun
    "paper": (504, "1926c01a4dac4afc"),  # 0.1: 968d3529d7e0be06
}


def _digest(study: str, training_only: bool = False) -> tuple[int, str]:
    from studykit.study import expand

    cells = expand(ROOT / "params" / "studies" / f"{study}.yaml")
    hashes = sorted(c.config.config_hash() for c in cells if not (training_only and c.config.rq == "alignment"))
    return len(hashes), hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()  # the paper grid trains on a local DeepScaleR file
    (tmp_path / "data" / "deepscaler.jsonl").write_text('{"problem": "1 + 1?", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("study", sorted(PINNED))
def test_config_hashes_are_pinned(study, in_tmp):
    assert _digest(study) == PINNED[study]


@pytest.mark.parametrize("study", sorted(TRAINING_AT_0_1))
def test_training_cells_keep_their_0_1_hashes(study, in_tmp):
    assert _digest(study, training_only=True) == TRAINING_AT_0_1[study]


def _tiny_policy_folder(folder: Path) -> torch.Tensor:
    """A seeded 3.6k-parameter Llama and its tokenizer saved as 0.1 saved a full policy; returns its probe logits."""
    from conftest import build_tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=True)).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    with torch.no_grad():
        return model(tok(PROBE, return_tensors="pt").input_ids).logits[0, -1]


def test_a_policy_artifact_in_the_0_1_format_loads(tmp_path):
    from studykit.policy import load_policy

    folder = tmp_path / "policy"
    want = _tiny_policy_folder(folder)
    (folder / "studykit_policy.json").write_text(META_V0_1.read_text())
    policy = load_policy(str(folder))
    assert policy.finetune == "full"
    ids = policy.tokenizer(PROBE, return_tensors="pt").input_ids
    policy.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(policy.model(ids).logits[0, -1], want, atol=1e-5, rtol=0)


def test_a_checkpoint_in_the_0_1_format_is_refused_by_name_and_never_unpickled(tmp_path, monkeypatch):
    """0.1 pickled the training state (`state.pt`: `torch.save` of optimiser, scheduler, RNG states, step, run id);
    unpickling a file from shared storage can run code (issue 21), so 0.2 refuses it with a message that names the
    file and says what to do, instead of loading it."""
    import random

    import numpy as np

    from studykit.engine import checkpoint

    folder = tmp_path / "ckpt"
    _tiny_policy_folder(folder / "policy")
    torch.save({"optimizer": {"state": {}, "param_groups": []}, "scheduler": {"last_epoch": 1},
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
                "step": 3, "run_id": "0" * 32, "one_shot": None}, folder / "state.pt")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not open a 0.1 state.pt"))
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.peek(folder)
    assert "state.pt" in str(err.value) and "delete" in str(err.value).lower()

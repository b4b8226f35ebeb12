"""studykit.policy.models on the tiny Llama: full / lora / qlora (4-bit NF4 on CPU) load, train, save, restore."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from studykit.policy import models

MODES = ("full", "lora", "qlora")
PROMPT = "Q 1 + 2 ="
TARGET = "<answer> 3 </answer> <eos>"


def _batch(tok):
    prompt = tok(PROMPT, return_tensors="pt").input_ids
    target = tok(TARGET, add_special_tokens=False, return_tensors="pt").input_ids
    return torch.cat([prompt, target], dim=1), prompt.shape[1]


def _target_nll(policy, ids, n_prompt):
    logits = policy.model(input_ids=ids).logits[:, n_prompt - 1:-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, n_prompt:, None]).squeeze(-1)
    return -logp.mean()


def _train(policy, steps=10, lr=1e-2):
    ids, n_prompt = _batch(policy.tokenizer)
    opt = torch.optim.Adam(policy.trainable_parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = _target_nll(policy, ids, n_prompt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module", params=MODES)
def policy(request, tiny_model_dir):
    return models.load_policy(str(tiny_model_dir), finetune=request.param, lora_rank=4, lora_alpha=8, device="cpu")


def test_tokenizer_and_metadata(policy, tiny_model_dir):
    assert policy.tokenizer.padding_side == "left"
    assert policy.tokenizer.pad_token is not None
    assert policy.base_path == str(tiny_model_dir.resolve())
    assert policy.name == str(tiny_model_dir)
    assert policy.device.type == "cpu"


def test_trainable_parameter_sets(policy):
    named = dict(policy.model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    if policy.finetune == "full":
        assert trainable == set(named)
        return
    assert trainable and all("lora_" in n for n in trainable)
    assert {n for n in named if "lora_" in n} == trainable
    has_4bit = any(type(m).__name__ == "Linear4bit" for m in policy.model.modules())
    assert has_4bit == (policy.finetune == "qlora")
    assert len(policy.trainable_parameters()) == len(trainable)


def test_training_raises_target_probability(policy):
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    losses = _train(policy)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses
    changed = [n for n, p in policy.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed  # (for qlora: LoRA weights on 4-bit layers got gradients through the NF4 matmul)
    if policy.finetune == "qlora":
        assert any("q_proj.lora_A" in n for n in changed)


def test_save_and_load_state_round_trip(policy, tiny_model_dir, tmp_path):
    _train(policy, steps=3)
    out = policy.save(tmp_path / "ckpt")
    files = {p.name for p in out.iterdir()}
    if policy.finetune == "full":
        assert "model.safetensors" in files and "tokenizer.json" in files
    else:
        assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    ids, _ = _batch(policy.tokenizer)
    with torch.no_grad():
        want = policy.model(input_ids=ids).logits
    fresh = models.load_policy(str(tiny_model_dir), finetune=policy.finetune, lora_rank=4, lora_alpha=8, device="cpu")
    with torch.no_grad():
        assert not torch.allclose(fresh.model(input_ids=ids).logits, want)
        models.load_state(fresh, out)
        assert torch.equal(fresh.model(input_ids=ids).logits, want)


def _lora_grads(policy, ids, n_prompt):
    policy.model.zero_grad()
    _target_nll(policy, ids, n_prompt).backward()
    return {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.requires_grad}


def test_qlora_sampling_forward_does_not_change_training_or_saving(tiny_model_dir, tmp_path):
    """An eval-mode no-grad forward (what sampling does) must leave later gradients and logits untouched."""
    kw = dict(finetune="qlora", lora_rank=4, lora_alpha=8, device="cpu")
    a, b = models.load_policy(str(tiny_model_dir), **kw), models.load_policy(str(tiny_model_dir), **kw)
    lora = {k: v for k, v in a.model.state_dict().items() if "lora_" in k}
    b.model.load_state_dict(lora, strict=False)  # same LoRA init
    ids, n_prompt = _batch(a.tokenizer)
    a.model.eval()
    with torch.no_grad():
        before = a.model(input_ids=ids).logits
    grads_a, grads_b = _lora_grads(a, ids, n_prompt), _lora_grads(b, ids, n_prompt)
    for name, g in grads_b.items():
        assert torch.allclose(grads_a[name], g, atol=1e-6), name
    a.save(tmp_path / "adapter")  # state_dict() must not re-quantise the base
    with torch.no_grad():
        assert torch.equal(a.model(input_ids=ids).logits, before)


def test_load_state_rejects_wrong_kind(tiny_model_dir, tmp_path):
    full = models.load_policy(str(tiny_model_dir), finetune="full", device="cpu")
    lora = models.load_policy(str(tiny_model_dir), finetune="lora", lora_rank=4, device="cpu")
    with pytest.raises(FileNotFoundError, match="adapter"):
        models.load_state(lora, full.save(tmp_path / "full"))
    with pytest.raises(FileNotFoundError, match="adapter, not full"):
        models.load_state(full, lora.save(tmp_path / "lora"))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        models.load_state(full, tmp_path)


def test_bad_inputs_name_the_field(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="finetune"):
        models.load_policy(str(tiny_model_dir), finetune="dora")
    with pytest.raises(ValueError, match="dtype"):
        models.load_policy(str(tiny_model_dir), dtype="int8")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load_policy(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        models.load_policy(str(tmp_path))


def test_toy_names_go_through_ensure_built(monkeypatch, tiny_model_dir):
    calls = []
    fake = types.ModuleType("studykit.toy")
    fake.ensure_built = lambda name, **knobs: calls.append((name, knobs)) or tiny_model_dir
    monkeypatch.setitem(sys.modules, "studykit.toy", fake)
    pol = models.load_policy("toy:custom", finetune="lora", toy_knobs={"p_correct": 0.3}, device="cpu")
    assert calls == [("custom", {"p_correct": 0.3})]
    assert pol.base_path == str(tiny_model_dir) and pol.name == "toy:custom"

    monkeypatch.setitem(sys.modules, "studykit.toy", types.ModuleType("studykit.toy"))
    with pytest.raises(ImportError, match="ensure_built"):
        models.load_policy("toy:strong")


def test_from_config(monkeypatch, tiny_model_dir):
    from studykit.config.schema import ModelConfig

    cfg = ModelConfig(name=str(tiny_model_dir), finetune="lora", lora_rank=2, lora_alpha=4)
    monkeypatch.setattr(models, "default_device", lambda: "cpu")
    pol = models.from_config(cfg)
    assert pol.finetune == "lora"
    assert pol.model.peft_config["default"].r == 2


@pytest.mark.parametrize("mode", ["lora", "qlora"])
def test_grpo_loss_raises_rewarded_completion(tiny_model_dir, mode):
    """token_logprobs + policy_loss (advantage +1 on one completion, -1 on another) steer an adapter policy."""
    from studykit.engine import grpo

    pol = models.load_policy(str(tiny_model_dir), finetune=mode, lora_rank=4, lora_alpha=8, device="cpu")
    tok = pol.tokenizer
    prompt = tok(PROMPT).input_ids
    good = tok("<answer> 3 </answer> <eos>", add_special_tokens=False).input_ids
    bad = tok("<answer> 7 </answer> <eos>", add_special_tokens=False).input_ids
    ids = torch.tensor([prompt + good, prompt + bad])
    attn, cmask = torch.ones_like(ids), torch.ones(2, len(good))
    adv = torch.tensor([1.0, -1.0])
    opt = torch.optim.Adam(pol.trainable_parameters(), lr=1e-2)
    first = None
    for _ in range(8):
        lp, _ = grpo.token_logprobs(pol.model, ids, attn, cmask, temperature=1.0)
        first = lp.detach() if first is None else first
        loss, stats = grpo.policy_loss(lp, lp.detach(), adv, cmask, clip=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, _ = grpo.token_logprobs(pol.model, ids, attn, cmask, temperature=1.0)
    assert last[0].sum() > first[0].sum() + 0.5 and last[1].sum() < first[1].sum() - 0.5
    assert stats["ratio_mean"] == pytest.approx(1.0)


def test_stored_policies_are_told_apart_from_base_weights(tiny_model_dir, tmp_path):
    assert models.is_stored("runs:/0123abc/policy")
    assert not models.is_stored(str(tiny_model_dir)) and not models.is_stored("toy:strong")
    assert not models.is_stored("Qwen/Qwen2.5-7B") and not models.is_stored("")
    (tmp_path / models.POLICY_METADATA).write_text("{}")
    assert models.is_stored(str(tmp_path))


# ---- issue 10: precision and gradient checkpointing


def _one_adamw_step(policy, lr=1e-6):
    ids, n_prompt = _batch(policy.tokenizer)
    params = policy.trainable_parameters()
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    policy.model.train()
    with policy.autocast():
        loss = _target_nll(policy, ids, n_prompt)
    loss.backward()
    opt.step()
    moved = sum(int((p.detach() != b).sum()) for p, b in zip(params, before))
    return moved / sum(p.numel() for p in params)


def test_bf16_full_finetune_keeps_fp32_master_weights_and_moves_at_lr_1e6(tiny_model_dir):
    # Today's failure, reproduced: a model held in bf16 rounds an lr-1e-6 AdamW step away almost everywhere.
    bare = models.load_policy(str(tiny_model_dir), device="cpu")
    bare.model.to(torch.bfloat16)
    assert _one_adamw_step(bare) < 0.1
    pol = models.load_policy(str(tiny_model_dir), finetune="full", dtype="bfloat16", device="cpu")
    assert pol.dtype == "bfloat16"
    assert {p.dtype for p in pol.trainable_parameters()} == {torch.float32}  # master weights (and Adam state)
    ids, _ = _batch(pol.tokenizer)
    with torch.no_grad(), pol.autocast():
        assert pol.model(input_ids=ids).logits.dtype == torch.bfloat16  # the forward computes in bf16
    assert _one_adamw_step(pol) > 0.9


def test_adapters_train_in_fp32_over_a_bf16_base(tiny_model_dir):
    pol = models.load_policy(str(tiny_model_dir), finetune="lora", dtype="bfloat16", lora_rank=4, device="cpu")
    assert {p.dtype for p in pol.trainable_parameters()} == {torch.float32}
    frozen = {p.dtype for p in pol.model.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}
    assert _one_adamw_step(pol, lr=1e-6) > 0.5  # (lora_A moves; lora_B starts at 0 and moves too)


def test_fp16_full_finetune_is_refused_with_the_fix(tiny_model_dir):
    with pytest.raises(ValueError, match="bfloat16.*fp32 master weights"):
        models.load_policy(str(tiny_model_dir), finetune="full", dtype="float16", device="cpu")


def _grads_and_layer_calls(policy):
    ids, n_prompt = _batch(policy.tokenizer)
    layer = next(m for m in policy.model.modules() if type(m).__name__ == "LlamaDecoderLayer")
    calls = []
    handle = layer.register_forward_pre_hook(lambda *a: calls.append(1))  # (recompute may stop early)
    policy.model.train()
    policy.model.zero_grad()
    _target_nll(policy, ids, n_prompt).backward()
    handle.remove()
    return {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.requires_grad}, len(calls)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_checkpointing_recomputes_and_leaves_gradients_unchanged(tiny_model_dir, mode):
    kw = dict(finetune=mode, lora_rank=4, lora_alpha=8, device="cpu")
    torch.manual_seed(0)
    plain = models.load_policy(str(tiny_model_dir), gradient_checkpointing=False, **kw)
    torch.manual_seed(0)
    ckpt = models.load_policy(str(tiny_model_dir), gradient_checkpointing=True, **kw)
    assert not plain.gradient_checkpointing and ckpt.gradient_checkpointing
    with torch.no_grad():
        for name, p in ckpt.model.named_parameters():  # lora_B away from 0, the same in both
            if "lora_B" in name:
                p.normal_(0, 0.1)
                dict(plain.model.named_parameters())[name].copy_(p)
    want, calls_plain = _grads_and_layer_calls(plain)
    got, calls_ckpt = _grads_and_layer_calls(ckpt)
    assert (calls_plain, calls_ckpt) == (1, 2)  # the checkpointed layer ran again in backward
    assert want.keys() == got.keys() and want
    for name, g in want.items():
        assert torch.allclose(got[name], g, atol=1e-6), name


def test_gradient_checkpointing_auto_rule_and_config(monkeypatch, tiny_model_dir):
    from studykit.config.schema import ModelConfig

    monkeypatch.setattr(models, "default_device", lambda: "cpu")
    tiny = models.from_config(ModelConfig(name=str(tiny_model_dir), finetune="lora", lora_rank=2))
    assert not tiny.gradient_checkpointing  # auto: a tiny local model stays off
    monkeypatch.setattr(models, "AUTO_CHECKPOINTING_PARAMS", 1)
    big = models.from_config(ModelConfig(name=str(tiny_model_dir), finetune="lora", lora_rank=2))
    assert big.gradient_checkpointing  # auto: on at AUTO_CHECKPOINTING_PARAMS (hub-size models)
    off = models.from_config(ModelConfig(name=str(tiny_model_dir), gradient_checkpointing=False))
    assert not off.gradient_checkpointing and not off.model.is_gradient_checkpointing
    assert not models.auto_checkpointing("toy:strong", big.model)  # toy models never

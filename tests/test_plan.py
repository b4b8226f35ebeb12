"""The pre-flight plan: parameter counts from the shipped architecture configs (meta device), LoRA counts against
peft's own, the memory arithmetic part by part, the refusal messages, the hook in the run path and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from studykit.planning import arch, plan
from studykit.config import schema as config

GiB = plan.GiB


@pytest.fixture(scope="module")
def qwen():
    return arch.load_arch("Qwen/Qwen2.5-7B")


def test_shipped_configs_give_the_published_parameter_counts(qwen):
    assert qwen.source == "shipped:Qwen__Qwen2.5-7B.json"
    assert qwen.n_params == 7_615_616_512
    assert (qwen.hidden, qwen.layers, qwen.kv_heads, qwen.vocab, qwen.tied) == (3584, 28, 4, 152064, False)
    llama = arch.load_arch("meta-llama/Llama-3.1-8B")
    assert llama.n_params == 8_030_261_248
    assert arch.load_arch("meta-llama/Llama-3.1-8B-Instruct").n_params == 8_030_261_248
    assert {"Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct"} <= set(arch.shipped_names())


def test_every_shipped_config_is_small_and_builds():
    for path in arch.SHIPPED.glob("*.json"):
        assert path.stat().st_size < 1500, path
        assert json.loads(path.read_text())["model_type"] in ("qwen2", "llama")


@pytest.mark.slow
def test_lora_count_matches_peft_on_the_meta_7b(qwen):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg, _ = arch.find_config("Qwen/Qwen2.5-7B")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    peft_model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    assert arch.lora_params(qwen, 64, "all-linear") == peft_model.get_nb_trainable_parameters()[0] == 161_480_704


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"], r".*\.mlp\.(up|down)_proj"])
def test_lora_count_matches_peft_on_a_small_model(targets):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    small = arch.from_config(cfg, "small")
    model = get_peft_model(AutoModelForCausalLM.from_config(cfg),
                           LoraConfig(r=8, target_modules=targets, task_type="CAUSAL_LM"))
    assert arch.lora_params(small, 8, targets) == model.get_nb_trainable_parameters()[0]


def test_a_local_folder_is_read_from_its_own_config(tiny_model_dir):
    a = arch.load_arch(str(tiny_model_dir))
    assert a.source.endswith("config.json")
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert a.n_params == sum(p.numel() for p in real.parameters())


def test_unknown_model_names_where_it_looked():
    with pytest.raises(arch.ArchUnknown, match="model_configs has: .*Qwen/Qwen2.5-7B"):
        arch.load_arch("nobody/no-such-model")


# ---- the arithmetic


def _shape(**kw):
    base = dict(finetune="qlora", b=2, micro=4, minibatch=128, prompt=256, response=2048, chunk=1024,
                checkpointing=True, rank=64, targets="all-linear", sampler="vllm", vllm_util=0.35, vllm_sleep=True,
                rollout_rows=256)
    return plan.Shape(**(base | kw))


def _part(parts, name):
    return next(p.bytes for p in parts if p.name == name)


def test_weights_by_precision(qwen):
    assert plan.weight_bytes(qwen, "full", 2) == 4 * qwen.n_params  # fp32 master weights
    assert plan.weight_bytes(qwen, "lora", 2) == 2 * qwen.n_params
    nf4 = plan.weight_bytes(qwen, "qlora", 2)
    # 6.53B linear weights at ~0.516 bytes + 1.09B embedding/lm_head + norms in fp32 (prepare_model_for_kbit_training)
    assert nf4 == pytest.approx(6_525_288_448 * (0.5 + 1 / 64 + 4 / 16384) + 4 * (qwen.n_params - 6_525_288_448))
    assert 7.1 * GiB < nf4 < 7.3 * GiB
    assert plan.vllm_weight_bytes(qwen, False) == 2 * qwen.n_params


def test_trainable_state_and_reference(qwen):
    sample, update, _ = plan.parts_of(qwen, _shape(), 80 * GiB)
    n_lora = 161_480_704
    assert _part(update, "LoRA params + AdamW") == 12 * n_lora and _part(update, "LoRA gradients") == 4 * n_lora
    full = plan.parts_of(qwen, _shape(finetune="full", sampler="hf", kl_coef=0.1), 80 * GiB)[1]
    assert _part(full, "AdamW state") == 8 * qwen.n_params and _part(full, "gradients") == 4 * qwen.n_params
    assert _part(full, "KL reference copy") == 4 * qwen.n_params
    assert "KL reference copy" not in {p.name for p in plan.parts_of(qwen, _shape(kl_coef=0.1), 80 * GiB)[1]}


def test_activations_scale_with_the_micro_batch_not_the_mini_batch(qwen):
    one = plan.activation_bytes(qwen, 1, 2304, 2, True)
    assert plan.activation_bytes(qwen, 4, 2304, 2, True) == pytest.approx(tuple(4 * x for x in one))
    a = _part(plan.parts_of(qwen, _shape(minibatch=128), 80 * GiB)[1], "activations")
    assert a == _part(plan.parts_of(qwen, _shape(minibatch=16), 80 * GiB)[1], "activations")
    kept, layer = plan.activation_bytes(qwen, 1, 2304, 2, False)
    # checkpointing keeps one bf16 hidden state per layer and token; the recomputed layer joins the backward set
    per_layer = 2304 * plan.layer_bytes_per_token(qwen, 2)
    assert kept - one[0] == pytest.approx(qwen.layers * (per_layer - 2304 * 2 * qwen.hidden))
    assert one[1] - layer == pytest.approx(per_layer)
    assert kept > 10 * one[0]


def test_the_peak_counts_logits_or_a_layers_backward_not_both():
    parts = [plan.Part("w", 10), plan.Part("logits", 5, group="head"), plan.Part("chunk", 2, group="head"),
             plan.Part("layer", 6, group="layer")]
    assert plan._peak(parts) == 10 + 7 + plan.CUDA_OVERHEAD


def test_logits_chunk(qwen):
    logits, chunk = plan.logits_bytes(qwen, 4, 2048, 4, 1024)
    assert logits == 4 * 2049 * 152064 * 4
    assert chunk == plan.CHUNK_TEMPORARIES * 1024 * 152064 * 4
    assert plan.logits_bytes(qwen, 1, 100, 4, 1024)[1] == plan.CHUNK_TEMPORARIES * 100 * 152064 * 4


def test_vllm_sleep_frees_its_share_during_the_update(qwen):
    awake = plan.parts_of(qwen, _shape(vllm_sleep=False), 80 * GiB)[1]
    asleep = plan.parts_of(qwen, _shape(vllm_sleep=True), 80 * GiB)[1]
    assert _part(awake, "vLLM share (awake)") == 0.35 * 80 * GiB
    assert _part(asleep, "vLLM asleep") == plan.VLLM_ASLEEP


def test_power_sampling_adds_its_scoring_pass_to_the_sampling_phase(qwen):
    """An evaluation-only power run holds one scoring pass of at least LOGIT_ELEMENTS logits (one 3072-token row of
    Qwen's vocabulary is more) at 14 bytes each, beside the engine; nothing in an update phase."""
    from studykit.policy.sampling.power_hf import LOGIT_ELEMENTS

    plain = _shape(finetune="lora", trains=False, response=3072, rollout_rows=128)
    sample, update, _ = plan.parts_of(qwen, replace(plain, power=True), 80 * GiB)
    assert update == [] and _part(sample, "power scoring pass") == 14 * 3073 * qwen.vocab > 14 * LOGIT_ELEMENTS
    short = plan.parts_of(qwen, replace(plain, power=True, response=64), 80 * GiB)[0]
    assert _part(short, "power scoring pass") == 14 * LOGIT_ELEMENTS
    assert "power scoring pass" not in {p.name for p in plan.parts_of(qwen, plain, 80 * GiB)[0]}


# ---- refusals name the setting to change


def test_paper_shape_fits_80_and_48_gib(qwen):
    assert plan.fit_problems(qwen, _shape(), 80 * GiB, 80 * GiB) == []
    assert plan.fit_problems(qwen, _shape(vllm_util=0.6), 48 * GiB, 48 * GiB) == []


def test_vllm_share_too_small_for_its_weights_suggests_4bit(qwen):
    problems = plan.fit_problems(qwen, _shape(), 24 * GiB, 24 * GiB)
    assert any("gpu_memory_utilization to at least" in p and "quantization: bitsandbytes" in p for p in problems)
    assert plan.fit_problems(qwen, _shape(vllm_quantized=True, vllm_util=0.5, micro=2), 24 * GiB, 24 * GiB) == []


def test_too_large_a_micro_batch_names_one_that_fits(qwen):
    problems = plan.fit_problems(qwen, _shape(micro=32, vllm_util=0.5), 48 * GiB, 48 * GiB)
    (msg,) = [p for p in problems if p.startswith("the update needs")]
    m = int(msg.split("train.micro_batch_size ")[1].split()[0])
    assert 1 <= m < 32
    assert plan.fit_problems(qwen, _shape(micro=m, vllm_util=0.5), 48 * GiB, 48 * GiB) == []
    assert plan.fit_problems(qwen, _shape(micro=m + 1, vllm_util=0.5), 48 * GiB, 48 * GiB) != []


def test_when_even_one_sequence_is_too_long_it_names_the_response_length(qwen):
    problems = plan.fit_problems(qwen, _shape(micro=1, response=32768, sampler="hf"), 24 * GiB, 24 * GiB)
    assert any("train.max_new_tokens" in p for p in problems)
    off = plan.fit_problems(qwen, _shape(checkpointing=False, sampler="hf", vllm_sleep=False), 24 * GiB, 24 * GiB)
    assert any("model.gradient_checkpointing true" in p for p in off)
    awake = plan.fit_problems(qwen, _shape(vllm_sleep=False, vllm_util=0.5), 36 * GiB, 36 * GiB)
    assert any("enable_sleep_mode true" in p for p in awake)


def test_sampling_phase_too_large_names_the_memory_share(qwen):
    problems = plan.fit_problems(qwen, _shape(vllm_util=0.9), 40 * GiB, 30 * GiB)
    assert any(p.startswith("sampling needs") and "gpu_memory_utilization at most" in p for p in problems)


# ---- from a config, the hook, the command


def _paper_cfg(tmp_path, monkeypatch, **train):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "deepscaler.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    from studykit.study.spec import ROOT

    return config.load(ROOT / "params" / "paper" / "base.yaml", {"train": train} if train else None)


def test_shape_of_the_paper_params(tmp_path, monkeypatch, qwen):
    s = plan.shape_of(_paper_cfg(tmp_path, monkeypatch), qwen)
    assert (s.finetune, s.b, s.micro, s.minibatch, s.response, s.checkpointing, s.rank) == \
        ("qlora", 2, 4, 128, 2048, True, 64)
    assert (s.sampler, s.vllm_util, s.vllm_sleep) == ("vllm", 0.35, True)


def test_preflight_is_skipped_without_cuda(tmp_path, monkeypatch):
    cfg = _paper_cfg(tmp_path, monkeypatch)
    lines = []
    assert plan.preflight(cfg, log=lines.append) is None
    assert "skipped (no CUDA device" in lines[0]


def test_the_trainer_refuses_before_loading_weights(tmp_path, monkeypatch):
    """The hook's refusal path (a CUDA machine is simulated: there is none here; the planner itself is real)."""
    from studykit.engine import trainer

    cfg = _paper_cfg(tmp_path, monkeypatch, micro_batch_size=64)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(plan, "gpu_memory", lambda gib=None: (24 * GiB, 24 * GiB, "simulated 24 GiB"))
    monkeypatch.setattr(trainer, "from_config", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(plan.PlanRefused, match="train.micro_batch_size"):
        trainer._build(cfg)
    monkeypatch.setenv(plan.SKIP_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="weights were loaded"):
        trainer._build(cfg)


def test_plan_command(tmp_path, monkeypatch, capsys):
    from studykit.cli.commands import main
    from studykit.study.spec import ROOT

    _paper_cfg(tmp_path, monkeypatch)
    base = str(ROOT / "params" / "paper" / "base.yaml")
    assert main(["plan", base, "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    for part in ("policy weights", "LoRA params + AdamW", "activations", "logits", "vLLM share", "vLLM asleep"):
        assert part in out
    assert "7.62B parameters" in out and "time per step: unmeasured" in out and "fits" in out
    assert not (tmp_path / "mlruns").exists()  # planning creates no tracking store
    assert main(["plan", base, "--gpu-memory", "16"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out
    assert main(["plan", base]) == 0  # no CUDA here and no --gpu-memory: the parts, no verdict
    out = capsys.readouterr().out
    assert "pass --gpu-memory" in out and "fit not checked" in out


# ---- the paper grid's one-shot cells can start


def _one_shot(tmp_path, monkeypatch, **data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    return config.validate({"data": {"task": "deepscaler", "task_options": {"path": "d.jsonl"},
                                     "selection": "one_shot", **data},
                            "train": {"steps": 300, "prompts_per_step": 32}})


def test_historical_variance_needs_a_source_that_repeats_examples(tmp_path, monkeypatch):
    with pytest.raises(config.ConfigError, match="data.train_size.*pool size is unknown"):
        _one_shot(tmp_path, monkeypatch)
    with pytest.raises(config.ConfigError, match=r"9600 prompts.*no example in a second epoch.*at most 4800"):
        _one_shot(tmp_path, monkeypatch, train_size=40_000)
    assert _one_shot(tmp_path, monkeypatch, train_size=1200).data.train_size == 1200
    pinned = _one_shot(tmp_path, monkeypatch, one_shot={"source_run": "abc"})  # an explicit source: its own history
    assert pinned.data.one_shot.source_run == "abc"
    assert _one_shot(tmp_path, monkeypatch, one_shot={"rule": "base_variance"}).data.one_shot.rule == "base_variance"


def test_the_paper_grid_one_shot_sources_see_each_example_twice(tmp_path, monkeypatch):
    from studykit import tasks
    from studykit.study.spec import ROOT, expand

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "deepscaler.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    cells = expand(ROOT / "params" / "studies" / "paper.yaml")
    by_hash = {c.config.config_hash(): c for c in cells}
    shots = [c for c in cells if c.config.data.selection == "one_shot"]
    assert {c.config.data.task for c in shots} >= {"deepscaler", "logic"} and len(shots) % 4 == 0  # 2 models x 2 seeds
    for shot in shots:
        source = by_hash[shot.config.data.one_shot.source_config_hash].config
        d, t = source.data, source.train
        pool = min(n for n in (tasks.pool_size(d.task, d.train_split), d.train_size) if n is not None)
        assert source.claim == "ground_truth" and d.selection == "full"
        assert t.steps * t.prompts_per_step >= 2 * pool, shot.name


def test_gpu_check_runs_its_code_path_on_cpu_with_tiny(capsys):
    """bench/gpu_check.py --tiny: the CUDA command's own code (random-init model, LoRA, HF sampler, studykit's
    update, the planner's prediction) on CPU; memory figures are CUDA's only, so they are absent here."""
    import importlib.util

    from studykit.study.spec import ROOT

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    result = gpu_check.main(["--tiny", "--steps", "2"])
    assert result["device"] == "cpu" and [r["step"] for r in result["steps"]] == [1, 2]
    assert all(r["tokens"] == 2 * 2 * 8 and r["update_s"] > 0 and r["update_peak"] is None for r in result["steps"])
    assert result["predicted"]["update"] > result["predicted"]["sample"] > 0
    # issue 20: the compared config is QLoRA (a 4-bit base: 2 layers x 7 linears), LoRA r=16; rates per step
    assert result["base"] == "nf4" and result["linear4bit"] == 14 and result["config"]["rank"] == 16
    assert all(r["rollout_tok_s"] > 0 and r["train_tok_s"] > 0 and r["step_s"] >= r["update_s"]
               for r in result["steps"])
    out = capsys.readouterr().out
    assert "planned" in out and "rollout tokens/s" in out and "training tokens/s" in out and "s/step" in out
    with pytest.raises(SystemExit) as help_exit:
        gpu_check.main(["--help"])
    assert help_exit.value.code == 0 and "--budget-s" in capsys.readouterr().out


# ---- issue 20, item 7: QLoRA's fp32 residual stream


def test_qlora_activations_are_fp32_as_the_model_computes_them(tiny_model_dir):
    """The planner's activation dtype is the one a bf16 QLoRA policy's layers really produce (fp32: embeddings and
    norms cast by prepare_model_for_kbit_training, Linear4bit returns its input's dtype), and bf16 for bf16 LoRA."""
    from studykit.policy import models

    seen = {}
    for finetune in ("qlora", "lora"):
        pol = models.load_policy(str(tiny_model_dir), finetune=finetune, dtype="bfloat16", lora_rank=4,
                                 lora_alpha=8, device="cpu")
        dtypes = set()
        hooks = [m.register_forward_hook(lambda mod, inp, out: dtypes.add((out[0] if isinstance(out, tuple) else
                                                                           out).dtype))
                 for name, m in pol.model.named_modules()
                 if name.endswith(("self_attn.q_proj", "mlp.act_fn", "mlp.down_proj", "input_layernorm"))
                 or name.endswith(".layers.0")]
        with torch.no_grad(), pol.autocast():
            pol.model(input_ids=torch.tensor([[1, 5, 6, 7]]))
        for h in hooks:
            h.remove()
        seen[finetune] = dtypes
        shape = _shape(finetune=finetune, b=2)
        assert {plan.activation_dtype_bytes(shape)} == {torch.empty(0, dtype=d).element_size() for d in dtypes}
    assert seen == {"qlora": {torch.float32}, "lora": {torch.bfloat16}}


def test_the_paper_update_peak_counts_an_fp32_residual_stream(qwen):
    # Regression: counted in bf16 the paper shape's update peak was 19.4 GiB; fp32 activations give 21.2
    up = plan.parts_of(qwen, _shape(), 80 * GiB)[1]
    assert plan._peak(up) / GiB == pytest.approx(21.18, abs=0.01)
    kept, layer = plan.activation_bytes(qwen, 4, 256 + 2048, 4, True, lora_fp32_inputs=False, rank=64,
                                        n_adapted=7)
    assert _part(up, "activations") == kept and _part(up, "one layer's backward") == layer
    lora = plan.parts_of(qwen, _shape(finetune="lora"), 80 * GiB)[1]  # bf16 LoRA: bf16 stream, fp32 adapter inputs
    assert _part(lora, "activations") == plan.activation_bytes(qwen, 4, 2304, 2, True, lora_fp32_inputs=True,
                                                               rank=64, n_adapted=7)[0]


# ---- issue 20, item 7c: prompt lengths from the task pools


def _long_prompt_cfg(tmp_path, monkeypatch, model="Qwen/Qwen2.5-7B"):
    monkeypatch.chdir(tmp_path)
    rows = [{"problem": "word " * (100 + 40 * i) + "?", "answer": "2"} for i in range(30)]  # 506 .. 6306 chars
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config.validate({"model": {"name": model, "finetune": "qlora", "dtype": "bfloat16"},
                            "data": {"task": "deepscaler", "task_options": {"path": "long.jsonl"}, "template": "think"},
                            "train": {"max_new_tokens": 512, "micro_batch_size": 2, "prompts_per_step": 4,
                                      "group_size": 2},
                            "eval": {"sets": [{"task": "toy", "limit": 4}]}})


def test_the_plan_uses_the_longest_prompt_of_the_pool_not_256(tmp_path, monkeypatch):
    from studykit.planning import prompt_lengths
    from studykit.tasks.templates import render

    from studykit.tasks import get as get_task

    monkeypatch.setattr(prompt_lengths, "local_tokenizer", lambda name: None)  # as on a machine without the cache
    monkeypatch.setattr(prompt_lengths, "_MEASURED", {})
    cfg = _long_prompt_cfg(tmp_path, monkeypatch)
    lengths = prompt_lengths.measure(cfg)
    longest = render(get_task("deepscaler", path="long.jsonl").load("train")[-1], "think", None)
    assert lengths.max == -(-len(longest) // prompt_lengths.CHARS_PER_TOKEN) > 1700  # ceil(chars / 3.5)
    assert lengths.p50 < lengths.p95 <= lengths.max and "estimated at 3.5 characters per token" in lengths.source
    measured, assumed = plan.make_plan(cfg, 24), plan.make_plan(cfg, 24, prompt_tokens=256)
    assert f"x {lengths.max + 512} tokens" in next(p.note for p in measured.update if p.name == "activations")
    assert measured.update_peak > assumed.update_peak  # the 256-token assumption under-counted this pool
    assert "max 1," in measured.report() and "(--prompt-tokens)" in assumed.report()


def test_prompt_lengths_count_with_a_local_tokenizer_and_fall_back_when_the_pool_is_missing(tmp_path, monkeypatch,
                                                                                           tiny_model_dir):
    from studykit.planning import prompt_lengths
    from studykit.policy.models import load_tokenizer
    from studykit.policy.sampling.base import prompt_token_ids
    from studykit.tasks import get as get_task
    from studykit.tasks.templates import render

    monkeypatch.setattr(prompt_lengths, "_MEASURED", {})
    cfg = _long_prompt_cfg(tmp_path, monkeypatch, model=str(tiny_model_dir))
    tok = load_tokenizer(str(tiny_model_dir))
    want = max(len(prompt_token_ids(tok, render(p, "think", tok)))
               for p in get_task("deepscaler", path="long.jsonl").load("train"))
    got = prompt_lengths.measure(cfg)
    assert got.max == want and f"tokenizer of {tiny_model_dir}" in got.source
    toy = prompt_lengths.measure(config.validate({"eval": {"sets": [{"task": "toy", "limit": 8}]}}))
    assert (toy.max, toy.p95) == (8, 8) and "toy tokenizer" in toy.source  # <bos> Q d1 .. d5 =
    (tmp_path / "long.jsonl").unlink()
    prompt_lengths._MEASURED.clear()
    tokens, note = prompt_lengths.planned(cfg, plan.PROMPT_TOKENS)
    assert tokens == plan.PROMPT_TOKENS and "could not be read" in note and "long.jsonl" in note


@pytest.mark.parametrize("gib", ["nan", "inf", "-inf", "0", "-8"])
def test_plan_refuses_a_gpu_memory_that_is_not_a_positive_finite_number(tmp_path, monkeypatch, capsys, gib):
    # Regression (issue 21): `--gpu-memory nan` printed "fits" and exited 0.
    from studykit.cli.commands import main
    from studykit.study.spec import ROOT

    _paper_cfg(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(["plan", str(ROOT / "params" / "paper" / "base.yaml"), f"--gpu-memory={gib}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--gpu-memory" in err and "positive, finite" in err
    with pytest.raises(ValueError, match="positive, finite"):
        plan.gpu_memory(float(gib))

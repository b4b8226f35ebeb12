"""VLLMSampler's engine options without an engine: the serving dtype comes from the configured dtype, sleep mode is
refused where vLLM's platform has none, and sleep / wake-up reach vLLM in the right order (a recording fake `vllm`)."""

from __future__ import annotations

import types

import pytest
import torch

from studykit.policy.models import load_policy
from studykit.policy.sampling import vllm_backend


class FakeLLM:
    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tags))


@pytest.fixture
def fake_vllm(monkeypatch):
    checked = []
    module = types.SimpleNamespace(LLM=FakeLLM, SamplingParams=dict)
    monkeypatch.setattr(vllm_backend, "_import_vllm", lambda: (module, dict, lambda *a: a))
    monkeypatch.setattr(vllm_backend, "check_cpu_head_dim", lambda path: None)
    monkeypatch.setattr(vllm_backend, "check_sleep_mode", lambda platform=None: checked.append(True))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    return checked


@pytest.mark.parametrize("finetune", ["qlora", "full"])
def test_vllm_dtype_is_the_configured_one_not_the_first_float_parameter(tiny_model_dir, fake_vllm, finetune):
    # Regression: the dtype came from the model's first floating parameter, which QLoRA preparation casts to fp32
    # (and a bf16 full fine-tune keeps fp32 master weights), so vLLM served a bf16 model in fp32.
    policy = load_policy(str(tiny_model_dir), finetune=finetune, dtype="bfloat16", lora_rank=4, device="cpu")
    assert policy.model.dtype == torch.float32
    sampler = vllm_backend.VLLMSampler(policy)
    assert sampler.llm.kwargs["dtype"] == "bfloat16"
    assert vllm_backend.VLLMSampler(policy, dtype="float32").llm.kwargs["dtype"] == "float32"  # explicit wins
    bare = types.SimpleNamespace(model=types.SimpleNamespace(dtype=torch.float16))
    assert vllm_backend.serving_dtype(bare) == "float16"  # a duck-typed policy without a dtype


def test_sleep_then_wake_weights_then_kv_cache(tiny_model_dir, fake_vllm):
    policy = load_policy(str(tiny_model_dir), finetune="lora", lora_rank=4, device="cpu")
    sampler = vllm_backend.VLLMSampler(policy, enable_sleep_mode=True)
    assert fake_vllm == [True] and sampler.llm.kwargs["enable_sleep_mode"] is True
    sampler.sleep()
    sampler.sleep()  # already asleep: nothing more
    with pytest.raises(RuntimeError, match="asleep"):
        sampler.generate(["Q 1 ="], n=1)
    sampler.wake_up()
    sampler.wake_up()  # already awake: nothing more
    assert sampler.llm.calls == [("sleep", 1), ("wake_up", ["weights"]), ("wake_up", ["kv_cache"])]
    quiet = vllm_backend.VLLMSampler(policy)  # without sleep mode both are no-ops
    quiet.sleep()
    quiet.wake_up()
    assert quiet.llm.calls == [] and "enable_sleep_mode" not in quiet.llm.kwargs


def test_sleep_mode_is_refused_where_the_platform_has_none():
    cpu = types.SimpleNamespace(is_sleep_mode_available=lambda: False, device_name="cpu")
    with pytest.raises(ValueError, match=r"enable_sleep_mode.*no sleep mode on this platform \(cpu\).*CUDA"):
        vllm_backend.check_sleep_mode(cpu)
    vllm_backend.check_sleep_mode(types.SimpleNamespace(is_sleep_mode_available=lambda: True))

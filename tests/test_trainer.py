"""The GRPO loop end to end on a tiny toy model: learning in each fine-tuning mode, resume, failure, one-shot."""

from __future__ import annotations

import math

import mlflow
import pytest

from studykit.engine import trainer
from studykit.config.schema import validate
from studykit.tracking.experiment import owner_state


def _cfg(tmp_path, knobs, **sections):
    base = {
        "study": "t", "rq": "rq1", "claim": "ground_truth",
        "model": {"name": "toy:custom", "toy": knobs},
        "train": {"steps": 4, "prompts_per_step": 8, "group_size": 8, "lr": 3e-4, "max_new_tokens": 16,
                  "mini_batches": 1, "warmup_steps": 0, "weight_decay": 0.0},
        "eval": {"every": 0, "n_samples": 8, "ks": [1, 8], "sets": [{"task": "toy", "limit": 32}]},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt")},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return validate(base)


def _interrupt_training_at(monkeypatch, cfg, step):
    """Run `cfg` until a KeyboardInterrupt at `step` (as Ctrl-C would); returns the real step function, still
    patched out: put it back before resuming."""
    real_step = trainer._train_step

    def interrupted(run, at):
        if at == step:
            raise KeyboardInterrupt
        return real_step(run, at)

    monkeypatch.setattr(trainer, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, progress=False)
    return real_step


def _history(run_id, key):
    client = mlflow.MlflowClient()
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
@pytest.mark.parametrize("finetune,lr", [("full", 6e-4), ("lora", 5e-3), ("qlora", 5e-3)])
def test_ground_truth_grpo_raises_true_accuracy(tmp_path, toy_learner, finetune, lr):
    cfg = _cfg(tmp_path, toy_learner, model={"finetune": finetune, "lora_rank": 8, "lora_alpha": 16},
               train={"steps": 10, "prompts_per_step": 16, "lr": lr},
               eval={"sets": [{"task": "toy", "limit": 128}]})
    result = trainer.train(cfg, progress=False)
    assert result.status == "FINISHED"
    curve = _history(result.run_id, "eval/toy/pass_at_1")
    assert [s for s, _ in curve] == [0, 10]
    (_, before), (_, after) = curve
    assert after > before + 0.02, f"{finetune}: pass@1 {before:.3f} -> {after:.3f}"
    run = mlflow.MlflowClient().get_run(result.run_id)
    for tag in ("study", "rq", "claim", "condition", "model", "task", "seed", "alignment", "config_hash", "git_sha"):
        assert run.data.tags.get(tag), tag
    assert run.data.tags["alignment"].startswith(("strong", "weak"))
    assert run.data.params["model.finetune"] == finetune


def test_resume_continues_the_same_run(tmp_path, toy_learner, monkeypatch):
    # Killed at step 4 after the checkpoint at 2: step 3 was computed by the killed attempt. Regression: it was
    # logged then, and again by the resumed run (steps 1, 2, 3, 3, 4).
    cfg = _cfg(tmp_path, toy_learner, train={"steps": 4, "checkpoint_every": 2})
    real_step = _interrupt_training_at(monkeypatch, cfg, 4)
    killed = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("t").experiment_id])
    assert [r.info.status for r in killed] == ["KILLED"]

    monkeypatch.setattr(trainer, "_train_step", real_step)
    result = trainer.train(cfg, progress=False)
    assert result.run_id == killed[0].info.run_id
    assert [s for s, _ in _history(result.run_id, "train/reward_mean")] == [1, 2, 3, 4]
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "2"
    assert "status_reason" not in run.data.tags  # a FINISHED run carries no stale reason
    assert run.data.tags["previous_status_reason"].startswith("interrupted")
    assert [s for s, _ in _history(result.run_id, "eval/toy/pass_at_1")] == [0, 4]
    assert owner_state(run.data.tags) == "alive"  # this process owned the resumed run


def test_a_kill_between_checkpoint_and_metric_write_loses_no_step(tmp_path, toy_learner, monkeypatch):
    from studykit.engine.metric_buffer import MetricBuffer

    cfg = _cfg(tmp_path, toy_learner, train={"steps": 4, "checkpoint_every": 2})
    real_flush, calls = MetricBuffer.flush, []

    def killed_after_the_save(self, run_id):
        calls.append(len(self.items))
        if len(calls) == 2:  # 1: step 0 at the start; 2: right after the checkpoint at step 2 was saved
            raise KeyboardInterrupt
        return real_flush(self, run_id)

    monkeypatch.setattr(MetricBuffer, "flush", killed_after_the_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, progress=False)
    monkeypatch.setattr(MetricBuffer, "flush", real_flush)
    result = trainer.train(cfg, progress=False)
    assert [s for s, _ in _history(result.run_id, "train/reward_mean")] == [1, 2, 3, 4]
    assert [s for s, _ in _history(result.run_id, "eval/toy/pass_at_1")] == [0, 4]


def test_non_finite_loss_fails_the_run_with_a_reason(tmp_path, toy_learner, monkeypatch):
    real_loss = trainer.grpo.policy_loss

    def nan_loss(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        return loss * math.nan, stats

    monkeypatch.setattr(trainer.grpo, "policy_loss", nan_loss)
    result = trainer.train(_cfg(tmp_path, toy_learner, train={"steps": 2}), progress=False)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert result.status == "FAILED" and run.info.status == "FAILED"
    assert "non-finite loss" in run.data.tags["status_reason"] and "non-finite loss" in result.reason
    assert run.data.tags["resumable"] == "false"  # a rerun starts anew rather than logging its steps twice


def _full_run(tmp_path, toy_learner, seed=0):
    # 4 steps x 4 prompts over 8 examples, no refill batches: every example is seen in exactly two epochs
    return trainer.train(_cfg(tmp_path, toy_learner, data={"train_size": 8}, train={"prompts_per_step": 4, "seed": seed},
                              algo={"dynamic_sampling": False}), progress=False)


def _one_shot_cfg(tmp_path, toy_learner, **train):
    # the same recipe as _full_run's (the run it ranks examples from); only the data selection and labels differ
    return _cfg(tmp_path, toy_learner, claim="one_shot", rq="rq2", data={"train_size": 8, "selection": "one_shot"},
                train={"prompts_per_step": 4, **train}, algo={"dynamic_sampling": False})


def test_one_shot_reads_the_full_run_history(tmp_path, toy_learner):
    full = _full_run(tmp_path, toy_learner)
    history = mlflow.artifacts.load_dict(f"runs:/{full.run_id}/example_accuracy.json")
    assert len(history) == 8 and all(len(v) == 2 for v in history.values())

    one = trainer.train(_one_shot_cfg(tmp_path, toy_learner), progress=False)
    tags = mlflow.MlflowClient().get_run(one.run_id).data.tags
    assert tags["one_shot.rule"] == "historical_variance" and tags["one_shot.source_run"] == full.run_id
    variances = {pid: _var(v) for pid, v in history.items()}
    assert variances[tags["one_shot.example_id"]] == max(variances.values())


def test_one_shot_without_its_own_full_run_fails_and_creates_nothing(tmp_path, toy_learner):
    # Regression: with no full-data run the rule silently fell back to base_variance (a FINISHED cell a rerun
    # skipped forever), and it read any seed's ground-truth run. Another seed's run must not do.
    _full_run(tmp_path, toy_learner, seed=1)
    client = mlflow.MlflowClient()
    before = len(client.search_runs([mlflow.get_experiment_by_name("t").experiment_id]))
    from studykit.engine.one_shot import OneShotSourceMissing

    with pytest.raises(OneShotSourceMissing, match=r"seed \(0\).*config hash"):
        trainer.train(_one_shot_cfg(tmp_path, toy_learner), progress=False)
    assert len(client.search_runs([mlflow.get_experiment_by_name("t").experiment_id])) == before


def test_resumed_one_shot_run_keeps_its_example(tmp_path, toy_learner, monkeypatch):
    _full_run(tmp_path, toy_learner)
    cfg = _one_shot_cfg(tmp_path, toy_learner, checkpoint_every=1)
    real_step = _interrupt_training_at(monkeypatch, cfg, 2)
    monkeypatch.setattr(trainer, "_train_step", real_step)
    from studykit.engine import one_shot

    def no_second_choice(*args, **kwargs):
        raise AssertionError("a resumed run must not choose its example again")

    monkeypatch.setattr(one_shot, "choose", no_second_choice)
    result = trainer.train(cfg, progress=False)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "1"
    from studykit.engine import checkpoint

    kept = checkpoint.peek(checkpoint.folder(cfg.tracking.checkpoint_dir, cfg.config_hash()))["one_shot"]
    assert kept["example_id"] == run.data.tags["one_shot.example_id"] and kept["rule"] == "historical_variance"


def _var(values):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def test_logged_lr_is_the_rate_the_step_used(tmp_path, toy_learner):
    # Regression: train/lr was read after the scheduler moved, i.e. it was the NEXT step's rate.
    cfg = _cfg(tmp_path, toy_learner, train={"steps": 3, "lr": 1e-3, "warmup_steps": 4, "prompts_per_step": 4})
    result = trainer.train(cfg, progress=False)
    logged = _history(result.run_id, "train/lr")
    assert logged == [(1, pytest.approx(0.25e-3)), (2, pytest.approx(0.5e-3)), (3, pytest.approx(0.75e-3))]


def test_task_options_reach_the_verifier(tmp_path, toy_learner, monkeypatch):
    # Regression: rewards verified with a default-constructed task, so `task_options.timeout_s` never arrived.
    import studykit.tasks.math as math_task

    seen = []
    monkeypatch.setattr(math_task, "math_equal", lambda pred, gold, timeout_s: seen.append(timeout_s) or False)
    run = trainer._build(_cfg(tmp_path, toy_learner, data={"task": "math500", "train_split": "test", "task_options": {"timeout_s": 0.7}}))
    problem = run.data.next(1)[0]
    run.reward_fn(["<think> a </think> <answer> 3 </answer>"], problem)
    assert seen == [0.7]
    run.sampler.close()


def test_weight_decay_reaches_the_optimizer(tmp_path, toy_learner):
    run = trainer._build(_cfg(tmp_path, toy_learner, train={"weight_decay": 0.1}))
    assert run.optimizer.param_groups[0]["weight_decay"] == 0.1
    run.sampler.close()


@pytest.mark.parametrize("every,steps,saved", [(2, 3, [2, 3]), (0, 2, [2])])
def test_checkpoints_every_n_steps_and_always_at_the_final_step(tmp_path, toy_learner, monkeypatch, every, steps,
                                                                 saved):
    from studykit.engine import checkpoint

    real_save, steps_saved = trainer._save, []
    monkeypatch.setattr(trainer, "_save", lambda run, ckpt: steps_saved.append(run.step) or real_save(run, ckpt))
    cfg = _cfg(tmp_path, toy_learner, train={"steps": steps, "checkpoint_every": every, "prompts_per_step": 4},
               eval={"sets": [{"task": "toy", "limit": 8}]})
    result = trainer.train(cfg, progress=False)
    assert steps_saved == saved
    state = checkpoint.peek(checkpoint.folder(cfg.tracking.checkpoint_dir, cfg.config_hash()))
    assert (state["step"], state["run_id"]) == (steps, result.run_id)


def test_every_evaluation_logs_its_per_problem_counts(tmp_path, toy_learner):
    import json

    cfg = _cfg(tmp_path, toy_learner, train={"steps": 2}, eval={"every": 1, "sets": [{"task": "toy", "limit": 12}]})
    result = trainer.train(cfg, progress=False)
    client = mlflow.MlflowClient()
    files = [f.path for f in client.list_artifacts(result.run_id, "eval_counts/toy")]
    assert files == [f"eval_counts/toy/step_{s:05d}.json" for s in (0, 1, 2)]
    pass1 = dict(_history(result.run_id, "eval/toy/pass_at_1"))
    for step, path in enumerate(files):
        with open(client.download_artifacts(result.run_id, path, str(tmp_path))) as fh:
            rec = json.load(fh)
        assert rec["set"] == "toy" and rec["step"] == step and rec["n"] == 8
        assert len(rec["problem_ids"]) == len(rec["correct_counts"]) == 12
        assert sum(rec["correct_counts"]) / (8 * 12) == pytest.approx(pass1[step])


class _Recorder:
    """Wraps the real sampler and logs the calls the trainer makes (consecutive generates logged once)."""

    def __init__(self, inner, log):
        self.inner, self.log, self.asleep = inner, log, False

    def _note(self, name):
        if not (name == "generate" and self.log and self.log[-1] == "generate"):
            self.log.append(name)

    def generate(self, *args, **kwargs):
        assert not self.asleep, "generate while the sampler sleeps"
        self._note("generate")
        return self.inner.generate(*args, **kwargs)

    def sleep(self):
        self.asleep = True
        self._note("sleep")

    def wake_up(self):
        self.asleep = False
        self._note("wake_up")

    def sync(self, policy):
        self._note("sync")
        self.inner.sync(policy)

    def close(self):
        self.inner.close()


def test_sampler_sleeps_for_every_update_and_wakes_before_sampling_resume_included(tmp_path, toy_learner,
                                                                                    monkeypatch):
    # One run with the issue-10 settings on: LoRA + KL to the base, micro-batches of 5 and truncated IS.
    log: list[str] = []
    real_make = trainer.make_sampler
    monkeypatch.setattr(trainer, "make_sampler", lambda *a, **k: _Recorder(real_make(*a, **k), log))
    cfg = _cfg(tmp_path, toy_learner, model={"finetune": "lora", "lora_rank": 4, "lora_alpha": 8},
               algo={"kl_coef": 0.05, "tis_cap": 2.0, "dynamic_sampling": False},
               train={"steps": 4, "checkpoint_every": 2, "prompts_per_step": 4, "micro_batch_size": 5, "lr": 5e-3})
    real_step = _interrupt_training_at(monkeypatch, cfg, 3)
    step = ["generate", "sleep", "sync", "wake_up"]  # sample, sleep, update, sync the adapter, wake
    assert log == step * 2  # (the step-0 evaluation's generate merges with step 1's)
    log.clear()
    monkeypatch.setattr(trainer, "_train_step", real_step)
    result = trainer.train(cfg, progress=False)
    assert log == ["sync"] + step * 2 + ["generate"]  # restore syncs; steps 3 and 4; the final evaluation
    kl = _history(result.run_id, "train/kl_ref")
    assert [s for s, _ in kl] == [1, 2, 3, 4]
    assert kl[0][1] == pytest.approx(0.0, abs=1e-7) and all(v >= 0 for _, v in kl)  # step 1: policy = base
    assert [s for s, _ in _history(result.run_id, "train/tis_weight_mean")] == [1, 2, 3, 4]


def test_a_sampler_far_from_the_trainer_warns_and_tags_the_run(tmp_path, toy_learner, monkeypatch):
    # Issue 20, item 4: the HF sampler's log-probs shifted by 1 nat (as a bf16 vLLM behind a 4-bit trainer might
    # drift): the step warns, logs train/logprob_gap_exceeded 1 and the run gets the logprob_gap_warning tag
    from studykit.engine import update
    from studykit.policy.sampling.hf import HFSampler

    real = HFSampler.generate

    def drifted(self, *args, **kwargs):
        groups = real(self, *args, **kwargs)
        for g in groups:
            g.logprobs = [[lp - 1.0 for lp in row] for row in g.logprobs]
        return groups

    monkeypatch.setattr(HFSampler, "generate", drifted)
    cfg = _cfg(tmp_path, toy_learner, reward={"name": "random"}, train={"steps": 1, "prompts_per_step": 4})
    with pytest.warns(update.LogprobGapWarning, match="step 1"):
        result = trainer.train(cfg, progress=False)
    assert _history(result.run_id, "train/logprob_gap_exceeded") == [(1, 1.0)]
    assert _history(result.run_id, "train/logprob_abs_diff")[0][1] == pytest.approx(1.0, abs=1e-3)
    assert mlflow.MlflowClient().get_run(result.run_id).data.tags["logprob_gap_warning"].startswith("step 1:")

"""One step's rollouts: sample G completions per prompt, score them, compute advantages, drop agreeing groups.

Dynamic sampling as in DAPO (Yu et al. 2025) and the paper: groups whose rewards all agree carry no GRPO signal and
are dropped; up to `algo.max_gen_batches` generation batches of fresh prompts are drawn to refill the batch.
Kept groups are never duplicated: a step trains on fewer groups when refilling fails, and logs the filtered fraction.

Reward fidelity (as TTRL and Intuitor log it), over every sampled group of the step: `train/zero_var_frac`, the share
of groups whose training rewards all agree (no group-relative signal); for a reward other than ground truth,
`train/reward_accuracy`, the share of completions whose reward agrees with their true correctness (rewarded means
reward > 0, or for `self_certainty`, a continuous signal, reward above its group's mean: a positive GRPO advantage);
for `majority_vote`, `train/label_accuracy`, the share of groups whose voted label is right (a group with no
extractable answer has no label: counted as wrong).

TTRL's vote/train split (Zuo et al. 2025, arXiv 2504.16084: 64 votes, 32 trained): with `reward.votes` V larger than
`train.group_size` G, each prompt gets V samples, the reward scores all V (the majority label is theirs, and so is
`train/label_accuracy`), and only the FIRST G samples, with their rewards from that label, are trained on, filtered
and logged (accuracy, reward and fidelity shares). Samples are exchangeable, so the first G are as good as a random
G; the extra V - G cost generation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from studykit.engine import grpo
from studykit.config.schema import RunConfig
from studykit.tasks import Problem, share_diagnostics
from studykit.tasks.templates import render


@dataclass
class Rollouts:
    """Flattened kept samples of one step, plus what the step logs about all sampled groups."""

    problems: list[Problem] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    token_ids: list[list[int]] = field(default_factory=list)
    sampler_logprobs: list[list[float]] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    per_problem_accuracy: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.token_ids)


def collect(cfg: RunConfig, sampler, tokenizer, reward_fn, next_prompts, rng: np.random.Generator, seed: int,
            template: str, task=None, estimator=None) -> Rollouts:
    """Sample, score and filter until `prompts_per_step` groups are kept or the generation budget is spent.

    `task`, when given, may report per-completion diagnostics (its `diagnose` hook), logged as shares. `estimator`:
    the run's `grpo.make_estimator` (built once per run by the trainer; None builds it from `cfg` for this call).
    """
    t = cfg.train
    if estimator is None:
        estimator = grpo.make_estimator(cfg.algo.estimator, cfg.algo.estimator_options)
    out, seen = Rollouts(), {"groups": 0, "filtered": 0, "all": [], "correct": [], "format": [], "len": [],
                             "trunc": [], "texts": [], "flat": 0, "agree": [], "label": []}
    for batch_no in range(cfg.algo.max_gen_batches if cfg.algo.dynamic_sampling else 1):
        need = t.prompts_per_step - len(out.problems) // t.group_size
        if need <= 0:
            break
        problems = next_prompts(t.prompts_per_step if batch_no == 0 else need)
        prompts = [render(p, template, tokenizer) for p in problems]
        groups = sampler.generate(prompts, n=cfg.reward.votes or t.group_size, temperature=t.temperature, top_p=t.top_p,
                                  max_new_tokens=t.max_new_tokens, seed=seed * 1009 + batch_no)
        _score(cfg, problems, groups, reward_fn, estimator, rng, out, seen, need)
    n_groups = max(seen["groups"], 1)
    out.stats = {
        "train/reward_mean": float(np.mean(seen["all"])), "train/reward_std": float(np.std(seen["all"])),
        "train/accuracy": float(np.mean(seen["correct"])), "train/format_rate": float(np.mean(seen["format"])),
        "train/response_len": float(np.mean(seen["len"])), "train/truncated_frac": float(np.mean(seen["trunc"])),
        "train/filtered_frac": seen["filtered"] / n_groups, "train/kept_groups": len(out.problems) // t.group_size,
        "train/zero_var_frac": seen["flat"] / n_groups,
    }
    if seen["agree"]:
        out.stats["train/reward_accuracy"] = float(np.mean(seen["agree"]))
    if seen["label"]:
        out.stats["train/label_accuracy"] = float(np.mean(seen["label"]))
    out.stats.update(share_diagnostics(task, seen["texts"], "train/"))
    return out


def trained_part(group, res, size: int):
    """The first `size` samples of a group and of its RewardResult (the trained part of a larger vote); the result's
    `extra` (the vote's label and whether it is right) stays that of the whole group."""
    if group.n <= size:
        return group, res
    cut = replace(group, texts=group.texts[:size], token_ids=group.token_ids[:size], logprobs=group.logprobs[:size],
                  truncated=group.truncated[:size])
    return cut, replace(res, rewards=res.rewards[:size], correct=res.correct[:size], format_ok=res.format_ok[:size],
                        extra={**res.extra, "votes": group.n})


def _score(cfg, problems, groups, reward_fn, estimator, rng, out: Rollouts, seen: dict, need: int) -> None:
    batch = [reward_fn(g.texts, p, logprobs=g.logprobs, rng=rng) for p, g in zip(problems, groups)]
    groups, batch = zip(*(trained_part(g, r, cfg.train.group_size) for g, r in zip(groups, batch))) if batch \
        else ((), ())
    rewards = torch.tensor(np.stack([r.rewards for r in batch]), dtype=torch.float32)
    adv = grpo.compute_advantages(rewards, estimator, lam=cfg.algo.lam)  # the training reward only
    keep = grpo.filter_groups(rewards) if cfg.algo.dynamic_sampling else torch.ones(len(batch), dtype=torch.bool)
    kept = 0
    for i, (problem, group, res) in enumerate(zip(problems, groups, batch)):
        seen["groups"] += 1
        seen["all"].extend(res.rewards.tolist())
        seen["correct"].extend(res.correct.tolist())
        seen["format"].extend(res.format_ok.tolist())
        seen["len"].extend(len(ids) for ids in group.token_ids)
        seen["trunc"].extend(group.truncated)
        seen["texts"].extend(group.texts)
        out.per_problem_accuracy[problem.id] = float(res.correct.mean())
        _fidelity(cfg.reward.name, res, seen)
        if not keep[i] or kept >= need:
            seen["filtered"] += int(not keep[i])
            continue
        kept += 1
        for j in range(len(group.texts)):
            out.problems.append(problem)
            out.prompt_ids.append(group.prompt_ids)
            out.token_ids.append(group.token_ids[j])
            out.sampler_logprobs.append(group.logprobs[j])
            out.advantages.append(float(adv[i, j]))
            out.texts.append(group.texts[j])
            out.rewards.append(float(res.rewards[j]))
            out.correct.append(bool(res.correct[j]))


def _fidelity(name: str, res, seen: dict) -> None:
    """Record how far one group's training reward is from the truth (module docstring)."""
    r = np.asarray(res.rewards, dtype=np.float64)
    seen["flat"] += int(r.size == 0 or r.max() == r.min())
    if name == "ground_truth":
        return
    paid = r > r.mean() if name == "self_certainty" else r > 0
    seen["agree"].extend((paid == np.asarray(res.correct, dtype=bool)).tolist())
    if name == "majority_vote":
        seen["label"].append(bool(res.extra.get("majority_correct")))


def pack(rollouts: Rollouts, index: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompt+completion tensors for the samples in `index` (completion_mask marks response tokens).

    Every row ends in the last column, so the completions occupy the last max(completion length) columns whatever
    the prompts' lengths: `grpo.token_logprobs` computes logits only from the first completion column on, and a
    right-padded batch would widen that window by the spread of prompt+completion starts (issue 20, item 7b).
    Positions come from the attention mask (`token_logprobs`), so a row's log-probs do not depend on its padding.
    """
    seqs = [rollouts.prompt_ids[i] + rollouts.token_ids[i] for i in index]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.float32)
    old = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, i in enumerate(index):
        p, c = len(rollouts.prompt_ids[i]), len(rollouts.token_ids[i])
        start = width - p - c
        ids[row, start:] = torch.tensor(seqs[row])
        attn[row, start:] = 1
        comp[row, width - c:] = 1
        lp = rollouts.sampler_logprobs[i][:c]
        old[row, width - c:] = torch.tensor(lp + [0.0] * (c - len(lp)))
    adv = torch.tensor([rollouts.advantages[i] for i in index], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": attn, "completion_mask": comp, "sampler_logprobs": old, "advantages": adv}

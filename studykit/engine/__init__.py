"""Layer 7, the GRPO engine: the pure maths (`grpo`: advantage estimators, the clipped loss, the group filter),
rollouts (`rollout`), the update in mini-batches (`update`), the loop (`trainer`), evaluation and the alignment
label (`evaluation`), data selection and one-shot choice (`selection`, `one_shot`), checkpoints (`checkpoint`),
buffered metrics (`metric_buffer`). Task-specific diagnostics come through the task hook, never a task's own module.

May import: every layer below (infra, scoring, tasks, toy, policy, config, planning, tracking).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "train": "trainer",
    "compute_advantages": "grpo",
    "policy_loss": "grpo",
    "filter_groups": "grpo",
    "evaluate_set": "evaluation",
    "label_for": "evaluation",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)

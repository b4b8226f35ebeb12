"""Benchmarks that cannot rot: every script in bench/ runs here in its cheapest mode, so a signature change that
breaks one fails CI (bench/grpo_vs_trl.py once died on `evaluate_set() missing ... 'task'` with nothing noticing).

Scripts with a cheap real mode run it (a step or two on a tiny model); the ones that need a built 1,500-step toy
model, a finished study, a browser or verl's environment are imported and asked for `--help` (or byte-compiled /
syntax-checked), which still catches a moved import. The numbers they print here mean nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

CHEAP = {
    "gpu_check.py": ["--tiny", "--steps", "1"],
    "interval_coverage.py": ["--tiny"],
    "grpo_vs_trl.py": ["--tiny"],
    "korbench_agreement.py": ["--categories", "cipher"],
    "logprobs.py": ["--batch", "1", "--positions", "16", "--vocab", "64", "--hidden", "16", "--chunk", "8"],
    "sampler_speed.py": ["--prompts", "2", "--n", "2", "--max-new-tokens", "4", "--repeats", "1", "--hidden", "16",
                         "--layers", "1", "--heads", "2"],
    "verifier_pairs.py": [],
    # no cheaper real mode: a 1,500-step toy build, a study's store, chromium, or many processes
    "memory.py": ["--help"],
    "study_time.py": ["--help"],
    "toy_build.py": ["--help"],
    "toy_compute.py": ["--help"],
    "ui_screenshots.py": ["--help"],
    "ui_start.py": ["--help"],
}
SLOW = {"grpo_vs_trl.py", "gpu_check.py"}
VERL_ONLY = ["verl_handoff_check.py", "verl_handoff.sh"]  # run inside verl's own environment (bench/verl_handoff.sh)


def test_every_bench_script_is_covered():
    scripts = {p.name for p in BENCH.iterdir() if p.suffix in {".py", ".sh"}}
    assert scripts == set(CHEAP) | set(VERL_ONLY), f"add to CHEAP: {sorted(scripts - set(CHEAP) - set(VERL_ONLY))}"


@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in sorted(CHEAP)])
def test_bench_script_runs_in_its_cheapest_mode(script, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", STUDYKIT_CACHE=str(tmp_path / "cache"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    proc = subprocess.run([sys.executable, str(BENCH / script), *CHEAP[script]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def test_verl_scripts_compile():
    subprocess.run([sys.executable, "-m", "py_compile", str(BENCH / "verl_handoff_check.py")], check=True)
    subprocess.run(["bash", "-n", str(BENCH / "verl_handoff.sh")], check=True)

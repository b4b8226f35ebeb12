"""A tracking-server outage longer than the MLflow client's retry budget (issue 21): the run fails, resumable from
its checkpoint; nothing logged before the outage is lost; a rerun once the server is back resumes the same run and
finishes it with every step logged once. The retry budget is cut to nothing (MLflow's own variables) so the outage
outlasts it at once; the server is a real `studykit server` on a loopback port, stopped and restarted on it."""

from __future__ import annotations

import mlflow
import pytest

from ray_smoke import start_server, stop_server
from studykit.engine import checkpoint, trainer

from test_trainer import _cfg, _history

pytestmark = pytest.mark.slow


def test_an_outage_past_the_retry_budget_fails_the_run_resumably_and_a_rerun_completes(tmp_path, toy_learner,
                                                                                         monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # mlflow.environment_variables: the retry budget
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    proc, uri = start_server(tmp_path)
    port = int(uri.rsplit(":", 1)[1])
    cfg = _cfg(tmp_path, toy_learner, train={"steps": 4, "checkpoint_every": 2, "prompts_per_step": 4},
               tracking={"uri": uri})
    real_step, stopped = trainer._train_step, {}

    def server_gone_at_step_3(run, step):
        if step == 3 and not stopped:
            stopped.update(stop_server(proc, uri))
        return real_step(run, step)

    monkeypatch.setattr(trainer, "_train_step", server_gone_at_step_3)
    try:
        with pytest.raises(Exception) as failed:
            trainer.train(cfg, progress=False)
        assert not isinstance(failed.value, KeyboardInterrupt) and not stopped["answers"], stopped
        saved = checkpoint.peek(checkpoint.folder(cfg.tracking.checkpoint_dir, cfg.config_hash()))
        assert saved["step"] == 2  # what the rerun resumes from
        proc, uri = start_server(tmp_path, port=port)  # the same store, back on the same address
        monkeypatch.setattr(trainer, "_train_step", real_step)
        result = trainer.train(cfg, progress=False)
    finally:
        stop_server(proc, uri)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")  # read the store itself
    assert result.run_id == saved["run_id"] and result.status == "FINISHED"
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "2"
    assert [s for s, _ in _history(result.run_id, "train/reward_mean")] == [1, 2, 3, 4]
    assert [s for s, _ in _history(result.run_id, "eval/toy/pass_at_1")] == [0, 4]

"""`studykit server` and `--tracking-uri`: options and refusals (fast), the per-cell resource rule and the study
file's `resources:` block, and one real server on a free loopback port: a run logged through it keeps its artifact
in the server's destination (proxied: the client never writes a path), and SIGTERM stops its whole process tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ray_smoke import start_server, stop_server
from studykit.cli import commands as cli
from studykit.tracking import server
from studykit.config.schema import ConfigError
from studykit.study.executors import make
from studykit.study.executors.ray import check_uri, local_artifacts, task_env
from studykit.study.executors.resources import ResourcesSpec, cell_resources
from studykit.study.spec import expand, load_spec
from studykit.study.runner import run_study

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"


def test_server_defaults_to_loopback_one_worker_and_proxied_artifacts():
    args = cli.build_parser().parse_args(["server"])
    assert (args.host, args.port, args.workers, args.backend_store_uri) == ("127.0.0.1", 5000, 1, None)
    cmd = server.command("sqlite:////x/mlflow.db", "/x/served", "127.0.0.1", 5001)
    assert cmd[cmd.index("server") - 1] == "mlflow" and "--serve-artifacts" in cmd
    assert cmd[cmd.index("--artifacts-destination") + 1] == "/x/served" and cmd[cmd.index("--workers") + 1] == "1"
    assert server.default_backend(Path("/w")) == "sqlite:////w/mlruns/mlflow.db"
    assert server.client_uri("127.0.0.1", 5001) == "http://127.0.0.1:5001"
    pg = "postgresql://study:pw@db.internal:5432/mlflow"
    assert server.check_backend(pg) == pg  # passed through as given
    for bad in ("http://127.0.0.1:5000", "file:///tmp/mlruns", "mlruns"):
        with pytest.raises(ValueError, match="--backend-store-uri"):
            server.check_backend(bad)


@pytest.mark.parametrize("command", [["study", "s.yaml"], ["run", "nb.ipynb", "-f", "p.yaml"], ["report", "smoke"],
                                     ["ui"]])
def test_every_store_command_takes_tracking_uri_and_the_old_uri_alias(command):
    for flag in ("--tracking-uri", "--uri"):
        assert cli.build_parser().parse_args([*command, flag, "http://127.0.0.1:5001"]).uri == "http://127.0.0.1:5001"


def test_ui_on_a_server_uri_points_at_the_server(capsys):
    assert cli.main(["ui", "--tracking-uri", "http://127.0.0.1:5999"]) == 0
    assert "http://127.0.0.1:5999 is a tracking server" in capsys.readouterr().out


def test_ray_refuses_a_store_remote_nodes_cannot_see(tmp_path, monkeypatch):
    for uri in ("sqlite:////tmp/mlflow.db", "file:///tmp/mlruns", "postgresql://h/db"):
        with pytest.raises(ValueError, match="studykit server"):
            check_uri(uri)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="needs a tracking server"):
        run_study(SMOKE, executor="ray", uri=f"sqlite:///{tmp_path}/mlflow.db", progress=False)
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store was touched
    with pytest.raises(ConfigError, match="--address"):
        run_study(SMOKE, executor="local", address="auto", uri=f"sqlite:///{tmp_path}/mlflow.db", progress=False)
    with pytest.raises(ValueError, match="unknown executor"):
        make("dask", tmp_path, "http://127.0.0.1:1")


def test_task_env_carries_the_store_and_studykit_settings():
    env = task_env("http://h:5000", {"STUDYKIT_CACHE": "/c", "MLFLOW_TRACKING_URI": "sqlite:///x", "HOME": "/root",
                                     "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    assert env["MLFLOW_TRACKING_URI"] == "http://h:5000" and env["STUDYKIT_CACHE"] == "/c"
    assert env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false" and "HOME" not in env
    assert env["OMP_NUM_THREADS"] == "1"


def test_cell_resources_follow_threads_and_the_model_and_the_study_overrides():
    toy = {"model": {"name": "toy:strong"}, "train": {"threads": 3}}
    qwen = {"model": {"name": "Qwen/Qwen2.5-7B", "finetune": "qlora"}, "train": {"threads": 1}}
    assert cell_resources(toy) == {"num_cpus": 3.0, "num_gpus": 0.0}
    assert cell_resources(qwen) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert cell_resources({"study_file": "x"}) == {"num_cpus": 1.0, "num_gpus": 0.0}  # the compare step
    spec = ResourcesSpec(num_gpus=0.5, memory_gb=2, custom={"A100": 1})
    assert cell_resources(qwen, spec) == {"num_cpus": 1.0, "num_gpus": 0.5, "memory": 2 * 2**30,
                                          "resources": {"A100": 1.0}}


def test_the_study_resources_block_is_validated(tmp_path):
    study = yaml.safe_load(SMOKE.read_text()) | {"base": str(ROOT / "params/toy/smoke_base.yaml")}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(study | {"resources": {"num_cpus": 2, "num_gpus": 0}}))
    assert load_spec(good).resources == ResourcesSpec(num_cpus=2, num_gpus=0) and expand(good)
    for bad, field in (({"num_gpus": -1}, "num_gpus"), ({"gpus": 1}, "gpus"), ({"num_cpus": 0}, "num_cpus"),
                       # regression (issue 21): these passed and failed only once Ray started a cell
                       ({"custom": {"A100": -1}}, "custom.*'A100'.*>= 0"), ({"custom": {"CPU": 2}}, "custom.*'CPU'"),
                       ({"custom": {"": 1}}, "custom.*non-empty"), ({"custom": {"A100": 1e-6}}, "custom.*0.0001"),
                       ({"custom": {"A100": float("nan")}}, "custom")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(study | {"resources": bad}))
        with pytest.raises(ConfigError, match=f"(?s)bad.yaml.*resources.{field}"):
            load_spec(path)


@pytest.mark.slow
def test_server_proxies_artifacts_then_stops_with_its_children(tmp_path):
    from mlflow.tracking import MlflowClient

    proc, uri = start_server(tmp_path)
    try:
        assert "tracking URI: " + uri in (tmp_path / "server.log").read_text()
        client = MlflowClient(uri)
        exp = client.create_experiment("proxied")
        run = client.create_run(exp)
        (tmp_path / "note.txt").write_text("through the server")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"), "notes")
        client.set_terminated(run.info.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        stored = tmp_path / "mlruns/server-artifacts" / exp / run.info.run_id / "artifacts/notes/note.txt"
        assert stored.read_text() == "through the server"
        assert (tmp_path / "mlruns/mlflow.db").is_file()  # the default backend: sqlite under ./mlruns
    finally:
        result = stop_server(proc, uri)
    assert result["rc"] == 0 and result["children"] and not result["alive"] and not result["answers"], result


def test_a_local_artifact_path_is_refused_only_when_other_hosts_run_cells():
    assert local_artifacts("file:///w/mlruns/artifacts/smoke", {"head"}, "head") is None  # one machine: fine
    why = local_artifacts("file:///w/mlruns/artifacts/smoke", {"head", "node-2"}, "head")
    assert "node-2" in why and "tracking.experiment" in why
    assert local_artifacts("mlflow-artifacts:/1", {"head", "node-2"}, "head") is None  # proxied by the server


def test_a_taken_port_is_refused_before_anything_starts(tmp_path):
    # Regression (issue 21): a second server on a taken port printed uvicorn's "address already in use" and exited 0.
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for command in (["server"], ["ui", "--uri", f"sqlite:///{tmp_path}/ui.db"]):
            done = subprocess.run([sys.executable, "-m", "studykit.cli.commands", *command, "--port", str(port)], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 1 and f"127.0.0.1:{port} is already in use" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "ui.db").exists()  # refused before the store


def test_a_server_that_ends_by_itself_exits_non_zero(capsys):
    import os
    import sys

    from studykit.tracking import ui

    assert ui.supervise([sys.executable, "-c", "pass"], dict(os.environ)) == 1  # mlflow exits 0 when uvicorn fails
    assert "the server exited by itself (exit code 0)" in capsys.readouterr().err
    assert ui.supervise([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)) == 3


@pytest.mark.slow
def test_kill_9_of_the_server_cli_stops_its_whole_tree(tmp_path):
    # Regression (issue 21): uvicorn, started by `mlflow server`, outlived a SIGKILLed CLI and kept serving.
    import time

    import psutil

    from studykit.infra.procs import alive, answers, port_taken

    proc, uri = start_server(tmp_path)
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert any("uvicorn" in " ".join(p.cmdline()) for p in tree), [p.cmdline()[:4] for p in tree]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p.pid) for p in tree):
        time.sleep(0.5)
    assert not [p.cmdline()[:4] for p in tree if alive(p.pid)]
    assert not answers(uri + "/health", timeout_s=2)
    assert port_taken("127.0.0.1", int(uri.rsplit(":", 1)[1])) is None  # a new server can take the port


def test_auth_takes_the_admin_password_from_the_environment_or_a_private_file_never_a_flag(tmp_path, monkeypatch):
    from studykit.tracking import server_auth

    monkeypatch.delenv(server_auth.ADMIN_ENV, raising=False)
    with pytest.raises(ValueError, match=r"\$STUDYKIT_SERVER_ADMIN_PASSWORD or pass --admin-password-file"):
        server_auth.admin_password(None)
    assert server_auth.admin_password(None, {server_auth.ADMIN_ENV: "from-the-env-123"}) == "from-the-env-123"
    with pytest.raises(ValueError, match="at least 12 characters"):
        server_auth.admin_password(None, {server_auth.ADMIN_ENV: "short"})
    secret = tmp_path / "pw"
    secret.write_text("from-a-file-1234\nignored\n")
    secret.chmod(0o644)
    with pytest.raises(ValueError, match="readable by other users; `chmod 600"):
        server_auth.admin_password(str(secret))
    secret.chmod(0o600)
    assert server_auth.admin_password(str(secret), {server_auth.ADMIN_ENV: "the-file-wins-0"}) == "from-a-file-1234"
    with pytest.raises(ValueError, match="no such file"):
        server_auth.admin_password(str(tmp_path / "missing"))
    with pytest.raises(SystemExit):  # there is no flag that takes the password itself
        cli.build_parser().parse_args(["server", "--auth", "--admin-password", "x"])
    assert cli.main(["server", "--admin-password-file", str(secret)]) == 2  # only with --auth: nothing is ignored
    assert cli.main(["server", "--default-permission", "READ"]) == 2


def test_auth_config_points_mlflow_at_a_user_store_beside_the_runs_and_refuses_a_stale_admin_password(tmp_path):
    import configparser

    from studykit.tracking import server_auth

    env = server_auth.server_env({"PATH": "/bin"}, tmp_path / "mlruns", "admin", "first-password-1", "EDIT")
    ini = configparser.ConfigParser()
    ini.read(env["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini["mlflow"]["database_uri"] == f"sqlite:///{tmp_path / 'mlruns' / 'basic_auth.db'}"
    assert ini["mlflow"]["default_permission"] == "EDIT" and "first-password-1" not in Path(
        env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()  # the secret travels in the server's environment only
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "first-password-1" and env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(ini["mlflow"]["database_uri"])
    store.create_user("admin", "first-password-1", is_admin=True)  # what MLflow does on the first start
    server_auth.server_env({}, tmp_path / "mlruns", "admin", "first-password-1", "EDIT")  # same password: fine
    with pytest.raises(ValueError, match="exists with another password.*update-password"):
        server_auth.server_env({}, tmp_path / "mlruns", "admin", "a-new-password-2", "EDIT")


def test_server_auth_and_allowed_hosts_reach_mlflow_server():
    cmd = server.command("sqlite:////x/mlflow.db", "/x/served", "0.0.0.0", 5001, auth=True,
                         allowed_hosts=server.allowed_hosts(["node1.lab", "db.lab:5001"], "0.0.0.0", 5001))
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    hosts = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    name = server.client_uri("0.0.0.0", 5001).split("//")[1].rsplit(":", 1)[0]
    assert name != "localhost" and {"node1.lab", "node1.lab:*", "db.lab:5001", name, "localhost:*"} <= set(hosts)
    assert "--app-name" not in server.command("sqlite:////x/mlflow.db", "/x/served", "127.0.0.1", 5001)
    assert server.allowed_hosts([], "127.0.0.1", 5001) is None  # MLflow's defaults stay as they are
    with pytest.raises(ValueError, match="--allowed-hosts"):
        server.allowed_hosts(["http://node1.lab/"], "127.0.0.1", 5001)

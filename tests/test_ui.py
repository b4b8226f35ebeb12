"""`studykit ui`: loopback by default, a warning otherwise, and a real life cycle on a loopback port: it answers HTTP,
then SIGTERM (or SIGINT) stops it with every child process (the MLflow server and its workers)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from studykit.cli import commands as cli
from studykit.tracking import ui
from studykit.infra.procs import answers, free_port


def test_host_defaults_to_loopback_and_others_are_flagged():
    args = cli.build_parser().parse_args(["ui"])
    assert (args.host, args.port) == ("127.0.0.1", 5000)
    assert cli.build_parser().parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
    assert all(map(ui.is_loopback, ["127.0.0.1", "localhost", "::1", "127.0.0.2"]))
    assert not any(map(ui.is_loopback, ["0.0.0.0", "192.168.1.4", "example.org"]))
    cmd = ui.command("sqlite:////x.db", "127.0.0.1", 5001)
    assert cmd[cmd.index("--workers") + 1] == "1" and cmd[cmd.index("--host") + 1] == "127.0.0.1"


def _answers(port: int) -> bool:
    return answers(f"http://127.0.0.1:{port}/")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_serves_then_stops_with_all_its_children(tmp_path, sig):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "studykit.cli.commands", "ui", "--port", str(port), "--uri",
                             f"sqlite:///{tmp_path}/mlflow.db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not _answers(port):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.5)
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree, "mlflow runs as a child process"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline()[:4] for p in alive]
    assert not _answers(port)

"""Warm kernels (studykit.study.executors.zygote / warm): each cell runs in a fresh kernel forked from a zygote that did the
imports; no state passes from one cell to the next; a failing notebook fails with its error; stop() ends a running
cell and its kernel; papermill writes the executed notebook and the log as before."""

from __future__ import annotations

import sys
import threading
import time

import nbformat
import psutil
import pytest

from studykit.study.executors.local import LocalExecutor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm kernels are Linux-only")

PROBE = """import os, sys
import studykit
seen = getattr(studykit, "_probe_seen", 0) + 1
studykit._probe_seen = seen  # a kernel that ran another cell before would print 2
print("probe", os.getpid(), os.getppid(), seen, "torch" in sys.modules)"""


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    out = tmp_path_factory.mktemp("warm")
    ex = LocalExecutor(out, f"sqlite:///{out / 'mlflow.db'}")
    ex.warm()
    assert ex.zygote is not None
    yield ex
    ex.close()
    assert ex.zygote.proc.poll() is not None  # the zygote ends with the executor


def _probe(executor, tmp_path, key):
    nb = _notebook(tmp_path / f"{key}.ipynb", "x = 1", PROBE)
    rc, tail = executor.run(key, nb, {}, tmp_path / f"{key}-out.ipynb")
    assert rc == 0, tail
    out = nbformat.read(tmp_path / f"{key}-out.ipynb", as_version=4)
    words = out.cells[1].outputs[0]["text"].split()
    assert words[0] == "probe"
    return int(words[1]), int(words[2]), int(words[3]), words[4] == "True"


def test_each_cell_gets_a_fresh_forked_kernel_with_imports_done(executor, tmp_path):
    first = _probe(executor, tmp_path, "a")
    second = _probe(executor, tmp_path, "b")
    assert first[0] != second[0]  # two kernels
    assert first[2] == second[2] == 1  # neither saw the other's state
    assert first[3] and second[3]  # torch was imported before the cell ran: by the zygote
    assert "warm kernel" in (executor.out_dir / "logs" / "a.log").read_text()
    assert not psutil.pid_exists(first[0]) or psutil.Process(first[0]).status() == psutil.STATUS_ZOMBIE


def test_failing_notebook_fails_with_its_error(executor, tmp_path):
    nb = _notebook(tmp_path / "bad.ipynb", "raise ValueError('broken on purpose')")
    rc, tail = executor.run("bad", nb, {}, tmp_path / "bad-out.ipynb")
    assert rc == 1
    assert "broken on purpose" in tail


def test_parameters_are_injected(executor, tmp_path):
    nb = _notebook(tmp_path / "p.ipynb", "value = 0", "print('value', value)")
    nbf = nbformat.read(nb, as_version=4)
    nbf.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nbf, nb)
    rc, tail = executor.run("p", nb, {"value": 41}, tmp_path / "p-out.ipynb")
    assert rc == 0, tail
    out = nbformat.read(tmp_path / "p-out.ipynb", as_version=4)
    assert any("value 41" in o.get("text", "") for c in out.cells for o in c.get("outputs", []))


def test_stop_ends_a_running_cell_and_its_kernel(executor, tmp_path):
    nb = _notebook(tmp_path / "slow.ipynb", "import os; print('kernel', os.getpid(), flush=True)",
                   "import time; time.sleep(600)")
    box = {}
    thread = threading.Thread(target=lambda: box.update(rc=executor.run("slow", nb, {}, tmp_path / "slow-out.ipynb")))
    thread.start()
    log = executor.out_dir / "logs" / "slow.log"
    deadline = time.time() + 300
    while time.time() < deadline and "kernel " not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    kernel = int(log.read_text().split("kernel ", 1)[1].split()[0])
    executor.stop(grace=5.0)
    thread.join(60)
    assert not thread.is_alive() and box["rc"][0] != 0
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE


def test_a_zygote_that_died_before_its_first_cell_falls_back_to_plain_papermill(tmp_path):
    ex = LocalExecutor(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    ex.warm()
    ex.zygote.proc.kill()
    nb = _notebook(tmp_path / "t.ipynb", "print('plain')")
    rc, tail = ex.run("t", nb, {}, tmp_path / "t-out.ipynb")
    assert rc == 0, tail
    assert not ex.zygote.usable and "warm kernel" not in (tmp_path / "logs" / "t.log").read_text()
    ex.close()


def test_stray_stdout_lines_do_not_stop_the_zygote_reader_and_its_end_releases_every_waiting_cell(tmp_path):
    import subprocess

    from studykit.study.executors.warm import Zygote

    zyg = Zygote.__new__(Zygote)  # the reader alone, over a process that prints what a zygote might
    zyg.lock, zyg.ready, zyg.alive = threading.Lock(), threading.Event(), True
    zyg.pids, zyg.rcs, zyg.missing = {}, {}, []
    zyg.events = {"a": threading.Event(), "b": threading.Event()}
    lines = ['a library banner', '{"ready": []}', '[1, 2]', '{"id": "a", "pid": 7}', '{"id": "a", "rc": 0}']
    zyg.proc = subprocess.Popen([sys.executable, "-c", f"print({chr(10).join(lines)!r})"], stdout=subprocess.PIPE)
    zyg._read()
    assert zyg.ready.is_set() and zyg.rcs == {"a": 0, "b": -9} and not zyg.alive  # b: its zygote is gone
    assert all(e.is_set() for e in zyg.events.values())

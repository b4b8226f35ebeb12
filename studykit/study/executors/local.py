"""The local executor: each cell is `python -m papermill NB OUT -f params.yaml -k python3 --cwd <cwd> --log-output`
in its own session, with OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false and MLFLOW_TRACKING_URI
set, its output in `<out_dir>/logs/<key>.log` and its parameters in `<out_dir>/params/<key>.yaml`.

No orphans, whatever ends the study process (guaranteed on Linux): papermill runs under
`studykit.study.executors.child`, which sets PR_SET_PDEATHSIG=SIGKILL, so it dies with the thread that started it, even
on a SIGKILL of the study; its kernel runs from a `python3` kernelspec written to `<out_dir>/.jupyter/kernels/`
(first on JUPYTER_PATH for papermill only) that starts ipykernel through the same wrapper, so the kernel dies with
papermill. Both run in sessions of their own (a Ctrl-C in the terminal reaches only the study process, which then
stops them in order). `stop` sends SIGINT to papermill's group and to each of its descendants (the kernel: the
trainer then ends its run KILLED), then SIGTERM, then SIGKILL, `grace` seconds apart.

Warm kernels (the default on Linux; `STUDYKIT_WARM_KERNELS=0` turns them off): each cell runs in a process forked
from a zygote that imported the cells' libraries once (`studykit.study.executors.zygote`), with the same log, exit codes,
sessions, parent-death chain (study -> zygote -> cell process -> kernel) and `stop` behaviour; a cell still gets a
kernel of its own that ran nothing before. If the zygote cannot start or dies, cells fall back to the papermill
subprocesses above.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from studykit.infra.procs import descendants, signal_tree

CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
KERNEL = "python3"  # the name the notebooks' metadata already uses: executed notebooks open anywhere
WARM_KERNELS = lambda: os.environ.get("STUDYKIT_WARM_KERNELS", "1") != "0"  # noqa: E731 - read at warm() time


def write_kernelspec(root: Path) -> Path:
    """`<root>/kernels/python3/kernel.json`: ipykernel started through the die-with-parent wrapper."""
    spec = {"argv": ["python", "-m", "studykit.study.executors.child", "--parent-env", "JPY_PARENT_PID",
                     "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}
    folder = root / "kernels" / KERNEL
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".kernel.json.{os.getpid()}.{threading.get_ident()}"
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, folder / "kernel.json")  # atomic: several study processes may write it at once
    return root


class LocalExecutor:
    """Launches papermill subprocesses and remembers them, so `stop` can end them all."""

    def __init__(self, out_dir: Path, uri: str):
        self.out_dir, self.uri = out_dir, uri
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.jupyter = write_kernelspec(out_dir / ".jupyter")
        self.zygote = None

    def warm(self) -> None:
        """Start the zygote now (it imports while the caller prepares). Call it from the thread that lives as long
        as the executor is used: the zygote dies with that thread (parent-death signal). Cells run before it, or
        without it, run as plain papermill subprocesses."""
        if self.zygote is None and sys.platform.startswith("linux") and WARM_KERNELS():
            from studykit.study.executors.warm import Zygote

            self.zygote = Zygote(self.env(), self.out_dir / "logs" / "zygote.log")

    def env(self) -> dict[str, str]:
        env = dict(os.environ, **CHILD_ENV, MLFLOW_TRACKING_URI=self.uri)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the kernel's `python`
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(self.jupyter.resolve()), env.get("JUPYTER_PATH")) if p)
        env.pop("JPY_PARENT_PID", None)  # a study started from a notebook: not papermill's parent
        return env

    def run(self, key: str, notebook: Path, params: dict[str, Any], out_nb: Path) -> tuple[int, str]:
        pfile = self.out_dir / "params" / f"{key}.yaml"
        log = self.out_dir / "logs" / f"{key}.log"
        for p in (pfile, log, out_nb):
            p.parent.mkdir(parents=True, exist_ok=True)
        pfile.write_text(yaml.safe_dump(params, sort_keys=False))
        if self.zygote is not None and self.zygote.usable:
            # a zygote that died under this cell fails it (-9; its process died too); later cells run plain
            rc = self.zygote.run(key, notebook, out_nb, pfile, log)
            if rc is not None:
                return rc, error_tail(log) or ("" if rc != -9 else f"the warm-kernel zygote died (see {log.parent})")
        cmd = [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()), "papermill",
               str(notebook), str(out_nb), "-f", str(pfile), "-k", KERNEL, "--cwd", str(Path.cwd()),
               "--no-progress-bar", "--log-output"]
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
            with self.lock:
                self.procs[key] = proc
            rc = proc.wait()
            with self.lock:
                self.procs.pop(key, None)
        return rc, error_tail(log)

    def stop(self, grace: float = 10.0) -> None:
        import psutil

        with self.lock:
            procs = list(self.procs.values())
        for pid in self.zygote.running_pids() if self.zygote is not None else []:
            try:
                procs.append(psutil.Process(pid))
            except psutil.Error:
                pass
        trees = {p.pid: descendants(p.pid) for p in procs}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            live = [p for p in procs if _running(p)]
            for p in live:
                signal_tree(p.pid, trees[p.pid], sig)
            deadline = time.time() + grace
            while any(_running(p) for p in live) and time.time() < deadline:
                time.sleep(0.2)

    def close(self) -> None:
        """End the zygote (cells that still run die with it); nothing else outlives the executor anyway."""
        if self.zygote is not None:
            self.zygote.close()


def _running(proc) -> bool:
    """A Popen or psutil.Process that has not exited (a zombie has exited)."""
    if isinstance(proc, subprocess.Popen):
        return proc.poll() is None
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def error_tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    marks = [i for i, line in enumerate(text) if "Error" in line or "Exception" in line]
    start = max(0, marks[-1] - lines + 3) if marks else max(0, len(text) - lines)
    return "\n".join(text[start:start + lines])

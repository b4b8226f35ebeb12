"""Warm kernels: one process per study imports the cells' libraries once, then forks a fresh process per cell.

Why: a toy cell spends more CPU importing torch, transformers, MLflow and studykit (about 6 s on an idle core) and
starting papermill and ipykernel than in some of its training; the study ran that import 87 times. Here the
zygote (`python -m studykit.study.executors.child --parent <study pid> studykit.study.executors.zygote`) imports them once
(`PRELOAD`) and then, for each cell, forks a cell process that forks its kernel: the kernel starts with every
import done and has run no cell before. One fresh kernel per cell, as with plain papermill: no kernel, and no
process, ever runs two cells.

Protocol (JSON lines): the zygote prints `{"ready": [modules it could not import]}` once; each request
`{"id", "notebook", "out", "params", "cwd", "log"}` on its stdin forks a cell process and answers
`{"id", "pid"}`, then `{"id", "rc"}` when that process exits. The zygote exits at the end of its stdin.

A cell process: its own session (`setsid`: a signal to its group reaches it and its kernel, as to papermill),
stdout/stderr to the cell's log, parent-death signal on the zygote; it writes a connection file, forks the kernel
(ipykernel on that file, parent-death signal on the cell process, history in memory as nbclient asks, numpy's global
RNG reseeded from the OS as in a new process), then runs the notebook with papermill against that kernel
(`WarmKernelManager`), shuts the kernel down and exits with papermill's exit status: 0, 1 for a failed notebook, 138
for a dead kernel (papermill's CLI codes). The zygote runs no cell code and opens no store, socket or thread of its
own before forking.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

PRELOAD = ("torch", "transformers", "transformers.models.llama.modeling_llama", "mlflow", "mlflow.tracking",
           "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.db.utils", "alembic.command", "alembic.script",
           "alembic.runtime.migration", "sqlalchemy", "studykit.engine.trainer", "studykit.probes.alignment", "studykit.toy.tokenizer",
           "studykit.analysis.figures", "studykit.analysis.report", "matplotlib.pyplot", "seaborn", "papermill", "papermill.engines",
           "nbclient", "ipykernel.kernelapp", "jupyter_client")
"""What every cell imports anyway (the run notebooks and 10_compare); one that fails to import is skipped."""
SHUTDOWN_WAIT = 5.0
"""Seconds a kernel gets to exit after a shutdown request (jupyter_client's shutdown_wait_time)."""


def _say(data: dict) -> None:
    os.write(1, (json.dumps(data) + "\n").encode())


def preload() -> list[str]:
    import importlib

    missing = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - an optional library: the cell imports it itself (and fails there)
            missing.append(f"{name}: {err}")
    return missing


def main() -> None:
    _say({"ready": preload()})
    children: dict[int, str] = {}
    buf = b""
    open_stdin = True
    while open_stdin or children:
        if open_stdin and select.select([0], [], [], 0.2)[0]:
            chunk = os.read(0, 65536)
            open_stdin = bool(chunk)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    req = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _cell_process(req)  # never returns
                    children[pid] = req["id"]
                    _say({"id": req["id"], "pid": pid})
        elif not open_stdin:
            time.sleep(0.2)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            _say({"id": children.pop(pid), "rc": os.waitstatus_to_exitcode(status)})
    os._exit(0)  # an interpreter shutdown with these libraries loaded can hang in native finalisers: skip it


def _redirect(log: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in (null, out):
        os.close(fd)


def _cell_process(req: dict) -> None:
    rc = 1
    try:
        from studykit.infra.procs import die_with_parent

        zygote = os.getppid()
        os.setsid()
        die_with_parent(zygote)
        _redirect(req["log"])
        sys.stdin = open(os.devnull)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.chdir(req["cwd"])
        rc = _execute(req)
    except SystemExit as stop:
        rc = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the cell's log gets the traceback, the study its exit code
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _start_kernel(conn_file: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        from studykit.infra.procs import die_with_parent

        die_with_parent(os.getppid())
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # ipykernel's own parent poller, as papermill sets it
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()  # a new process would have drawn a fresh global seed
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=["-f", conn_file, "--HistoryManager.hist_file=:memory:"])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def _execute(req: dict) -> int:
    import logging

    import nbclient
    import papermill
    import yaml
    from jupyter_client.connect import write_connection_file

    logging.basicConfig(level="INFO", format="%(message)s")  # papermill's CLI: --log-output prints cell output
    conn_file = os.path.join(os.path.dirname(req["log"]), f".kernel-{os.getpid()}.json")
    write_connection_file(conn_file, ip="127.0.0.1")
    kernel = _start_kernel(conn_file)
    print(f"studykit: warm kernel {kernel} (imports done by the study's zygote) for {req['notebook']}", flush=True)
    km = WarmKernelManager.attach(conn_file, kernel)
    with open(req["params"]) as fh:
        params = yaml.safe_load(fh) or {}
    try:
        papermill.execute_notebook(req["notebook"], req["out"], parameters=params, kernel_name="python3",
                                   progress_bar=False, log_output=True, cwd=req["cwd"], km=km)
        return 0
    except nbclient.exceptions.DeadKernelError:
        traceback.print_exc()
        return 138
    except papermill.PapermillExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        t_end = time.time()
        km.end()
        print(f"studykit: kernel {kernel} shut down in {time.time() - t_end:.1f} s (exit status {km.exit_status})",
              flush=True)


def _make_manager_class():
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    class WarmKernelManager(AsyncKernelManager):
        """An AsyncKernelManager of a kernel this process forked (nbclient then starts none of its own)."""

        @classmethod
        def attach(cls, conn_file: str, pid: int) -> "WarmKernelManager":
            km = cls(kernel_name="python3")
            km.load_connection_file(conn_file)
            km.kernel_pid, km.exit_status = pid, None
            return km

        def alive(self) -> bool:
            if self.exit_status is None:
                done, status = os.waitpid(self.kernel_pid, os.WNOHANG)
                if done:
                    self.exit_status = os.waitstatus_to_exitcode(status)
            return self.exit_status is None

        @property
        def has_kernel(self) -> bool:
            return self.alive()

        async def start_kernel(self, **kw):  # type: ignore[override]
            raise RuntimeError(f"the warm kernel {self.kernel_pid} exited before the notebook ran "
                               f"(exit status {self.exit_status})")

        async def _async_is_alive(self) -> bool:  # type: ignore[override]  (clients call the private name)
            return self.alive()

        async def _async_interrupt_kernel(self) -> None:  # type: ignore[override]
            if self.alive():
                os.kill(self.kernel_pid, signal.SIGINT)

        async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
            if not now and self.alive():
                self._connect_control_socket()
                self.session.send(self._control_socket, self.session.msg("shutdown_request", {"restart": False}))
                deadline = time.time() + SHUTDOWN_WAIT
                while self.alive() and time.time() < deadline:
                    await asyncio.sleep(0.1)
            if self.alive():
                os.kill(self.kernel_pid, signal.SIGKILL)
                os.waitpid(self.kernel_pid, 0)
                self.exit_status = -signal.SIGKILL
            await self.cleanup_resources()

        is_alive, interrupt_kernel, shutdown_kernel = _async_is_alive, _async_interrupt_kernel, _async_shutdown_kernel

        def end(self) -> None:
            """Shut the kernel down after the notebook (a shutdown request, as nbclient's graceful cleanup sends;
            SIGKILL after SHUTDOWN_WAIT seconds) and remove its connection file."""
            from jupyter_client import BlockingKernelClient

            if self.alive():
                kc = BlockingKernelClient()
                try:
                    kc.load_connection_info(self.get_connection_info())
                    kc.start_channels()
                    kc.shutdown()
                except Exception:  # noqa: BLE001 - a kernel that cannot hear the request is killed below
                    traceback.print_exc()
                deadline = time.time() + SHUTDOWN_WAIT
                while self.alive() and time.time() < deadline:  # channels open until it is gone: nothing lost
                    time.sleep(0.05)
                kc.stop_channels()
            if self.alive():
                os.kill(self.kernel_pid, signal.SIGKILL)
                os.waitpid(self.kernel_pid, 0)
                self.exit_status = -signal.SIGKILL
            self.cleanup_connection_file()

    return WarmKernelManager


class _Lazy:
    def __getattr__(self, name):
        cls = _make_manager_class()
        globals()["WarmKernelManager"] = cls
        return getattr(cls, name)


WarmKernelManager = _Lazy()  # built on first use: the zygote imports jupyter_client once, before forking


if __name__ == "__main__":
    main()

"""`studykit server`: one real MLflow tracking server as the shared store of a study that runs on several machines.

`serve(backend_store_uri, artifacts_destination, host, port, workers)` runs `mlflow server` with artifact proxying
(`--serve-artifacts`: clients upload and download artifacts through the server, so a Ray node never writes to a
path only one machine can see), bound to 127.0.0.1 unless `host` says otherwise (any other address gets the same
warning as `studykit ui`: the server has no login). Defaults: the backend store is the embedded
`sqlite:///<cwd>/mlruns/mlflow.db` and artifacts go under `<cwd>/mlruns/server-artifacts`; a Postgres or MySQL URI
(`postgresql://...`, `mysql+pymysql://...`) is passed through as it is (its driver must be installed). It prints the
URI clients use (`--tracking-uri` / `$MLFLOW_TRACKING_URI`). The server's process tree is supervised like `studykit
ui`'s (`studykit.tracking.ui.supervise`): SIGINT, SIGTERM or SIGHUP stop all of it, and all of it dies with this process
(kill -9 included); a port in use, or a server that ends by itself, exits non-zero. One web worker
and no job runner by default (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` unless set): it stores runs, nothing more.

Why a module beside `ui.py` rather than an option of it: the UI browses one user's local store, the server is a
shared service with its own options (artifact destination, database stores, a worker count); both share the
process supervision and the loopback check of `ui.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from studykit.tracking import ui

DEFAULT_WORKERS = 1  # one uvicorn worker: a study's cells write a few metrics per step; raise it for large clusters
DB_SCHEMES = ("sqlite:", "postgresql", "postgres:", "mysql", "mssql")


def default_backend(root: Path | None = None) -> str:
    """The embedded store's database (what `tracking.tracking_uri` uses when nothing is set)."""
    return f"sqlite:///{((root or Path.cwd()) / 'mlruns' / 'mlflow.db').resolve()}"


def default_artifacts(root: Path | None = None) -> str:
    return str(((root or Path.cwd()) / "mlruns" / "server-artifacts").resolve())


def check_backend(uri: str) -> str:
    """The backend store URI as given, when it is a database URI MLflow's server accepts; ValueError otherwise."""
    if not uri.startswith(DB_SCHEMES):
        raise ValueError(f"--backend-store-uri {uri!r}: expected a database URI (sqlite:///PATH, postgresql://..., "
                         "mysql+pymysql://...); a tracking server needs a database store")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def command(backend: str, artifacts: str, host: str, port: int, workers: int = DEFAULT_WORKERS) -> list[str]:
    return [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()), "mlflow", "server",
            "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination", artifacts,
            "--host", host, "--port", str(port), "--workers", str(workers)]


def client_uri(host: str, port: int) -> str:
    """The URI clients use; a wildcard bind address is reached through this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        import socket

        host = socket.getfqdn()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(backend_store_uri: str | None = None, artifacts_destination: str | None = None, host: str = "127.0.0.1",
          port: int = 5000, workers: int = DEFAULT_WORKERS) -> int:
    """Run the tracking server until stopped (module docstring); returns its exit code."""
    from studykit.tracking.experiment import client

    taken = ui.refuse_taken_port(host, port)
    if taken:
        return taken
    backend = check_backend(backend_store_uri or default_backend())
    if backend.startswith("sqlite:///"):
        client(backend)  # create or upgrade the tables under studykit's store lock, as every studykit process does
    artifacts = artifacts_destination or default_artifacts()
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    if not ui.is_loopback(host):
        print(f"warning: serving the MLflow tracking server on {host}: anyone who can reach this address can read "
              "and change the store (no login); keep it on a private network", file=sys.stderr)
    cmd = command(backend, artifacts, host, port, workers)
    print("running:", " ".join(cmd[5:]), flush=True)
    print(f"tracking URI: {client_uri(host, port)}  (pass it as --tracking-uri, or export MLFLOW_TRACKING_URI)",
          flush=True)
    env = ui.server_env()
    env.pop("MLFLOW_TRACKING_URI", None)  # the server's own store is --backend-store-uri, never a client setting
    return ui.supervise(cmd, env)


def cmd_server(args) -> int:
    return serve(args.backend_store_uri, args.artifacts_destination, args.host, args.port, args.workers)


def register(sub) -> None:
    """Add `studykit server` to the CLI's sub-commands."""
    p = sub.add_parser("server", help="a shared MLflow tracking server (artifact proxying; stops with its children "
                                      "on Ctrl-C or SIGTERM)")
    p.add_argument("--backend-store-uri", help="database URI (default: sqlite under ./mlruns; postgresql:// or "
                                               "mysql:// passed through)")
    p.add_argument("--artifacts-destination", help="where proxied artifacts are stored: a folder or a URI such as "
                                                   "s3://bucket/path (default: ./mlruns/server-artifacts)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others get a warning)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="web workers (default 1)")
    p.set_defaults(func=cmd_server)

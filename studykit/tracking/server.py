"""`studykit server`: one real MLflow tracking server as the shared store of a study that runs on several machines.

`serve(backend_store_uri, artifacts_destination, host, port, workers, auth, hosts)` runs `mlflow server` with artifact
proxying (`--serve-artifacts`: clients upload and download artifacts through the server, so a Ray node never writes
to a path only one machine can see), bound to 127.0.0.1 unless `host` says otherwise (any other address without
`--auth` gets the same warning as `studykit ui`: no login). `--auth` runs MLflow's `basic-auth` app
(`studykit.tracking.server_auth`: admin password from an environment variable or a file). MLflow refuses requests
whose Host header is not in its allowed hosts (loopback and private addresses by default): `--allowed-hosts` adds
the names clients use, and a server bound to 0.0.0.0 adds this machine's name, which the printed URI uses.
Defaults: the backend store is the embedded
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

from studykit.tracking import server_auth, ui

DEFAULT_WORKERS = 1  # one uvicorn worker: a study's cells write a few metrics per step; raise it for large clusters
DB_SCHEMES = ("sqlite:", "postgresql", "postgres:", "mysql", "mssql")
WILDCARDS = ("0.0.0.0", "::", "")


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


def command(backend: str, artifacts: str, host: str, port: int, workers: int = DEFAULT_WORKERS,
            auth: bool = False, allowed_hosts: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()), "mlflow", "server",
            "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination", artifacts,
            "--host", host, "--port", str(port), "--workers", str(workers)] + \
        (["--app-name", "basic-auth"] if auth else []) + \
        (["--allowed-hosts", ",".join(allowed_hosts)] if allowed_hosts else [])


def allowed_hosts(names: list[str], host: str, port: int) -> list[str] | None:
    """MLflow's Host-header allow list: its defaults (loopback, private addresses) plus `names` (with any port when
    they name none) plus, when bound to a wildcard address, the host name of the printed URI; None = the defaults.
    MLflow refuses a request whose Host header matches none (its DNS-rebinding guard), so a cluster whose nodes
    reach the server by name needs that name here."""
    from urllib.parse import urlsplit

    from mlflow.server.security_utils import get_default_allowed_hosts

    extra = [n.strip() for n in names if n.strip()]
    if host in WILDCARDS:
        extra.append(urlsplit(client_uri(host, port)).hostname or "")
    if not extra:
        return None
    if any(not n or "," in n or "/" in n for n in extra):
        raise ValueError(f"--allowed-hosts {names!r}: expected host names such as node1.lab (comma-free)")
    return list(dict.fromkeys(get_default_allowed_hosts() + [p for n in extra for p in (n, f"{n}:*")
                                                              if ":" not in n or p == n]))


def client_uri(host: str, port: int) -> str:
    """The URI clients use; a wildcard bind address is reached through this machine's name."""
    if host in WILDCARDS:
        import socket

        host = socket.getfqdn()
        if host.split(".")[0] == "localhost":  # a hosts file that maps the name to loopback: the bare name
            host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(backend_store_uri: str | None = None, artifacts_destination: str | None = None, host: str = "127.0.0.1",
          port: int = 5000, workers: int = DEFAULT_WORKERS, auth: dict | None = None,
          hosts: list[str] | None = None) -> int:
    """Run the tracking server until stopped (module docstring); returns its exit code. `auth`: the `admin`,
    `password` and `default_permission` of MLflow's basic-auth app (`server_auth`); `hosts`: extra allowed host
    names (`allowed_hosts`)."""
    from studykit.tracking.experiment import client

    taken = ui.refuse_taken_port(host, port)
    if taken:
        return taken
    backend = check_backend(backend_store_uri or default_backend())
    allowed = allowed_hosts(hosts or [], host, port)
    env = ui.server_env()
    env.pop("MLFLOW_TRACKING_URI", None)  # the server's own store is --backend-store-uri, never a client setting
    if auth is not None:
        env = server_auth.server_env(env, Path.cwd() / "mlruns", **auth)
    if backend.startswith("sqlite:///"):
        client(backend)  # create or upgrade the tables under studykit's store lock, as every studykit process does
    artifacts = artifacts_destination or default_artifacts()
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    if not ui.is_loopback(host) and auth is None:
        print(f"warning: serving the MLflow tracking server on {host}: anyone who can reach this address can read "
              "and change the store (no login: add --auth); keep it on a private network", file=sys.stderr)
    cmd = command(backend, artifacts, host, port, workers, auth is not None, allowed)
    print("running:", " ".join(cmd[5:]), flush=True)
    print(f"tracking URI: {client_uri(host, port)}  (pass it as --tracking-uri, or export MLFLOW_TRACKING_URI)",
          flush=True)
    if host in WILDCARDS or hosts:
        print("clients must reach it by a name in the allowed hosts (this machine's name when bound to "
              f"{host or 'all addresses'}, loopback and private addresses, and --allowed-hosts: "
              f"{', '.join(hosts or []) or 'none'})", flush=True)
    if auth is not None:
        print(f"logins on (MLflow basic-auth, admin user {auth['admin']!r}): each user sets MLFLOW_TRACKING_USERNAME "
              "and MLFLOW_TRACKING_PASSWORD", flush=True)
    return ui.supervise(cmd, env)


def cmd_server(args) -> int:
    auth = None
    if args.auth:
        auth = {"admin": args.admin_user or "admin", "password": server_auth.admin_password(args.admin_password_file),
                "default_permission": args.default_permission or "EDIT"}
    else:
        given = [f for f, v in (("--admin-user", args.admin_user), ("--admin-password-file", args.admin_password_file),
                                ("--default-permission", args.default_permission)) if v]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --auth (logins)")
    hosts = [h for item in args.allowed_hosts for h in item.split(",")]
    return serve(args.backend_store_uri, args.artifacts_destination, args.host, args.port, args.workers, auth, hosts)


def register(sub) -> None:
    """Add `studykit server` to the CLI's sub-commands."""
    p = sub.add_parser("server", help="a shared MLflow tracking server (artifact proxying; stops with its children "
                                      "on Ctrl-C or SIGTERM)",
                       allow_abbrev=False)  # `--admin-password SECRET` must not pass as --admin-password-file
    p.add_argument("--backend-store-uri", help="database URI (default: sqlite under ./mlruns; postgresql:// or "
                                               "mysql:// passed through)")
    p.add_argument("--artifacts-destination", help="where proxied artifacts are stored: a folder or a URI such as "
                                                   "s3://bucket/path (default: ./mlruns/server-artifacts)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others get a warning)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="web workers (default 1)")
    p.add_argument("--allowed-hosts", action="append", default=[], metavar="NAMES",
                   help="host names clients use to reach the server (comma-separated, repeatable), besides "
                        "loopback, private addresses and this machine's name when bound to 0.0.0.0")
    p.add_argument("--auth", action="store_true", help="logins (MLflow's basic-auth app); the admin password comes "
                                                       f"from ${server_auth.ADMIN_ENV} or --admin-password-file")
    p.add_argument("--admin-user", help="the admin's user name (with --auth; default admin)")
    p.add_argument("--admin-password-file", help="a file (mode 600) whose first line is the admin password")
    p.add_argument("--default-permission", choices=server_auth.PERMISSIONS,
                   help="what every user may do on experiments others created (with --auth; default EDIT)")
    p.set_defaults(func=cmd_server)

"""Logins on `studykit server` (`--auth`: MLflow's `basic-auth` app) and the clients' check of their login.

Server side: the admin password comes from `$STUDYKIT_SERVER_ADMIN_PASSWORD` or from a file
(`--admin-password-file`, its first line), never from a flag value (which would land in shell history and `ps`). It
reaches MLflow as `MLFLOW_AUTH_ADMIN_PASSWORD` in the server's environment. MLflow uses it only to create the admin
user on the first start; later the stored password counts, so `check_admin` refuses a password that no longer
matches (a change goes through MLflow's `users/update-password` API) instead of accepting it and ignoring it. The
auth app's settings are written to `<store dir>/basic_auth.ini` (`MLFLOW_AUTH_CONFIG_PATH`; no secret in it): the
user database beside the run store, the admin's name, a 60 s cache of checked logins and `default_permission`
(EDIT by default: a lab's users write
into one study's experiment, whoever created it; MLflow's own default, READ, would stop them). A lab's own
`$MLFLOW_AUTH_CONFIG_PATH` is used as it is. The CSRF key of the auth app's sign-up page is
`$MLFLOW_FLASK_SERVER_SECRET_KEY`, random per start unless set.

Client side: `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (MLflow's own variables) carry a user's
login to every MLflow client: the study process, papermill kernels (they inherit the environment) and Ray workers
(every `MLFLOW_*` variable is in the task's environment). `check_login` is the study's pre-flight: one cheap read
that turns a refused login into one line naming the variables, before any cell runs.
"""

from __future__ import annotations

import configparser
import os
import secrets
import stat
from pathlib import Path

ADMIN_ENV = "STUDYKIT_SERVER_ADMIN_PASSWORD"
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
AUTH_CACHE_S = 60


class LoginError(ValueError):
    """The tracking server refused this process's login (or asked for one it was not given)."""


def admin_password(password_file: str | None, environ: dict[str, str] | None = None) -> str:
    """The admin password: the first line of `password_file`, else `$STUDYKIT_SERVER_ADMIN_PASSWORD`."""
    environ = os.environ if environ is None else environ
    if password_file:
        path = Path(password_file)
        if not path.is_file():
            raise ValueError(f"--admin-password-file {path}: no such file")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"--admin-password-file {path}: readable by other users; `chmod 600 {path}`")
        lines = path.read_text().splitlines()
        password = lines[0].strip() if lines else ""
        where = f"--admin-password-file {path} (first line)"
    else:
        password, where = environ.get(ADMIN_ENV, "").strip(), f"${ADMIN_ENV}"
        if not password:
            raise ValueError(f"--auth needs the admin password: set ${ADMIN_ENV} or pass --admin-password-file "
                             "FILE (never the password itself on the command line)")
    if len(password) < 12:
        raise ValueError(f"{where}: the admin password must have at least 12 characters")
    return password


def write_config(root: Path, admin: str, default_permission: str = "EDIT") -> Path:
    """`<root>/basic_auth.ini` for MLflow's auth app (module docstring); returns its path."""
    if default_permission not in PERMISSIONS:
        raise ValueError(f"--default-permission {default_permission!r}: expected one of {', '.join(PERMISSIONS)}")
    root.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser()
    config["mlflow"] = {"default_permission": default_permission,
                        "database_uri": f"sqlite:///{(root / 'basic_auth.db').resolve()}",
                        "admin_username": admin,
                        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
                        # each request's password check is a PBKDF2 hash; cells log metrics every step, so a
                        # checked login is trusted for a minute (a changed password takes that long to apply)
                        "auth_cache_ttl_seconds": str(AUTH_CACHE_S)}
    path = root / "basic_auth.ini"
    with path.open("w") as f:
        config.write(f)
    return path


def check_admin(config_path: Path, admin: str, password: str) -> None:
    """Refuse a password that no longer opens an existing admin account (MLflow would ignore it)."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    config = configparser.ConfigParser()
    config.read(config_path)
    store = SqlAlchemyStore()
    store.init_db(config["mlflow"]["database_uri"])
    if store.has_user(admin) and not store.authenticate_user(admin, password):
        raise ValueError(f"the admin user {admin!r} of {config['mlflow']['database_uri']} exists with another "
                         "password: the one given only creates the admin on the first start; change it with "
                         "MLflow's API (POST /api/2.0/mlflow/users/update-password) or give the current one")


def server_env(env: dict[str, str], root: Path, admin: str, password: str, default_permission: str) -> dict:
    """The auth app's settings added to the server's environment `env` (module docstring)."""
    env = dict(env)
    if not env.get("MLFLOW_AUTH_CONFIG_PATH"):
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(write_config(root, admin, default_permission))
    check_admin(Path(env["MLFLOW_AUTH_CONFIG_PATH"]), admin, password)
    env["MLFLOW_AUTH_ADMIN_USERNAME"] = admin
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    return env


def check_login(uri: str) -> None:
    """On a tracking server, one read with this process's login; LoginError saying what to set when refused."""
    if not uri.startswith(("http://", "https://")):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import read_mlflow_creds

    from studykit.infra.store import client

    creds = read_mlflow_creds()  # the variables, else ~/.mlflow/credentials (what MLflow's client sends)
    user = creds.username
    try:
        client(uri).search_experiments(max_results=1)
    except MlflowException as err:
        text = str(err)
        if "401" not in text and "UNAUTHENTICATED" not in text and "not authenticated" not in text.lower():
            raise
        if user and creds.password:
            raise LoginError(f"the tracking server {uri} refused the login of user {user!r}: wrong user name or "
                             "password (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD); nothing was "
                             "run") from None
        raise LoginError(f"the tracking server {uri} needs a login: set MLFLOW_TRACKING_USERNAME and "
                         "MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials); nothing was run") from None

"""A tracking server that stopped answering, told in one line.

The MLflow client retries a request for a while (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `..._BACKOFF_FACTOR`,
`..._TIMEOUT`: about 4 minutes by default), then raises an MlflowException whose context is the `requests`
connection error or timeout. Past that budget a study stops: `server_down(err, uri)` recognises the failure and
gives the line to show; `ServerDown` carries it. Nothing is lost: a cell's run keeps its checkpoint and is resumed by
the rerun once the server is back (tests/test_outage.py), and finished cells are skipped.
"""

from __future__ import annotations


class ServerDown(RuntimeError):
    """A study stopped because its tracking server did not answer; str() is the one line to show."""


def server_down(err: BaseException, uri: str | None = None) -> str | None:
    """The one-line reason when `err` (or an exception it arose from) is a request to the server that got no
    answer; None otherwise."""
    import requests

    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return (f"the tracking server {uri or ''} did not answer within the MLflow client's retry budget "
                    f"({type(e).__name__}); rerun the same command once it is back (what finished is kept)")
        e = e.__cause__ or e.__context__
    return None

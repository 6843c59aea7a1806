"""Run a flow from the CLI or a test: the right Prefect API and the right Dask task runner.

    summary = run_flow(extract_flow, cfg)       # cfg.runner picks LocalCluster or a scheduler

With ``PREFECT_API_URL`` set, runs report to that server (a real ``prefect server``).  Without it,
one temporary local server is started for the run and its URL is exported, so Dask worker
processes report to the same server instead of each starting an ephemeral one of their own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from flows._dask import with_dask_runner


@contextlib.contextmanager
def prefect_api(timeout: int = 120) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    from prefect.server.api.server import SubprocessASGIServer

    # no telemetry: this workplace (and many clusters) have no route out
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    server.start(timeout=timeout)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _drain_prefect_clients()
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _drain_prefect_clients(timeout: float = 10.0) -> None:
    """Flush queued run events and logs while the server still answers.

    Stopping the temporary server first leaves these background workers retrying a dead address
    for more than a minute before the process can exit.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout, at_exit=False)
        except Exception:  # best effort: a flush that fails must not mask the run's own result
            pass


def run_flow(flow_obj, config):
    """Call ``flow_obj(config)`` on the Dask runner that ``config.runner`` describes."""
    with prefect_api():
        return with_dask_runner(flow_obj, config.runner)(config)

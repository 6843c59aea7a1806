"""Run a flow from the CLI or a test: the right Prefect API and the right Dask task runner.

    summary = run_flow(extract_flow, cfg)       # cfg.runner picks LocalCluster or a scheduler

    with flow_lease(config):                    # top of every writing flow: one writer per store
        ...

With ``PREFECT_API_URL`` set, runs report to that server (a real ``prefect server``).  Without it,
one temporary local server is started for the run and its URL is exported, so Dask worker
processes report to the same server instead of each starting an ephemeral one of their own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from neuroscribe.flows._dask import with_dask_runner
from neuroscribe.lease import LeaseRecord, config_lease


@contextlib.contextmanager
def prefect_api(timeout: int = 120) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if configured := os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value():
        yield configured
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
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
        # flush queued run events and logs while the server still answers (stopping it first leaves these
        # background workers retrying a dead address for more than a minute before the process can exit)
        for worker in (APILogWorker, EventsWorker):
            with contextlib.suppress(Exception):  # best effort: a failed flush must not mask the run's result
                worker.drain_all(timeout=10.0, at_exit=False)
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def run_flow(flow_obj, config):
    """Call ``flow_obj(config)`` on the Dask runner that ``config.runner`` describes."""
    with prefect_api():
        return with_dask_runner(flow_obj, getattr(config, "extract", config).runner)(config)


def mark_crashed(dead: LeaseRecord) -> None:
    """Mark the flow run of a lease holder that died (its lease expired) Crashed, if it still shows as running.

    Prefect 3 flow runs emit heartbeat events (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``), but the server
    turns their absence into a Crashed state only through an automation each workspace must define;
    the store's own lease knows for certain that the holder stopped, so the run that takes over says so.
    """
    if not dead.flow_run_id:
        return
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.logging import get_logger
    from prefect.states import Crashed

    message = (
        f"crashed: its process (pid {dead.pid} on {dead.host}) stopped renewing the lease of the store at "
        f"{dead.renewed_at:%Y-%m-%d %H:%M:%S} UTC; a new run took the store over"
    )
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(dead.flow_run_id)
            if run.state is not None and not run.state.is_final():
                client.set_flow_run_state(dead.flow_run_id, Crashed(message=message), force=True)
    except (ObjectNotFound, httpx.HTTPError, OSError) as exc:
        # the dead run reported to another server (e.g. a temporary one of an earlier CLI call): say so, go on
        get_logger("neuroscribe.lease").warning(f"flow run {dead.flow_run_id} of the dead holder could not be marked crashed ({exc!r})")


def flow_lease(config) -> contextlib.AbstractContextManager[LeaseRecord | None]:
    """The store's writer lease for the current flow run (see ``neuroscribe.lease``); enter it first thing."""
    from prefect.runtime import flow_run

    return config_lease(config, flow_run_id=flow_run.id, on_takeover=mark_crashed)

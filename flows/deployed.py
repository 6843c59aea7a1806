"""Entry flows of the deployments in ``deployments/prefect.yaml``: each runs its stage as a subflow.

    prefect deploy --all --prefect-file deployments/prefect.yaml     # entrypoints flows/deployed.py:<name>

A deployment runs its entrypoint flow with the task runner fixed at import time, but the Dask
cluster (a local one, or ``runner.dask_address``) is chosen by each run's config; so the entry
flow calls the stage's flow as a subflow on ``with_dask_runner(stage, config.runner)``.  Run
parameters pass through the Prefect API as JSON where ``*options`` secrets are masked: give
storage credentials to the worker's environment (AWS variables), never as parameters.
"""

from __future__ import annotations

from prefect import flow

from neuroscribe.ablation.pipeline import AblateConfig
from neuroscribe.config import ExtractConfig
from neuroscribe.explanation import ExplainConfig
from neuroscribe.flows._dask import with_dask_runner
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows.ablate import ablate_flow
from neuroscribe.flows.explain import explain_flow
from neuroscribe.flows.extract import extract_flow
from neuroscribe.flows.sweep import sweep_flow
from neuroscribe.sweep import SweepConfig


@flow(name="neuroscribe-explain", flow_run_name=config_run_name("deployed-explain"), log_prints=True)
def explain(config: ExplainConfig) -> dict:
    return with_dask_runner(explain_flow, config.extract.runner)(config)


@flow(name="neuroscribe-extract", flow_run_name=config_run_name("deployed-extract"), log_prints=True)
def extract(config: ExtractConfig) -> dict:
    return with_dask_runner(extract_flow, config.runner)(config)


@flow(name="neuroscribe-ablate", flow_run_name=config_run_name("deployed-ablate"), log_prints=True)
def ablate(config: AblateConfig) -> dict:
    return with_dask_runner(ablate_flow, config.runner)(config)


@flow(name="neuroscribe-sweep", log_prints=True)
def sweep(config: SweepConfig) -> dict:
    # the sweep picks a Dask runner per combination itself
    return sweep_flow(config)


RESULTS_BLOCK = "neuroscribe-results"


def save_result_storage(basepath: str, name: str = RESULTS_BLOCK) -> str:
    """Save the ``remote-file-system/<name>`` block that the deployments persist results to.

    The block holds the URL only: S3 credentials and endpoint come from each reader's and writer's
    AWS variables, so nothing secret is stored on the Prefect server.
    """
    from prefect.filesystems import RemoteFileSystem

    RemoteFileSystem(basepath=basepath.rstrip("/")).save(name, overwrite=True)
    return f"remote-file-system/{name}"

"""Pipeline stages, each defined once as plan -> items -> run(item) -> reduce, and run by any executor.

    SCORES = Stage("score-layer", score_layer_item, plan=each_layer, retries=1)
    summaries = execute(SCORES, cfg, vocabulary_uri)     # execute: InProcess() or the flows' PrefectExecutor

- ``plan(config, *inputs)`` lists the items (small: shard ids, layer names, ``(layer, units)``), or
  returns a ``Plan`` that also counts the items a resumed run already finished;
- ``run(config, item)`` does one item's work, writes its output to the store and returns a small
  summary (never arrays); it is what a Prefect task on a Dask worker calls;
- ``reduce(config, results, *inputs)`` turns the results, in item order, into the stage's result.

A pipeline (``extraction.extract``, ``explanation.explain``, ...) is a plain function of a config and
an executor that calls its stages in order: ``InProcess`` here with a bar per stage (tests, ``--local``,
the Python API), or ``neuroscribe.flows._executor.PrefectExecutor`` as Prefect tasks on Dask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Plan:
    """The items still to run, and how many a resumed run already finished (shown as done)."""

    items: Sequence[Any]
    done: int = 0


def one_item(config: Any, *inputs: Any) -> list[Any]:
    """The default plan: a single item (the inputs, or None)."""
    return [inputs[0] if len(inputs) == 1 else (inputs or None)]


def each_layer(config: Any, *inputs: Any) -> list[str]:
    return list(getattr(config, "extract", config).layers)  # an ExplainConfig's layers are its extraction's


def all_results(config: Any, results: list[Any], *inputs: Any) -> list[Any]:
    return results


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline; the functions must be module-level (tasks pickle them by reference)."""

    name: str
    run: Callable[[Any, Any], Any]
    plan: Callable[..., Sequence[Any] | Plan] = each_layer
    reduce: Callable[..., Any] = all_results
    unit: str = "layer"
    gpu: bool = False  # ask Dask for a GPU worker when the cluster has one
    retries: int = 0

    def planned(self, config: Any, *inputs: Any) -> Plan:
        plan = self.plan(config, *inputs)
        return plan if isinstance(plan, Plan) else Plan(list(plan))

    def label(self, item: Any) -> str:
        """A short name for one item (task run names): a layer, or a layer and its first unit."""
        if not isinstance(item, (list, tuple)) or not item:
            return "all" if item is None else str(item)
        units = item[1] if len(item) > 1 and isinstance(item[0], str) else None
        return f"{item[0]}-{units[0]}" if isinstance(units, (list, tuple)) and units else str(item[0])


class Executor(Protocol):
    def __call__(self, stage: Stage, config: Any, *inputs: Any) -> Any: ...


@dataclass(frozen=True)
class InProcess:
    """Run every item in this process, in order, with a tqdm bar per stage of more than one item."""

    progress: bool = True

    def __call__(self, stage: Stage, config: Any, *inputs: Any) -> Any:
        plan = stage.planned(config, *inputs)
        total = len(plan.items) + plan.done
        with tqdm(plan.items, total=total, initial=plan.done, desc=stage.name, unit=stage.unit, disable=not self.progress or total < 2) as bar:
            results = [stage.run(config, item) for item in bar]
        return stage.reduce(config, results, *inputs)

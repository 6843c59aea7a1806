"""Run one flow in this process, as the CLI does, and print its summary as the last line (JSON).

    python tests/integration/flowrun.py flows.extract:extract_flow config.json          # via run_flow
    python tests/integration/flowrun.py flows.deployed:sweep config.json --direct       # call the flow as is

The config file holds the flow's config object; its class is read from the flow's signature.
"""

from __future__ import annotations

import importlib
import json
import sys
import typing
from pathlib import Path


def main(flow_ref: str, config_file: str, direct: bool = False) -> None:
    from neuroscribe.flows._run import prefect_api, run_flow

    module, _, name = flow_ref.partition(":")
    flow_obj = getattr(importlib.import_module(module), name)
    config_cls = typing.get_type_hints(flow_obj.fn)["config"]
    cfg = config_cls.model_validate(json.loads(Path(config_file).read_text()))
    if direct:
        with prefect_api():
            result = flow_obj(cfg)
    else:
        result = run_flow(flow_obj, cfg)
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--direct" in sys.argv[3:])

"""Start time of ``neuroscribe --help``: as shipped, and with the flows imported when the CLI loads.

    python benchmarks/cli_start.py            # median of 5 runs each

Why the CLI's command bodies import the flows late (see ``neuroscribe/cli/app.py``): every call of
``neuroscribe`` loads every command module, so what they import at module level every call pays.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

HELP = "import sys; sys.argv = ['neuroscribe', '--help']; from neuroscribe.cli import main; main()"
FLOWS = "import " + ", ".join(
    f"neuroscribe.flows.{name}" for name in ("_run", "_dask", "extract", "explain", "evaluate", "ablate", "vocabulary")
)


def seconds(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(runs: int = 5) -> None:
    print(f"neuroscribe --help, as shipped:           {seconds(HELP, runs):.2f} s (median of {runs})")
    print(f"neuroscribe --help, flows at module level: {seconds(FLOWS + '; ' + HELP, runs):.2f} s (median of {runs})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

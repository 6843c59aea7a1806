"""Save the result-storage block the deployments use (``remote-file-system/neuroscribe-results``).

    PREFECT_API_URL=http://prefect:4200/api python deployments/result_storage.py s3://neuroscribe-runs/prefect-results

Run it once per Prefect server, from the repository root.  The block stores the URL only;
credentials and endpoint come from the AWS variables of the workers that write and read results.
"""

from __future__ import annotations

import sys

from neuroscribe.flows.deployed import save_result_storage

if __name__ == "__main__":
    if len(sys.argv) != 2 or "://" not in sys.argv[1]:
        sys.exit("usage: python deployments/result_storage.py s3://bucket/prefix")
    print(f"saved {save_result_storage(sys.argv[1])} -> {sys.argv[1]}")

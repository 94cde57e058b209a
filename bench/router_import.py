"""Router cold start: import time of the handler module, with and without boto3.

Each variant runs in a fresh interpreter (as a Lambda cold start does), interleaved,
REPEAT times; the median is printed, with the ratio to a bare interpreter start.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

REPEAT = 9
VARIANTS = {
    "bare python": "pass",
    "router handler module": "import backend.entrypoints.router",
    "router + settings (MVP path)": "import backend.entrypoints.router, backend.entrypoints.settings",
    "router + boto3": "import backend.entrypoints.router, boto3",
    "boto3 alone": "import boto3",
}


def main() -> None:
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(REPEAT):
        for label, code in VARIANTS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times["bare python"])
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, backend.entrypoints.router; print('boto3' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    for label, values in times.items():
        med = statistics.median(values)
        print(f"  {label:<30} {med * 1000:7.1f} ms   import cost {(med - base) * 1000:7.1f} ms"
              f"   ({med / base:.2f}x a bare start)")
    router = statistics.median(times["router handler module"]) - base
    with_boto = statistics.median(times["router + boto3"]) - base
    print(f"  boto3 would add {(with_boto - router) * 1000:.0f} ms ({with_boto / router:.2f}x the router's own"
          f" import); boto3 imported by the handler module: {probe.stdout.strip()}")


if __name__ == "__main__":
    main()

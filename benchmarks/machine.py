"""What a benchmark ran on, printed at the top of every benchmark's output (not a benchmark)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def describe(**versions: str) -> str:
    """Host, cores (usable ones too), CPU, load average and Python; ``versions`` adds
    ``name=version`` pairs (e.g. ``tensorflow=tf.__version__``)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    extra = "".join(f", {name} {version}" for name, version in versions.items())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores ({usable} usable), {cpu_name()}; "
            f"load average {load}; Python {platform.python_version()}{extra}")


if __name__ == "__main__":
    sys.exit(print(describe()))

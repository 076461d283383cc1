"""What the benchmarks share."""

from __future__ import annotations

SR = 44100


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MB); unlike ru_maxrss it is not inherited on exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")

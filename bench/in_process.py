"""The start shared by the in-process benchmarks: Django on a throw-away SQLite database, and a median timer."""

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django() -> Path:
    """Import path, settings (no MUSTER_CONFIG, a fresh SQLite file) and django.setup(); the work folder."""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="muster-bench-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="muster_project.settings",
        DATABASE_URL=f"sqlite:///{work}/bench.sqlite3",
        MUSTER_SECRET_KEY="bench-" + "x" * 40,
    )
    os.environ.pop("MUSTER_CONFIG", None)
    import django

    django.setup()
    return work


def median_us(action: Callable[[], object], rounds: int) -> float:
    """Median of `rounds` single calls, in microseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)

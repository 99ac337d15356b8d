"""The start shared by the in-process benchmarks: Django on a throw-away SQLite database, and a median timer."""

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django(*, unset: tuple[str, ...] = (), metric_files_here: bool = False) -> Path:
    """Import path, settings (no MUSTER_CONFIG nor `unset`, a fresh SQLite file) and django.setup().

    Returns the work folder, removed at exit; with `metric_files_here` Prometheus writes its files there.
    """
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="muster-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="muster_project.settings",
        DATABASE_URL=f"sqlite:///{work}/bench.sqlite3",
        MUSTER_SECRET_KEY="bench-" + "x" * 40,
    )
    if metric_files_here:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work)
    for name in ("MUSTER_CONFIG", *unset):
        os.environ.pop(name, None)
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

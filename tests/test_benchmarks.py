"""The benchmarks run: each is started at a tiny size so it cannot rot unnoticed (their
figures are read by people, never asserted: speed is not a test). The main job's ``run12``
phase runs the same code as ``run1``, for twelve months: left out here for time."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_main_job_benchmark_runs_every_phase_at_a_tiny_size(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_main_job.py"), "5", "--base", "10",
         "--phases", "validate,apply,idle,run1", "--keep", str(tmp_path / "work")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for notify in ("on", "off"):
        assert f"== N=5 declared subscriptions, notifications {notify} ==" in out
    phases = ("validate", "apply", "idle", "run1")
    rows = [line.split()[0] for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in phases and line.split()[1] != "run"]  # fmt: skip
    assert rows == list(phases) * 2
    # every subscription bills on the first date; the floors were measured beside it
    run1 = [line for line in out.splitlines() if line.split()[:1] == ["run1"]]
    assert all(line.split()[5] == "5" for line in run1), run1
    assert "sqlite3 " in run1[0] and "jinja2 " in run1[0]
    assert "run1: notifications on / off (CPU) = " in out
    assert "load vs CSafeLoader, both without the garbage collector (on): " in out
    assert "idle run (off): " in out
    # with notifications on the example's messages were written; with them off none
    assert int(run1[0].split()[7].replace(",", "")) > 0
    assert run1[1].split()[7] == "0"

"""The issue's quality and cost targets, end to end (benchmarks/calibration.py on two chips)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_calibration_benchmark_meets_every_target():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "calibration.py"), "--chips", "0", "1",
                          "--populations", "default", "--vectors", "512", "--json"],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    s = report["summary"]
    assert all(s["pass"].values()), s
    assert all(t["pass"] for t in report["residual_targets"]), report["residual_targets"]
    for runs in report["residual"]["default"]["full"].values():
        for r in runs:  # calibration is what makes the difference; the floor is the ideal chip's noise
            assert r["uncalibrated"]["rms_lsb"] > 2 * r["calibrated"]["rms_lsb"]
            assert 1.6 < r["floor"]["rms_lsb"] < 2.1
            assert r["calibrated"]["spill_runs"] == 0  # nothing recorded on default chips: nothing spills
    for name, v in report["knob_rounds"].items():
        assert v["model"] <= v["binary"], name
    assert report["knob_totals"]["model"]["knob_rounds"] <= 0.5 * report["knob_totals"]["binary"]["knob_rounds"]

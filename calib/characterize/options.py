"""How a characterization measures: repeats, sweep sizes, thresholds."""
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ..config import CalibWarning
from ..errors import CalibValueError

ROWS_PER_HEMISPHERE = 128


@dataclass(frozen=True)
class CharacterizeOptions:
    """Options of :func:`calib.characterize.characterize`.

    Every probe runs both hemispheres in parallel, so the cost depends on
    the number of input vectors, not on the number of columns.

    Parameters
    ----------
    wait_between_events : int, default=5
        Spacing of input events in FPGA cycles (8 ns), 1..255. With a
        calibration artifact, the artifact's value is used instead.
    transfer_levels : int, default=128
        Input levels per sign of the transfer-curve sweep (sum(x*w) from 0 to
        the full scale +-128*31*63 per send), 8..512.
    transfer_repeats : int, default=16
        Repeated reads per transfer level, 2..1024.
    zero_repeats : int, default=256
        Zero-input reads per column and num_sends (offset and noise), 16..65536.
    map_repeats : int, default=32
        Repeats of every one-hot driver probe at activation 31 (gain map), 1..1024.
    activation_repeats : int, default=2
        Repeats of every one-hot probe at activations 1..30 (driver curves), 1..1024.
    stuck_repeats : int, default=16
        Repeats of the weight-0 probe that reveals stuck-at-max synapses, 1..1024.
    probe_target_lsb : float, default=40.0
        Output aimed at by the one-hot probes for the median column (LSB),
        5..100; ``num_sends`` is chosen for it and strong columns get smaller
        probe weights so that no column leaves its linear range.
    max_num_sends : int, default=16
        Upper limit of ``num_sends`` for the probes, 1..255 (also limited by a
        calibration artifact's validity range).
    z_threshold : float, default=6.0
        Deviation, in units of the measurement noise, that an element must
        show before it is reported as faulty (> 3; 6 keeps the expected
        false alarms of the 262 144 synapse tests below 0.01).
    linear_tolerance_lsb, linear_tolerance_rel : float, default=3.0, 0.05
        A transfer point leaves the linear range when it deviates from the
        column's linear fit by more than max(tolerance_lsb, tolerance_rel * |fit|)
        and the curve bends there (local slope under 70 % of the fitted gain;
        see :func:`calib.characterize.analysis.fit_transfer`).
    rows : tuple of int or None, default=None
        Rows (drivers within each hemisphere, 0..127) that the one-hot probes
        visit; None visits all 128. A subset makes quick characterizations
        (tests, previews); the gain map and driver tables then hold only
        these rows.
    measure_uncalibrated : bool, default=True
        With a calibration artifact: also characterize the chip as found
        (before applying the artifact), so reports can compare both.
    """

    wait_between_events: int = 5
    transfer_levels: int = 128
    transfer_repeats: int = 16
    zero_repeats: int = 256
    map_repeats: int = 32
    activation_repeats: int = 2
    stuck_repeats: int = 16
    probe_target_lsb: float = 40.0
    max_num_sends: int = 16
    z_threshold: float = 6.0
    linear_tolerance_lsb: float = 3.0
    linear_tolerance_rel: float = 0.05
    rows: tuple = None
    measure_uncalibrated: bool = True

    def __post_init__(self):
        ints = {"wait_between_events": (1, 255), "transfer_levels": (8, 512), "transfer_repeats": (2, 1024),
                "zero_repeats": (16, 65536), "map_repeats": (1, 1024), "activation_repeats": (1, 1024),
                "stuck_repeats": (1, 1024), "max_num_sends": (1, 255)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise CalibValueError(f"CharacterizeOptions.{name} must be an integer in {lo}..{hi}, got {v!r}")
        floats = {"probe_target_lsb": (5.0, 100.0), "z_threshold": (3.0, 100.0),
                  "linear_tolerance_lsb": (0.5, 50.0), "linear_tolerance_rel": (0.005, 0.5)}
        for name, (lo, hi) in floats.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or not lo <= v <= hi:
                raise CalibValueError(f"CharacterizeOptions.{name} must be a number in {lo}..{hi}, got {v!r}")
        if self.rows is not None:
            rows = np.asarray(self.rows)
            if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu" \
                    or rows.min() < 0 or rows.max() >= ROWS_PER_HEMISPHERE or len(np.unique(rows)) != rows.size:
                raise CalibValueError("CharacterizeOptions.rows must be distinct integers in 0..127 (or None for all)")
            object.__setattr__(self, "rows", tuple(int(r) for r in np.sort(rows)))
        if self.z_threshold < 5:
            warnings.warn(f"z_threshold {self.z_threshold} < 5 gives false alarms among the 262 144 synapses",
                          CalibWarning, stacklevel=3)

    @property
    def probe_rows(self):
        """The visited rows as an int array (all 128 if ``rows`` is None)."""
        return np.arange(ROWS_PER_HEMISPHERE) if self.rows is None else np.asarray(self.rows, dtype=np.int64)

    def to_dict(self):
        """Plain-JSON form (for the manifest)."""
        d = asdict(self)
        d["rows"] = None if self.rows is None else list(self.rows)
        return d

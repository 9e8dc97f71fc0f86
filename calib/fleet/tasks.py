"""What runs on a worker: calibrate or verify one chip, store the result, return a small record.

A task travels as a :class:`ChipJob` (a few hundred bytes: chip id, preset
name, store path, options as a dict, the simulated environment) and returns a
plain dict (a few hundred bytes). Nothing large crosses the network: the chip
is built (or, on real hardware, opened) on the worker, and the artifact is
written by the worker straight into the store, atomically (a temporary
directory renamed into place), so a worker killed at any moment leaves either a
complete artifact or none.
"""
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace

from ..config import Options
from ..errors import CalibValueError


@dataclass(frozen=True)
class Backend:
    """How a worker reaches a chip.

    Attributes
    ----------
    transient_rate : float, default=0.0
        0: the simulator directly. Otherwise the simulator behind
        :class:`chipsim.flaky.FlakyChip` (latency and transient link errors at
        this rate per operation, 0..0.5).
    latency_s : float, default=1e-4
        Link latency per operation (FlakyChip only), seconds.
    dead_chips : tuple of int, default=()
        Chips whose link goes down for good after ``dead_after`` operations
        (FlakyChip only; to exercise the failure path).
    dead_after : int, default=50
    """

    transient_rate: float = 0.0
    latency_s: float = 1e-4
    dead_chips: tuple = ()
    dead_after: int = 50

    def open(self, chip_id, preset, seed):
        """The chip object a task works with (an ObservableChip)."""
        from bss2_calib.chipsim import Chip

        chip = Chip(chip_id, preset, noise_seed=seed)
        if self.transient_rate == 0 and chip_id not in self.dead_chips:
            return chip, chip
        from bss2_calib.chipsim.flaky import FlakyChip

        flaky = FlakyChip(chip, transient_rate=self.transient_rate, latency_s=self.latency_s, seed=seed,
                          dead_after=self.dead_after if chip_id in self.dead_chips else None)
        return flaky, chip


@dataclass(frozen=True)
class ChipJob:
    """One chip's task.

    Attributes
    ----------
    chip_id : int
    preset : str or None
        Preset name or file path (as ``chipsim.Chip`` takes it; a file must exist on the worker).
        None (verification only): the preset the chip's latest artifact names.
    store : str
        Store root; the workers must see the same path (a shared filesystem).
    options : dict, default={}
        :class:`calib.Options` as a dict (``Options.to_dict``); {} is ``Options()``.
    seed : int, default=0
        Noise seed of the simulated chip.
    hours : float, default=0.0
        Simulated environment: the chip ages this many hours first (it drifts).
    temperature_c : float or None, default=None
        Simulated environment: die temperature.
    backend : Backend, default=Backend()
    """

    chip_id: int
    preset: str
    store: str
    options: dict = field(default_factory=dict)
    seed: int = 0
    hours: float = 0.0
    temperature_c: float = None
    backend: Backend = Backend()

    def __post_init__(self):
        if isinstance(self.chip_id, bool) or not isinstance(self.chip_id, int) or self.chip_id < 0:
            raise CalibValueError(f"chip id must be a non-negative integer, got {self.chip_id!r}")

    def to_dict(self):
        return asdict(self)

    def chip(self):
        """(chip to use, the simulator underneath), in the job's simulated environment."""
        use, sim = self.backend.open(self.chip_id, self.preset, self.seed)
        if self.hours or self.temperature_c is not None:
            sim.advance(hours=self.hours, temperature_c=self.temperature_c)  # the environment, not an operation
        return use, sim


def _where():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def calibrate_chip(job):
    """Calibrate ``job``'s chip and store the artifact; returns a record (dict).

    The record has ``chip_id``, ``ok`` (no stage failed), ``artifact`` (its
    path), ``failed_stages``, ``wall_time_s``, ``hw_time_s``,
    ``link_retries`` and ``worker`` (the Dask worker's address). Permanent
    failures raise (:class:`calib.ChipUnreachable` and the like); the fleet
    runner records the reason.
    """
    from ..pipeline import calibrate
    from ..store import ArtifactStore

    t0 = time.perf_counter()
    chip, _ = job.chip()
    result = calibrate(chip, options=Options.from_dict(job.options) if job.options else Options())
    saved = ArtifactStore(job.store).save(result, make_latest=result.ok)
    totals = saved.manifest["totals"]
    return {"chip_id": job.chip_id, "ok": result.ok, "artifact": str(saved.path),
            "failed_stages": list(result.failed_stages), "wall_time_s": time.perf_counter() - t0,
            "hw_time_s": float(totals["hw_time_s"]), "link_retries": int(totals.get("link_retries", 0)),
            "worker": _where()}


def verify_chip(job, *, recalibrate_stale=False):
    """Verify the chip's latest artifact; recalibrate it if stale and asked to. Returns a record (dict).

    The record has ``chip_id``, ``artifact`` (the verified one), ``valid``,
    ``reason``, the deviations, ``vectors``, ``hw_time_s``, ``worker`` and,
    when a stale chip was recalibrated, ``recalibrated`` (the new artifact's
    path, or None) and ``recalibrated_ok``.
    """
    from ..result import load
    from ..store import ArtifactStore
    from ..verify import verify

    store = ArtifactStore(job.store)
    path = store.latest(job.chip_id)
    if path is None:
        raise CalibValueError(f"no calibration of chip {job.chip_id} in {store.root}")
    res = load(path)
    if job.preset is None:
        job = replace(job, preset=res.preset["name"])
    chip, _ = job.chip()
    rep = verify(res, chip, seed=job.seed)
    out = {"chip_id": job.chip_id, "artifact": str(path), **rep.to_dict(), "worker": _where(),
           "recalibrated": None, "recalibrated_ok": None}
    if recalibrate_stale and not rep.valid:
        rec = calibrate_chip(job)
        out.update(recalibrated=rec["artifact"], recalibrated_ok=rec["ok"])
    return out

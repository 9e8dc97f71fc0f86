"""Fleet calibration: many chips, one store, on Dask distributed.

:func:`run` calibrates a set of chips, one task per chip, on an embedded
``LocalCluster`` or an existing Dask scheduler; :func:`verify` checks every
chip's latest artifact in parallel and, if asked, recalibrates only the stale
ones (the nightly job). :func:`summary` turns the store into one row per chip;
:func:`write_report` into an HTML page. See docs/fleet.md.

Dask is an optional dependency (``pip install 'bss2-calib[fleet]'``): importing
this package does not need it; creating a :class:`Fleet` does.
"""
from .runner import INSTALL_HINT, TICK_S, ChipOutcome, Fleet, Progress, parse_chips, resource_name
from .tasks import Backend, ChipJob, calibrate_chip, verify_chip
from .summary import read_verify, summary, write_summary, VERIFY_FILE, SUMMARY_FILE, FLEET_DIR


def run(fleet, chips, store, *, preset="default", options=None, seed=0, backend=Backend(), hours=0.0,
        max_attempts=2, progress=None, tick_s=TICK_S):
    """Calibrate ``chips`` on ``fleet``, one task per chip; artifacts go into ``store``.

    Parameters
    ----------
    fleet : Fleet
    chips : sequence of int
    store : ArtifactStore or path-like
        Every worker must see this path.
    preset : str, default="default"
    options : Options or None, default=None
        None: ``Options()``.
    seed : int, default=0
        Noise seed of every simulated chip.
    backend : Backend, default=Backend()
    hours : float, default=0.0
        Simulated environment: each chip ages this long first.
    max_attempts : int, default=2
    progress : callable or None, default=None
    tick_s : float, default=TICK_S
        See :meth:`Fleet.map_chips`.

    Returns
    -------
    list of ChipOutcome
    """
    jobs = _jobs(chips, store, preset=preset, options=options, seed=seed, backend=backend, hours=hours)
    return fleet.map_chips(calibrate_chip, jobs, max_attempts=max_attempts, progress=progress, tick_s=tick_s,
                           key_prefix="calibrate")


def verify(fleet, store, chips=None, *, recalibrate_stale=False, seed=0, backend=Backend(), hours=0.0,
           max_attempts=2, progress=None):
    """Verify the latest artifact of every chip (default: all chips in the store) in parallel.

    With ``recalibrate_stale`` a stale chip is recalibrated in the same task
    (only the stale ones). The outcomes are also written to the store's
    ``_fleet/verify.parquet`` (read by :func:`summary`).

    Returns
    -------
    list of ChipOutcome
        ``record`` holds the verify report (see :func:`calib.fleet.tasks.verify_chip`).
    """
    from ..store import ArtifactStore
    from .summary import write_verify

    store = store if isinstance(store, ArtifactStore) else ArtifactStore(store)
    chips = store.chips() if chips is None else list(chips)
    jobs = _jobs(chips, store, preset=None, options=None, seed=seed, backend=backend, hours=hours)
    out = fleet.map_chips(verify_chip, jobs, max_attempts=max_attempts, progress=progress, key_prefix="verify",
                          recalibrate_stale=recalibrate_stale)
    write_verify(store, out)
    return out


def _jobs(chips, store, *, preset, options, seed, backend, hours):
    from ..store import ArtifactStore

    root = str((store.root if isinstance(store, ArtifactStore) else ArtifactStore(store).root).absolute())
    opts = {} if options is None else options.to_dict()
    return [ChipJob(int(c), preset, root, opts, seed, float(hours), None, backend) for c in chips]


__all__ = ["run", "verify", "summary", "write_summary", "read_verify", "Fleet", "ChipOutcome", "Progress",
           "ChipJob", "Backend", "parse_chips", "resource_name", "calibrate_chip", "verify_chip", "INSTALL_HINT",
           "VERIFY_FILE", "SUMMARY_FILE", "FLEET_DIR"]

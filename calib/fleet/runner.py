"""One task per chip on Dask distributed: the cluster, placement, retries and progress.

The runner submits one task per chip (:mod:`calib.fleet.tasks`) and collects a
:class:`ChipOutcome` per chip: ``ok``, ``retried`` (ok after a failed attempt)
or ``failed`` with the reason. Every failure, a raised exception or a worker
that died under the task, costs one attempt; a chip gets at most
``max_attempts`` (default 2), so a chip that fails twice is not retried
forever. Retries are the runner's own (the embedded cluster's scheduler is
told ``allowed_failures=0``), so it knows which chip was retried and why.

Placement: a chip is pinned to the worker that hosts it through Dask worker
*resources*: a worker that advertises ``chip-N=1`` is the only place where chip
N's task may run (one at a time). On an existing cluster the workers are
started with ``--resources "chip-0=1 chip-1=1"``; the embedded cluster takes
the placement as ``{worker index: [chip ids]}``. Chips no worker advertises
run anywhere.
"""
import logging
import time
from dataclasses import dataclass

from ..errors import CalibValueError

INSTALL_HINT = "the fleet commands need Dask: pip install 'bss2-calib[fleet]' (dask[distributed])"
TICK_S = 2.0  #: progress is reported at least this often while tasks run


def _distributed():
    try:
        import distributed
    except ImportError:
        raise CalibValueError(INSTALL_HINT) from None
    return distributed


def resource_name(chip_id):
    """The Dask worker resource that marks the host of chip ``chip_id``."""
    return f"chip-{int(chip_id)}"


def parse_chips(text):
    """Chip ids from ``"0-63"``, ``"0,3,5-7"``: a sorted list of distinct ints.

    >>> parse_chips("5-7,0,6")
    [0, 5, 6, 7]
    """
    ids = set()
    for part in str(text).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise CalibValueError(f"chips: expected ids and ranges like 0-63 or 0,3,5-7, got {text!r}") from None
        if a < 0 or b < a:
            raise CalibValueError(f"chips: bad range {part!r} in {text!r}")
        if b - a >= 100000:
            raise CalibValueError(f"chips: range {part!r} is too long (at most 100000 chips)")
        ids.update(range(a, b + 1))
    return sorted(ids)


@dataclass
class ChipOutcome:
    """What became of one chip's task.

    Attributes
    ----------
    chip_id : int
    status : {"ok", "retried", "failed"}
        ``retried``: ok after at least one failed attempt.
    attempts : int
    reasons : list of str
        Why each failed attempt failed, in order.
    record : dict or None
        What the last successful attempt returned (see :mod:`calib.fleet.tasks`).
    """

    chip_id: int
    status: str
    attempts: int
    reasons: list
    record: dict = None

    @property
    def reason(self):
        """The last failure's reason ("" if none)."""
        return self.reasons[-1] if self.reasons else ""

    def to_dict(self):
        return {"chip_id": self.chip_id, "status": self.status, "attempts": self.attempts,
                "reasons": list(self.reasons), **({"record": self.record} if self.record is not None else {})}


class Fleet:
    """A Dask client and its cluster: an embedded ``LocalCluster`` or an existing scheduler.

    Parameters
    ----------
    workers : int or None, default=None
        Worker processes of the embedded cluster (one thread each); None: 2.
    scheduler : str or None, default=None
        Address of an existing scheduler (``tcp://host:8786``); its workers
        must see the store path.
    placement : dict of int to sequence of int, or None, default=None
        Embedded cluster only: ``{worker index: chip ids}``; each of those
        workers advertises ``chip-N=1`` for its chips.

    Use as a context manager; the embedded cluster is shut down on exit.
    """

    def __init__(self, workers=None, scheduler=None, placement=None):
        distributed = _distributed()
        if workers is not None and scheduler is not None:
            raise CalibValueError("give either workers (an embedded cluster) or scheduler (an existing one)")
        if placement and scheduler is not None:
            raise CalibValueError("placement applies to the embedded cluster; on an existing cluster start the "
                                  "workers with --resources 'chip-N=1 ...'")
        self.cluster = None
        if scheduler is not None:
            self.client = distributed.Client(scheduler, timeout="20s")
            return
        n = 2 if workers is None else int(workers)
        if not 1 <= n <= 256:
            raise CalibValueError(f"workers must be in 1..256, got {workers!r}")
        placement = dict(placement or {})
        bad = [w for w in placement if not (isinstance(w, int) and 0 <= w < n)]
        if bad:
            raise CalibValueError(f"placement names worker {bad[0]!r}; the cluster has workers 0..{n - 1}")
        # no retries by the scheduler (the runner counts them); HTTP servers on free ports, no dashboards
        self.cluster = distributed.LocalCluster(
            n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None,
            scheduler_kwargs={"allowed_failures": 0, "dashboard_address": ":0"}, worker_dashboard_address=None,
            silence_logs=logging.ERROR)
        spec = self.cluster.new_spec
        for i in range(n):  # one spec per worker, so each can advertise its own chips
            options = dict(spec["options"])
            # one thread per worker, the simulator's too (Dask gives each worker one BLAS thread)
            options["env"] = {**options.get("env", {}), "BSS2_CHIPSIM_THREADS": "1"}
            if placement.get(i):
                options["resources"] = {resource_name(c): 1 for c in placement[i]}
            self.cluster.worker_spec[i] = {"cls": spec["cls"], "options": options}
        self.cluster.scale(n)
        self.client = distributed.Client(self.cluster)
        self.client.wait_for_workers(n, timeout=120)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def hosted_chips(self):
        """Chip ids some worker advertises as its own (a ``chip-N`` resource)."""
        out = set()
        for w in self.client.scheduler_info(n_workers=-1)["workers"].values():
            for r in (w.get("resources") or {}):
                if r.startswith("chip-") and r[5:].isdigit():
                    out.add(int(r[5:]))
        return out

    def worker_pids(self):
        """``{worker address: process id}`` of the current workers."""
        import os

        return self.client.run(os.getpid)

    def map_chips(self, fn, jobs, *, max_attempts=2, progress=None, tick_s=TICK_S, key_prefix="chip", **kwargs):
        """Run ``fn(job, **kwargs)`` for every job, one task per chip, with bounded retries.

        Parameters
        ----------
        fn : callable
            An importable function (it travels by reference).
        jobs : sequence of ChipJob
        max_attempts : int, default=2
            Attempts per chip (1..10).
        progress : callable or None, default=None
            ``progress(state)`` with a :class:`Progress`, after every change and at least every
            ``tick_s`` seconds.
        tick_s : float, default=TICK_S

        Returns
        -------
        list of ChipOutcome
            In the order of ``jobs``.
        """
        distributed = _distributed()
        if not 1 <= max_attempts <= 10:
            raise CalibValueError(f"max_attempts must be in 1..10, got {max_attempts!r}")
        hosted = self.hosted_chips()
        state = Progress(total=len(jobs))
        reasons = {j.chip_id: [] for j in jobs}
        outcomes = {}
        pending = {}
        token = f"{time.time_ns():x}"

        def submit(job, attempt):
            c = job.chip_id
            fut = self.client.submit(fn, job, **kwargs, key=f"{key_prefix}-{c}-{token}-{attempt}", pure=False,
                                     resources={resource_name(c): 1} if c in hosted else None)
            pending[fut] = (job, attempt)

        for job in jobs:
            submit(job, 1)
        while pending:
            try:
                done, _ = distributed.wait(list(pending), timeout=tick_s, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = ()
            for fut in done:
                job, attempt = pending.pop(fut)
                c = job.chip_id
                if fut.status == "finished":
                    outcomes[c] = ChipOutcome(c, "retried" if reasons[c] else "ok", attempt, reasons[c],
                                              fut.result())
                    state.finished(ok=True)
                else:
                    reasons[c].append("task cancelled" if fut.status == "cancelled" else _reason(fut.exception()))
                    if attempt < max_attempts:
                        state.retries += 1
                        submit(job, attempt + 1)
                    else:
                        outcomes[c] = ChipOutcome(c, "failed", attempt, reasons[c])
                        state.finished(ok=False)
                fut.release()
            if progress is not None:
                state.running = self._running(pending)
                progress(state)
        return [outcomes[j.chip_id] for j in jobs]

    def _running(self, pending):
        keys = {f.key for f in pending}
        try:
            return sum(1 for ks in self.client.processing().values() for k in ks if k in keys)
        except (OSError, TimeoutError):
            return 0


def _reason(err):
    name = type(err).__name__
    if name == "KilledWorker":
        return "worker died while calibrating (KilledWorker)"
    text = str(err).strip().splitlines()
    return f"{name}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class Progress:
    """Counts of a fleet run, for progress lines.

    Attributes
    ----------
    total, done, failed, running, retries : int
    started : float
        ``time.monotonic()`` at the start.
    """

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    retries: int = 0
    started: float = None

    def __post_init__(self):
        if self.started is None:
            self.started = time.monotonic()

    def finished(self, ok):
        if ok:
            self.done += 1
        else:
            self.failed += 1

    @property
    def eta_s(self):
        """Seconds left at the pace so far (None before the first chip finished)."""
        n = self.done + self.failed
        if n == 0:
            return None
        return (time.monotonic() - self.started) / n * (self.total - n)

    def line(self):
        eta = self.eta_s
        eta_text = "?" if eta is None else f"{eta:.0f} s"
        return (f"fleet: {self.done}/{self.total} done, {self.failed} failed, {self.running} running, "
                f"{self.retries} retried, ETA {eta_text}")

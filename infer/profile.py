"""Runtime-overhead analysis: where the time of inference and of a hardware-in-the-loop step goes.

Two clocks are read, never mixed:

* **host time**, ``time.perf_counter`` on this machine, split by the engine's
  always-on stage counters (:attr:`Engine.host_time`) into ``partition``,
  ``corrections``, ``simulation`` (the simulator's own work, which silicon does
  not need) and ``other`` (the rest: validation, im2col, activations, the
  model's Python, torch's backward pass);
* **simulated hardware time**, the chips' clock split by category
  (:attr:`chipsim.Chip.hw_time_split`): ``knobs`` and ``weights`` (together the
  configuration), ``events``, ``vector_fixed`` and ``readout``.

Every engine call of a forward pass becomes one row (a layer); a row's host
time runs from the end of the previous call, so the Python between two layers
is charged to the layer it prepares. Models plug in by name through
:data:`WORKLOADS` (see :class:`Workload`).

:func:`analytic_time` is the chip's time model written out from its constants;
:func:`sweep` measures the simulated time over batch sizes and matrix shapes
next to it.
"""
from __future__ import annotations

import importlib.util
from functools import partial
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bss2_calib.chipsim.chip import (CADC_READ_S, HW_TIME_CATEGORIES, RECONFIG_S, VECTOR_FIXED_S, VECTOR_OVERHEAD_S,
                                     VECTOR_READS, WEIGHT_WRITE_S)
from bss2_calib.chipsim.geometry import CLOCK_NS, COLS, ROWS

from .errors import InferError, InferValueError

__all__ = ["HOST_CATEGORIES", "HW_CATEGORIES", "PUBLISHED_MOPS", "SWEEP_BATCHES", "SWEEP_NONZERO", "SWEEP_SHAPES",
           "Profile", "ProfileUnavailable", "Row", "SweepPoint", "Workload", "WORKLOADS", "analytic_time",
           "design_limits", "get_workload", "profile", "require_torch", "sweep"]

HOST_CATEGORIES = ("partition", "corrections", "simulation", "other")
HW_CATEGORIES = HW_TIME_CATEGORIES  # knobs, weights, events, vector_fixed, readout
SWEEP_SHAPES = ((100, 20), (128, 256), (500, 128), (256, 256), (1024, 1024))  #: (n_in, n_out) of :func:`sweep`
SWEEP_BATCHES = (1, 4, 16, 64, 256)  #: batch sizes of :func:`sweep`
SWEEP_NONZERO = 0.5  #: fraction of non-zero activations in :func:`sweep`
#: end-to-end throughput of the real system (Spilger et al. 2020, hxtorch; docs/hardware.md): MOp/s by matrix
PUBLISHED_MOPS = {"256x256": 150.0, "1024x1024": 240.0}


class ProfileUnavailable(InferError, RuntimeError):
    """A workload or mode cannot run here (unknown model, missing data, no torch)."""


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Row:
    """Host and simulated hardware time of one stage (a layer, the setup, the backward pass).

    Attributes
    ----------
    name : str
    shape : tuple of (int, int) or None
        (n_in, n_out) of the layer's matrix.
    vectors : int
        Input vectors of the engine call (0 for stages without one).
    ops : int
        n_in x n_out x vectors (one multiply-accumulate is one op, as in the published figures).
    host : dict
        Seconds by :data:`HOST_CATEGORIES`.
    hw : dict
        Simulated seconds by :data:`HW_CATEGORIES` (of the chip with the most time, if several).
    counts : dict
        ``weight_writes``, ``tile_runs``, ``events``, ``reconfigurations`` spent in this row.
    """

    name: str
    shape: tuple | None
    vectors: int
    ops: int
    host: dict
    hw: dict
    counts: dict

    @property
    def host_s(self):
        """Total host seconds."""
        return float(sum(self.host.values()))

    @property
    def hw_s(self):
        """Total simulated hardware seconds."""
        return float(sum(self.hw.values()))

    def to_dict(self):
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape),
                "vectors": self.vectors, "ops": self.ops, "host_s": self.host_s, "hw_s": self.hw_s,
                "hw_configuration_s": self.hw["knobs"] + self.hw["weights"],
                "host": dict(self.host), "hw": dict(self.hw), "counts": dict(self.counts),
                "mops_per_s_hw": _mops(self.ops, self.hw_s)}


def _mops(ops, seconds):
    return ops / seconds / 1e6 if seconds > 0 else None


def _sum_rows(name, rows):
    return Row(name, None, sum(r.vectors for r in rows), sum(r.ops for r in rows),
               {k: sum(r.host[k] for r in rows) for k in HOST_CATEGORIES},
               {k: sum(r.hw[k] for r in rows) for k in HW_CATEGORIES},
               {k: sum(r.counts[k] for r in rows) for k in rows[0].counts} if rows else {})


@dataclass(frozen=True)
class Profile:
    """The rows of one profiled pass (inference or one training step) and its one-time setup.

    Attributes
    ----------
    model : str
    mode : {"inference", "train"}
    batch : int
        Samples in the profiled batch.
    rows : tuple of Row
        The pass, layer by layer (and, for training, the backward pass and update).
    setup : Row
        Engine construction (knob writes), warm-up and, for training, the gain measurement;
        not part of :attr:`total`.
    instrumentation_s : float
        Host seconds the engine's stage counters cost in this pass (estimated, see :func:`profile`).
    """

    model: str
    mode: str
    batch: int
    rows: tuple
    setup: Row
    instrumentation_s: float = 0.0

    @property
    def total(self):
        """The sum of :attr:`rows`."""
        return _sum_rows("total", self.rows)

    def to_dict(self):
        t = self.total
        return {"model": self.model, "mode": self.mode, "batch": self.batch,
                "rows": [r.to_dict() for r in self.rows], "total": t.to_dict(), "setup": self.setup.to_dict(),
                "instrumentation_s": self.instrumentation_s,
                "simulator_host_share": t.host["simulation"] / t.host_s if t.host_s > 0 else None}


# ------------------------------------------------------------------ recording
class _Recorder:
    """Stands in for an :class:`Engine`: closes one :class:`Row` after every ``matmul`` call.

    Every other attribute is the engine's, so layers, the functional API and the torch
    layers run unchanged on it. ``since`` (a ``perf_counter`` reading) starts the first row
    earlier, with the chips' clocks counted from zero (to include the engine's construction).
    """

    def __init__(self, engine, names=(), since=None):
        self._engine = engine
        self.names = tuple(names)
        self.rows = []
        self._mark = self._snapshot()
        if since is not None:
            zeros = [dict.fromkeys(HW_CATEGORIES, 0.0) for _ in engine.chips]
            self._mark = (since, dict.fromkeys(self._mark[1], 0.0), zeros,
                          [dict.fromkeys(c, 0) for c in self._mark[3]], dict.fromkeys(self._mark[4], 0))

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def _snapshot(self):
        e = self._engine
        return (time.perf_counter(), dict(e.host_time), [c.hw_time_split for c in e.chips],
                [dict(c.counters) for c in e.chips], dict(e.stats))

    def matmul(self, x, w, **kwargs):
        y = self._engine.matmul(x, w, **kwargs)
        xs, ws = np.shape(x), np.shape(w)
        vectors = int(xs[0]) if len(xs) == 2 else 1
        i = len(self.rows)
        self.close(self.names[i] if i < len(self.names) else f"call {i}", (int(ws[0]), int(ws[1])), vectors)
        return y

    def close(self, name, shape=None, vectors=0):
        """End a row at now: everything since the previous mark."""
        t0, h0, s0, c0, e0 = self._mark
        self._mark = now = self._snapshot()
        t1, h1, s1, c1, e1 = now
        host = {k: h1[k] - h0[k] for k in ("partition", "corrections", "simulation")}
        host["other"] = (t1 - t0) - sum(host.values())
        deltas = [{k: b[k] - a[k] for k in HW_CATEGORIES} for a, b in zip(s0, s1)]
        hw = max(deltas, key=lambda d: sum(d.values()))  # the chips run in parallel: the slowest one counts
        counts = {"weight_writes": e1["weight_writes"] - e0["weight_writes"],
                  "tile_runs": e1["tile_runs"] - e0["tile_runs"],
                  "events": sum(b["events"] - a["events"] for a, b in zip(c0, c1)),
                  "reconfigurations": sum(b["reconfigurations"] - a["reconfigurations"] for a, b in zip(c0, c1))}
        ops = shape[0] * shape[1] * vectors if shape else 0
        self.rows.append(Row(name, shape, vectors, ops, host, hw, counts))
        return self.rows[-1]


# ------------------------------------------------------------------ workloads
@dataclass(frozen=True)
class Workload:
    """What :func:`profile` needs of an application (MNIST, HAR, ...).

    Attributes
    ----------
    name : str
    layer_names : tuple of str
        One name per engine call of a forward pass, in call order.
    inputs : ndarray
        A batch of raw samples (what ``forward`` takes), first axis the sample.
    labels : ndarray of int, shape (len(inputs),)
    forward : callable ``(engine, inputs) -> logits``
        Inference through ``engine.matmul`` (numpy path), one call per layer.
    train_step : callable ``(engine) -> step`` or None
        Builds a hardware-in-the-loop step (torch): set-up (network, optimiser, gain
        measurement) happens in the builder; ``step(engine, inputs, labels)`` does one
        optimiser step with its forward pass on ``engine``. None: no training profile.
    """

    name: str
    layer_names: tuple
    inputs: np.ndarray
    labels: np.ndarray
    forward: Callable
    train_step: Callable | None = None


def _app_workload(name, batch_size, train):
    """The workload of an application of :mod:`infer.apps` with its shipped model (HIL if present)."""
    from .apps import get

    app = get(name)
    model = app.load_model(app.default_model_path())
    raw, labels = (app.load_train if train else app.load_test)(batch_size)

    def forward(engine, x):
        return app.forward(model, x, engine)

    def train_step(engine):
        import torch

        from .apps import training

        net = training.chip_network(model, engine)
        opt = torch.optim.Adam([p for p in net.parameters()], lr=training.HILOptions().lr)
        for n in model.num_sends:
            engine.measure(num_sends=n)

        def step(eng, x, y):
            xt = torch.from_numpy(app.encode(x, model.input).astype(np.float32))
            training.train_step(net, opt, xt, torch.from_numpy(y.astype(np.int64)), training.HILOptions().logit_scale,
                                eng)
        return step

    return Workload(name, app.arch.names, raw, labels, forward, train_step)


def _registry():
    from .apps import names

    return {name: partial(_app_workload, name) for name in names()}


#: model name -> ``factory(batch_size, train) -> Workload``: every application of :mod:`infer.apps`
WORKLOADS = _registry()


def get_workload(name, batch_size=100, train=False):
    """The :class:`Workload` of model ``name`` with a batch of ``batch_size`` samples.

    Raises
    ------
    ProfileUnavailable
        Unknown name, or the model's data or weights are not installed.
    """
    if name not in WORKLOADS:
        raise ProfileUnavailable(f"unknown model {name!r} (available: {', '.join(sorted(WORKLOADS))})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InferValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    try:
        return WORKLOADS[name](int(batch_size), bool(train))
    except FileNotFoundError as err:
        raise ProfileUnavailable(f"model {name!r}: {err}") from err


# ------------------------------------------------------------------ profiling
def _have_torch():
    return importlib.util.find_spec("torch") is not None


def require_torch():
    """Raise :class:`ProfileUnavailable` unless torch is installed (the training profile needs it)."""
    if not _have_torch():
        raise ProfileUnavailable("--train needs PyTorch (pip install 'bss2-calib[torch]')")


def _instrumentation_cost(n_timestamps, repeats=20000):
    """Host seconds of ``n_timestamps`` stage-counter updates (a perf_counter call and a dict add each)."""
    acc, clock = {"x": 0.0}, time.perf_counter
    t0 = clock()
    for _ in range(repeats):
        t = clock()
        acc["x"] += clock() - t
    per = (clock() - t0) / (2 * repeats)
    return per * n_timestamps


def profile(engine_factory, model="mnist", *, batch_size=100, train=False, warmup=8):
    """Profile one inference pass (or one hardware-in-the-loop step) of ``model``.

    Parameters
    ----------
    engine_factory : callable () -> Engine
        Builds the engine (its construction, with the artifact's knob writes, is profiled as setup).
    model : str, default="mnist"
        A key of :data:`WORKLOADS`.
    batch_size : int, default=100
        Samples in the profiled pass, >= 1.
    train : bool, default=False
        Profile one training step (needs torch) instead of inference.
    warmup : int, default=8
        Samples of a warm-up pass before the profiled one (compiles and caches), >= 1.

    Returns
    -------
    Profile
    """
    if train:
        require_torch()
    w = get_workload(model, batch_size, train)
    if train and w.train_step is None:
        raise ProfileUnavailable(f"model {model!r} has no hardware-in-the-loop training step")
    t0 = time.perf_counter()
    engine = engine_factory()
    rec = _Recorder(engine, since=t0)
    step = w.train_step(engine) if train else None
    x_warm = w.inputs[:max(1, int(warmup))]
    if train:
        step(engine, x_warm, w.labels[:len(x_warm)])
    else:
        w.forward(engine, x_warm)
    setup = rec.close("setup")
    rec.rows, rec.names = [], w.layer_names
    calls0 = engine.stats["tile_runs"]
    if train:
        step(rec, w.inputs, w.labels)
        rec.close("backward + update")
    else:
        w.forward(rec, w.inputs)
        rec.close("output")
    rows = rec.rows
    # timestamps per tile round (5) and per weight write (2), plus 2 per call
    n_ts = 5 * (engine.stats["tile_runs"] - calls0) + 2 * sum(r.counts["weight_writes"] for r in rows) \
        + 2 * len(rows)
    return Profile(model, "train" if train else "inference", len(w.inputs), tuple(rows), setup,
                   _instrumentation_cost(n_ts))


# ------------------------------------------------------------------ the time model
def analytic_time(tiles, batch, *, n_slots=2, nonzero=1.0, num_sends=1, wait_between_events=5,
                  weights_resident=False):
    """Simulated hardware time of one engine call on one chip, from the chip's time constants.

    Parameters
    ----------
    tiles : sequence of (row0, row1, col0, col1)
        The tiles in execution order (:meth:`Engine.plan`).
    batch : int
        Input vectors, >= 0.
    n_slots : int, default=2
        Tiles that run at once (two hemispheres per chip).
    nonzero : float, default=1.0
        Fraction of non-zero activations (each is one event), 0..1.
    num_sends, wait_between_events : int, default=1, 5
    weights_resident : bool, default=False
        True if the tiles are already programmed (no weight writes).

    Returns
    -------
    dict
        Seconds by :data:`HW_CATEGORIES`. Events use the expected count ``nonzero x rows`` of the
        larger tile of every round (the slower hemisphere).
    """
    rounds = [tiles[i:i + n_slots] for i in range(0, len(tiles), n_slots)]
    rows = sum(max(r1 - r0 for r0, r1, _, _ in rd) for rd in rounds)
    return {"knobs": 0.0, "weights": 0.0 if weights_resident else len(tiles) * WEIGHT_WRITE_S,
            "events": batch * rows * nonzero * num_sends * wait_between_events * CLOCK_NS * 1e-9,
            "vector_fixed": len(rounds) * batch * VECTOR_FIXED_S,
            "readout": len(rounds) * batch * VECTOR_READS * CADC_READ_S}


def design_limits(*, num_sends=1, wait_between_events=5, nonzero=1.0):
    """Throughput ceilings of one chip (both hemispheres, full 128 x 256 tiles), MOp/s.

    Returns
    -------
    dict
        ``fixed_cost``: only the fixed cost per vector (40 us) counted;
        ``event_rate``: only the input events at the given spacing counted;
        ``vector``: both (the steady state with resident weights);
        ``weight_write``: ops per write time when every tile is used for one vector only
        (multiply by the batch for the bound at larger batches).
    """
    ops = 2 * ROWS * COLS
    events_s = ROWS * nonzero * num_sends * wait_between_events * CLOCK_NS * 1e-9
    return {"fixed_cost": ops / VECTOR_OVERHEAD_S / 1e6, "event_rate": ops / events_s / 1e6,
            "vector": ops / (VECTOR_OVERHEAD_S + events_s) / 1e6,
            "weight_write": ops / (2 * WEIGHT_WRITE_S) / 1e6, "reconfiguration_s": RECONFIG_S}


@dataclass(frozen=True)
class SweepPoint:
    """Measured and modelled simulated time of one random matmul."""

    n_in: int
    n_out: int
    batch: int
    measured: dict
    model: dict = field(default_factory=dict)

    @property
    def ops(self):
        return self.n_in * self.n_out * self.batch

    def to_dict(self):
        m, a = sum(self.measured.values()), sum(self.model.values())
        return {"n_in": self.n_in, "n_out": self.n_out, "batch": self.batch, "ops": self.ops,
                "measured_s": m, "model_s": a, "measured": dict(self.measured), "model": dict(self.model),
                "mops_per_s_measured": _mops(self.ops, m), "mops_per_s_model": _mops(self.ops, a)}


def sweep(engine, shapes=SWEEP_SHAPES, batches=SWEEP_BATCHES, *, nonzero=SWEEP_NONZERO, rng):
    """Simulated time of one matmul with fresh random weights, over matrix shapes and batch sizes.

    Parameters
    ----------
    engine : Engine
        On one chip (the time model assumes two slots).
    shapes : sequence of (n_in, n_out), default=SWEEP_SHAPES
    batches : sequence of int, default=SWEEP_BATCHES
    nonzero : float, default=SWEEP_NONZERO
        Fraction of non-zero activations (random positions, values 1..31).
    rng : numpy.random.Generator

    Returns
    -------
    list of SweepPoint
    """
    if len(engine.chips) != 1:
        raise InferValueError("sweep needs an engine on one chip")
    chip, out = engine.chips[0], []
    for n_in, n_out in shapes:
        for b in batches:
            w = rng.integers(-63, 64, size=(n_in, n_out))
            x = rng.integers(1, 32, size=(b, n_in)) * (rng.random((b, n_in)) < nonzero)
            s0 = chip.hw_time_split
            engine.matmul(x, w)
            s1 = chip.hw_time_split
            out.append(SweepPoint(n_in, n_out, b, {k: s1[k] - s0[k] for k in HW_CATEGORIES},
                                  analytic_time(engine.plan(n_in, n_out), b, nonzero=nonzero,
                                                num_sends=engine.num_sends,
                                                wait_between_events=engine.wait_between_events)))
    return out

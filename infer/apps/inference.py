"""Inference of an application's test data on an engine: scores, throughput, simulated hardware time."""
import time

__all__ = ["run_inference"]


def run_inference(app, model, engine, raw, labels, *, batch_size=1000, progress=None):
    """Classify ``raw`` on ``engine`` in batches and report what it cost.

    Parameters
    ----------
    app : App
    model : IntegerModel
    engine : Engine
        Its ``stats["hw_time_s"]`` counts the simulated hardware time (read before and after).
    raw : array-like of shape (n, ...)
        Samples in the application's raw form; labels : array-like of int, shape (n,).
    batch_size : int, default=1000
        Samples per forward pass (one engine call per layer and batch).
    progress : callable (n_done) -> None, optional
        Called after every batch with the number of samples done.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (0..1), ``confusion`` (rows true class), ``correct``, ``samples``,
        ``wall_time_s``, ``hw_time_s``, ``samples_per_s``, ``hw_time_per_sample_us``,
        ``mop_per_sample`` (rows x columns x vectors of every layer, in millions),
        ``mops_per_s_wall`` and ``mops_per_s_hw``.
    """
    hw0 = engine.stats["hw_time_s"]
    t0 = time.perf_counter()
    sc = app.evaluate(model, raw, labels, engine, batch_size=batch_size, progress=progress)
    wall = time.perf_counter() - t0
    hw = engine.stats["hw_time_s"] - hw0
    n, macs = len(labels), app.macs_per_sample()
    inf = float("inf")
    return {**sc.to_dict(), "correct": int(sc.confusion.trace()), "samples": n, "wall_time_s": wall, "hw_time_s": hw,
            "samples_per_s": n / wall if wall > 0 else inf, "hw_time_per_sample_us": 1e6 * hw / n,
            "mop_per_sample": macs / 1e6, "mops_per_s_wall": macs * n / wall / 1e6 if wall > 0 else inf,
            "mops_per_s_hw": macs * n / hw / 1e6 if hw > 0 else inf}

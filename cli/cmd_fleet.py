"""``bss2-calib fleet``: calibrate, verify, summarise and report many chips on Dask distributed."""
import logging
import os
import sys

import click

from .common import echo_json, is_quiet, json_option, store_option, verbosity, verbosity_options

STATUS_ORDER = ("ok", "retried", "failed")


def _cluster_options(f):
    f = click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Join an existing Dask cluster (tcp://HOST:PORT) instead of starting one; its workers must "
                          "see the store path. Chips a worker advertises as resource chip-N=1 run only there.")(f)
    f = click.option("--workers", type=click.IntRange(1, 256), default=None,
                     help="Worker processes of the embedded Dask LocalCluster [default: 2].")(f)
    f = click.option("--max-attempts", type=click.IntRange(1, 10), default=2, show_default=True,
                     help="Attempts per chip (a worker death or an error costs one).")(f)
    return f


def _chips(ctx, param, value):
    if value is None:
        return None
    from bss2_calib.calib.fleet import parse_chips

    try:
        return parse_chips(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _placement(ctx, param, value):
    """--placement 0:0-31 --placement 1:32-63: embedded worker index -> chips."""
    from bss2_calib.calib.fleet import parse_chips

    out = {}
    for item in value:
        w, sep, chips = item.partition(":")
        if not sep or not w.strip().isdigit():
            raise click.BadParameter(f"expected WORKER:CHIPS such as 0:0-31, got {item!r}")
        try:
            out.setdefault(int(w), []).extend(parse_chips(chips))
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return out


def _open(workers, scheduler, placement=None):
    from bss2_calib.calib.fleet import Fleet

    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers and --scheduler are mutually exclusive")
    # Dask logs cluster start and stop at INFO on its own handler: only with -v
    logging.getLogger("distributed").setLevel(logging.INFO if verbosity() else logging.ERROR)
    return Fleet(workers=workers, scheduler=scheduler, placement=placement)


class _ProgressLines:
    """Fleet progress on stderr: one line per change, or one redrawn line on a terminal."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = None

    def __call__(self, state):
        line = state.line()
        if self.quiet or line == self.last:
            return
        self.last = line
        click.echo(("\r" + line.ljust(79)) if self.tty else line, err=True, nl=not self.tty)

    def close(self):
        if self.tty and self.last and not self.quiet:
            click.echo("", err=True)


def _outcome_lines(outcomes):
    lines = [f"{'chip':>6s} {'status':8s} {'tries':>5s} {'wall s':>7s} {'hw s':>6s} {'retries':>7s}  detail"]
    for o in outcomes:
        r = o.record or {}
        detail = o.reason if o.status != "ok" else r.get("artifact", "")
        if o.status == "retried":
            detail = f"after: {o.reasons[0]}"
        lines.append(f"{o.chip_id:6d} {o.status:8s} {o.attempts:5d} {r.get('wall_time_s', float('nan')):7.1f} "
                     f"{r.get('hw_time_s', float('nan')):6.2f} {r.get('link_retries', 0):7d}  {detail}")
    counts = {s: sum(o.status == s for o in outcomes) for s in STATUS_ORDER}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return lines


@click.group("fleet")
def fleet():
    """Many chips, one store: calibrate, verify, summarise, report (Dask distributed)."""


@fleet.command("run")
@verbosity_options
@click.option("--chips", "chips", required=True, callback=_chips, help="Chip ids: 0-63, or 0,3,5-7.")
@click.option("--preset", default="default", show_default=True, help="Preset of every chip.")
@store_option
@_cluster_options
@click.option("--placement", multiple=True, callback=_placement, metavar="WORKER:CHIPS",
              help="Embedded cluster: pin chips to a worker, e.g. --placement 0:0-31 --placement 1:32-63 "
                   "(repeatable).")
@click.option("--stages", default="all", show_default=True, help="Calibration stages (as for bss2-calib run).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Noise seed of every simulated chip.")
@click.option("--link-errors", type=click.FloatRange(0, 0.5), default=0.0, show_default=True,
              help="Put every chip behind a flaky link (chipsim.flaky.FlakyChip) failing this fraction of "
                   "operations transiently (calibration retries them).")
@json_option
def run(chips, preset, store_dir, workers, scheduler, max_attempts, placement, stages, seed, link_errors, as_json):
    """Calibrate many chips, one Dask task per chip, into one store.

    Progress (done, failed, running, retried, ETA) goes to stderr. Prints one
    line per chip (ok / retried / failed with the reason); exit code 1 if any
    chip failed (the others are stored).
    """
    from bss2_calib.calib import ArtifactStore, Options
    from bss2_calib.calib import fleet as lib

    options = Options(stages=stages, seed=seed)
    store = ArtifactStore(store_dir)
    shown = _ProgressLines(is_quiet())
    with _open(workers, scheduler, placement) as f:
        outcomes = lib.run(f, chips, store, preset=preset, options=options, seed=seed,
                           backend=lib.Backend(transient_rate=link_errors), max_attempts=max_attempts,
                           progress=shown)
    shown.close()
    if as_json:
        echo_json({"store": str(store.root), "chips": [o.to_dict() for o in outcomes],
                   **{s: sum(o.status == s for o in outcomes) for s in STATUS_ORDER}})
    else:
        for line in _outcome_lines(outcomes):
            click.echo(line)
    if any(o.status == "failed" for o in outcomes):
        sys.exit(1)


@fleet.command("verify")
@verbosity_options
@click.option("--chips", "chips", default=None, callback=_chips, help="Chip ids (default: every chip in the store).")
@store_option
@_cluster_options
@click.option("--recalibrate-stale", is_flag=True, help="Recalibrate the chips found stale (only those).")
@click.option("--hours", type=click.FloatRange(0, 1e6), default=0.0, show_default=True,
              help="Simulated environment: every chip ages this many hours first (it drifts).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Noise and probe seed.")
@json_option
def verify(chips, store_dir, workers, scheduler, max_attempts, recalibrate_stale, hours, seed, as_json):
    """Verify every chip's latest calibration in parallel (the nightly job).

    Exit code 1 if a chip is stale and was not recalibrated, or failed.
    """
    from bss2_calib.calib import ArtifactStore
    from bss2_calib.calib import fleet as lib
    from bss2_calib.calib.fleet.summary import verify_state

    store = ArtifactStore(store_dir)
    if chips is None and not store.chips():
        raise click.ClickException(f"no chips in the store {store.root}")
    shown = _ProgressLines(is_quiet())
    with _open(workers, scheduler) as f:
        outcomes = lib.verify(f, store, chips, recalibrate_stale=recalibrate_stale, seed=seed, hours=hours,
                              max_attempts=max_attempts, progress=shown)
    shown.close()
    bad = False
    rows = []
    for o in outcomes:
        state, detail = verify_state(o)
        bad |= state not in ("valid", "recalibrated")
        rows.append({"chip_id": o.chip_id, "state": state, "detail": detail, "attempts": o.attempts,
                     **(o.record or {})})
    if as_json:
        echo_json({"store": str(store.root), "chips": rows})
    else:
        for r in rows:
            click.echo(f"{r['chip_id']:6d} {r['state']:13s} {r['detail']}")
    if bad:
        sys.exit(1)


@fleet.command("summary")
@verbosity_options
@store_option
@click.option("--chips", "chips", default=None, callback=_chips, help="Chip ids (default: every chip in the store).")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV on stdout.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Parquet file to write [default: STORE/_fleet/summary.parquet].")
def summary(store_dir, chips, as_json, as_csv, out_path):
    """One row per chip: preset, artifact, date, spreads, faults, residual, times, verify status."""
    import json

    from bss2_calib.calib import ArtifactStore
    from bss2_calib.calib import fleet as lib

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are mutually exclusive")
    store = ArtifactStore(store_dir)
    df = lib.summary(store, chips)
    if df.empty:
        raise click.ClickException(f"no calibrated chips in the store {store.root}")
    path = lib.write_summary(store, df, out_path)
    if as_json:
        click.echo(json.dumps(json.loads(df.to_json(orient="records")), indent=2))
    elif as_csv:
        click.echo(df.to_csv(index=False), nl=False)
    else:
        cols = ["chip", "preset", "created_utc", "ok", "failed_instances", "dead_neurons", "residual_rms_lsb",
                "wall_time_s", "hw_time_s", "verify"]
        click.echo(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        click.echo(f"written: {path}", err=True)


@fleet.command("report")
@verbosity_options
@store_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="New directory for index.html and its figures.")
@json_option
def report(store_dir, out_dir, as_json):
    """An HTML page with the distributions across chips and the outliers highlighted."""
    from bss2_calib.calib import ArtifactStore
    from bss2_calib.calib import fleet as lib
    from bss2_calib.calib.fleet.report import write_fleet_report

    if os.path.lexists(out_dir):  # refuse before reading the store
        raise click.ClickException(f"{out_dir} already exists; reports are never overwritten")
    store = ArtifactStore(store_dir)
    df = lib.summary(store)
    if df.empty:
        raise click.ClickException(f"no calibrated chips in the store {store.root}")
    page = write_fleet_report(df, out_dir)
    if as_json:
        echo_json({"report": str(page), "chips": int(len(df))})
    else:
        click.echo(f"report: {page}")


@fleet.command("migrate")
@verbosity_options
@store_option
@json_option
def migrate(store_dir, as_json):
    """Rename a store's legacy chip-N folders to hive-style chip=N (run while nothing writes to it)."""
    from bss2_calib.calib import ArtifactStore

    moved = ArtifactStore(store_dir).migrate()
    if as_json:
        echo_json({"migrated": [str(m) for m in moved]})
        return
    click.echo(f"migrated {len(moved)} chip folders" + (f": {', '.join(map(str, moved))}" if moved else ""))

"""``bss2-calib run``: calibrate one chip (knobs and correction tables) and store the artifact."""
import os
import sys
import time

import click

from .common import (StageProgress, chip_options, default_report_dir, echo_json, echo_notes, is_quiet, json_option,
                     report_formats_option, stderr_progress, store_option, verbosity, verbosity_options)


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        if unit.startswith("LSB/unit") or (v != 0 and abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


#: widest step name, quantity and unit columns of the summary table (longer ones are cut with "~");
#: with the fixed columns the table stays within 146 characters
STEP_W, QUANTITY_W, UNIT_W = 26, 44, 16


def _cut(text, width):
    return text if len(text) <= width else text[:width - 1] + "~"


#: what the columns of the summary table mean, printed under it
LEGEND = ("before/after: spread over the instances at the start and final codes (knob steps) or the spread the "
          "table corrects and the uncertainty left (table steps); failed: failed/instances; measured: Nr = "
          "configure-and-measure rounds of a knob step, Nv = probe vectors of a table step; wall s / hw s: wall-clock "
          "and simulated hardware time")


def summary_lines(summary, *, detail=True):
    """The human-readable summary table of a calibration (list of str).

    The step, quantity and unit columns are as wide as their longest entry
    (at most :data:`STEP_W`, :data:`QUANTITY_W`, :data:`UNIT_W` characters).
    With ``detail`` the indices of the failed instances follow the table;
    otherwise one line says where they are.
    """
    lines = [f"chip {summary['chip_id']}  preset {summary['preset']}  "
             f"valid for wait_between_events={summary['conditions']['wait_between_events']}, "
             f"num_sends {summary['conditions']['num_sends_min']}..{summary['conditions']['num_sends_max']}, "
             f"{summary['conditions']['temperature_c']:.1f} +- {summary['conditions']['temperature_tolerance_k']:g} C"]
    shown = [s for s in summary["steps"] if s.get("kind") not in ("failed", "skipped")]
    sw = min(STEP_W, max([len("total")] + [len(s["name"]) for s in summary["steps"]]))
    qw = min(QUANTITY_W, max([len("quantity")] + [len(s.get("quantity") or "") for s in shown]))
    uw = min(UNIT_W, max([len("unit")] + [len(s.get("unit") or "") for s in shown]))
    head = f"{'step':{sw}s} {'quantity':{qw}s} {'unit':{uw}s} {'before':>9s} {'after':>9s} {'failed':>11s} " \
           f"{'measured':>9s} {'wall s':>7s} {'hw s':>7s}"
    lines += [head, "-" * len(head)]
    for s in summary["steps"]:
        if s.get("kind") in ("failed", "skipped"):
            lines.append(f"{_cut(s['name'], sw):{sw}s} {s['kind'].upper()}: {s.get('error', '')}")
            continue
        unit = s.get("unit") or ""
        meas = f"{s['rounds']}r" if s.get("kind") == "knob" else f"{s.get('vectors', 0)}v"
        failed = f"{s.get('n_failed', 0)}/{s.get('n_instances', 0)}"
        lines.append(f"{_cut(s['name'], sw):{sw}s} {_cut(s.get('quantity') or '', qw):{qw}s} {_cut(unit, uw):{uw}s} "
                     f"{_fmt(s.get('spread_before'), unit):>9s} {_fmt(s.get('spread_after'), unit):>9s} "
                     f"{failed:>11s} {meas:>9s} {s.get('wall_time_s', 0):7.2f} {s.get('hw_time_s', 0):7.3f}")
    t = summary["totals"]
    lines.append("-" * len(head))
    lines.append(f"{'total':{sw}s} {'':{qw}s} {'':{uw}s} {'':>9s} {'':>9s} {'':>11s} "
                 f"{t.get('knob_rounds', 0):>8d}r {t.get('wall_time_s', 0):7.2f} {t.get('hw_time_s', 0):7.3f}")
    lines.append(f"{'':{sw}s} {t.get('vectors', 0)} vectors, {t.get('cadc_reads', 0)} CADC reads, "
                 f"{t.get('reconfigurations', 0)} reconfigurations, {t.get('weight_writes', 0)} weight writes")
    lines += _wrap(f"legend: {LEGEND}", len(head))
    fails = [(s["name"], s["failed"]) for s in summary["steps"] if s.get("failed")]
    if fails and not detail:
        lines.append("failed instances: -v lists them (and --json, and the tables' success columns)")
    elif fails:
        lines.append("failed instances:")
        for name, idx in fails:
            shown = ", ".join(str(i) for i in idx[:40]) + (f", ... ({len(idx)} in all)" if len(idx) > 40 else "")
            lines.append(f"  {name}: {shown}")
    if summary["failed_stages"]:
        lines.append(f"FAILED stages: {', '.join(summary['failed_stages'])}")
    if summary.get("manifest_sealed") is False:
        lines.append(f"note: a schema version {summary.get('schema_version')} artifact: its tables are checksummed, "
                     f"its manifest is not")
    return lines


def _wrap(text, width):
    import textwrap

    return textwrap.wrap(text, width=width, subsequent_indent="  ")


@click.command("run")
@verbosity_options
@chip_options
@store_option
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Write the artifact to this new directory instead of the store.")
@click.option("--stages", default="all", show_default=True,
              help="Comma-separated stages or aliases: all, knobs (cadc, leak, reset, drivers, synapse_bias, "
                   "synin), tables (offsets, linearity, synapses, transfer, weights, neuron_fit).")
@click.option("--algorithm", type=click.Choice(["model", "binary", "noisy_binary", "linear"]), default="model",
              show_default=True, help="Search algorithm of the knob steps.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the chip's trial-to-trial noise and of the probe patterns.")
@click.option("--report", "with_report", is_flag=True,
              help="Also write the calibration report (bss2-calib report) into ARTIFACT-report/ next to the "
                   "artifact.")
@report_formats_option("--report-format", "report_formats", help_prefix="Formats of --report")
@json_option
def run(chip_id, preset, store_dir, out_dir, stages, algorithm, seed, with_report, report_formats, as_json):
    """Calibrate a chip and store the artifact.

    Without arguments: chip 0 of the default preset into the default store.
    Progress goes to stderr (a bar per stage on a terminal, one line per
    stage otherwise); then a summary per step (spread before and after,
    failed instances, measurements, wall and simulated hardware time) and the
    artifact's path. Exit code 1 if a stage failed outright.
    """
    from bss2_calib.chipsim import Chip
    from bss2_calib.calib import ArtifactStore, CalibValueError, KnobOptions, Options, calibrate, failure_notes

    if store_dir and out_dir:
        raise click.UsageError("--store and --out are mutually exclusive")
    if out_dir and (os.path.lexists(out_dir)):  # refuse before spending the calibration
        raise click.ClickException(f"{out_dir} already exists; artifacts are never overwritten (choose another --out)")
    try:
        options = Options(stages=stages, knobs=KnobOptions(algorithm=algorithm), seed=seed)
    except CalibValueError as err:
        raise click.ClickException(f"--stages: {err}") from None
    chip = Chip(chip_id, preset, noise_seed=seed)
    quiet = is_quiet()
    t0 = time.perf_counter()
    with StageProgress("calibrating", tty=False if quiet else None) as progress:
        result = calibrate(chip, options=options, progress=None if quiet else progress)
    if not quiet:
        click.echo(f"calibrated in {time.perf_counter() - t0:.1f} s wall, {chip.hw_time_s:.2f} s hardware time",
                   err=True)
    echo_notes(failure_notes(result.manifest))
    store = None if out_dir else ArtifactStore(store_dir)
    saved = result.save(out_dir) if out_dir else store.save(result, make_latest=result.ok)
    summary = saved.summary()
    if not as_json:
        for line in summary_lines(summary, detail=verbosity() > 0):
            click.echo(line)
        click.echo(f"artifact: {saved.path}")
        if store is not None:
            name = f"chip-{result.chip_id}"
            click.echo(f"store:    {store.root} (" + (f"{name} names this artifact for preset {result.preset['name']}"
                                                    if result.ok else f"not made {name}'s latest: a stage failed")
                       + "; --store DIR or $BSS2_CALIB_STORE choose another store)")
    if with_report:
        from bss2_calib.calib.report import write_report

        out = default_report_dir(saved.path)
        files = write_report(saved, out, formats=report_formats,
                             progress=stderr_progress("report"))
        written = ([str(files.html)] if files.html else []) + ([str(files.pdf)] if files.pdf else []) \
            + [str(p) for p in files.png]
        summary["report"] = {"dir": str(out), "files": written, "figures": files.figures}
        if not as_json:
            click.echo(f"report: {out} ({len(files.figures)} figures)")
    if as_json:
        echo_json(summary)
    if not result.ok:
        sys.exit(1)

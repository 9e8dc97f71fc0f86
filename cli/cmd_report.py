"""``bss2-calib report``: HTML, PDF and PNG report of a calibration or characterization artifact."""
from pathlib import Path

import click

from .common import (default_report_dir, echo_json, json_option, report_formats_option, stderr_progress, store_option,
                     verbosity_options)


@click.command("report")
@verbosity_options
@click.argument("artifacts", nargs=-1, required=True, metavar="ARTIFACT [ARTIFACT2]")
@store_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for report.html, report.pdf and the PNG figures (created if missing) "
                   "[default: ARTIFACT-report next to the (first) artifact].")
@report_formats_option("--format", "formats")
@json_option
def report(artifacts, store_dir, out, formats, as_json):
    """Draw the report of ARTIFACT; with ARTIFACT2 (same chip, another time) add the drift.

    ARTIFACT is a calibration artifact (a directory, or chip-N / chip-N/NAME
    in the store) or a characterization directory (`bss2-calib
    characterize`). report.html is self-contained (figures embedded) and
    readable offline.
    """
    from bss2_calib.calib import ArtifactStore
    from bss2_calib.calib.report import write_report

    if len(artifacts) > 2:
        raise click.UsageError(f"give one or two artifacts, got {len(artifacts)}")
    store = ArtifactStore(store_dir)
    paths = [store.resolve(a) for a in artifacts]
    if out is None:
        out = default_report_dir(paths[0])
    res = write_report(paths, out, formats=formats, progress=stderr_progress("report"))
    files = ([str(res.html)] if res.html else []) + ([str(res.pdf)] if res.pdf else []) + [str(p) for p in res.png]
    if as_json:
        echo_json({"out": str(out), "files": files, "figures": res.figures, "missing": res.missing,
                   "summary": [{"quantity": q, "value": v, "unit": u, "source": s} for q, v, u, s in res.summary]})
        return
    click.echo(f"report of {', '.join(map(str, paths))}: {len(res.figures)} figures")
    for f in files:
        click.echo(f"  {f}")
    for m in res.missing:
        click.echo(f"  not included: {m}")

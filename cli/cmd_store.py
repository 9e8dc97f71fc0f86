"""``bss2-calib list`` and ``bss2-calib show``: browse the artifact store."""
import json

import click

from .common import echo_json, echo_notes, json_option, store_option, verbosity, verbosity_options


@click.command("list")
@verbosity_options
@store_option
@click.option("--chip", "chip_id", type=click.IntRange(min=0), default=None, help="Only this chip.")
@json_option
def list_cmd(store_dir, chip_id, as_json):
    """List the stored calibrations, oldest first per chip ('*' marks the latest)."""
    from bss2_calib.calib import ArtifactStore

    store = ArtifactStore(store_dir)
    rows = store.history(chip_id) if chip_id is not None else store.list()
    if as_json:
        echo_json({"store": str(store.root), "artifacts": rows})
        return
    if not rows:
        click.echo(f"no calibrations in {store.root}")
        return
    for r in rows:
        mark = "*" if r["latest"] else " "
        status = "ok" if r["ok"] else ("FAILED" if r["error"] is None else "UNREADABLE")
        click.echo(f"{mark} chip-{r['chip_id']}/{r['name']}  {r['preset'] or '-':12s} {status:10s} {r['path']}")


@click.command("show")
@verbosity_options
@click.argument("artifact")
@store_option
@click.option("--table", "table", default=None, help="Print this table (CSV, or JSON records with --json) instead of the summary.")
@json_option
def show(artifact, store_dir, table, as_json):
    """Summary of ARTIFACT, or one of its tables as CSV (as JSON records with --json).

    ARTIFACT is a directory, or chip-N (its latest calibration) or
    chip-N/NAME in the store.
    """
    from bss2_calib.calib import ArtifactStore, load

    from bss2_calib.calib import failure_notes

    from .cmd_run import summary_lines

    res = load(ArtifactStore(store_dir).resolve(artifact))
    if table is not None:
        if table not in res.tables:
            raise click.ClickException(f"artifact has no table {table!r}; --table takes one of: "
                                       f"{', '.join(res.tables)}")
        df = res.tables[table]
        if as_json:  # one record per row, the index levels as fields; NaN as null
            echo_json({"artifact": str(res.path), "table": table, "index": [n for n in df.index.names if n],
                       "columns": [str(c) for c in df.columns],
                       "records": json.loads(df.reset_index().to_json(orient="records"))})
        else:
            click.echo(df.to_csv(), nl=False)
        return
    summary = res.summary()
    if as_json:
        echo_json(summary)
        return
    echo_notes(failure_notes(res.manifest))
    for line in summary_lines(summary, detail=verbosity() > 0):
        click.echo(line)
    click.echo("tables: " + ", ".join(f"{k} ({len(res.tables[k])} rows)" for k in res.tables))
    click.echo(f"artifact: {res.path}")

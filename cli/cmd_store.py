"""``bss2-calib list`` and ``bss2-calib show``: browse the artifact store."""
import click

from .common import echo_json, json_option
from .main import main

_store_option = click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None,
                             help="Artifact store directory (default: $BSS2_CALIB_STORE or "
                                  "~/.local/share/bss2-calib).")


@main.command("list")
@_store_option
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


@main.command("show")
@click.argument("artifact")
@_store_option
@click.option("--table", "table", default=None, help="Print this table as CSV instead of the summary.")
@json_option
def show(artifact, store_dir, table, as_json):
    """Summary of ARTIFACT, or one of its tables as CSV.

    ARTIFACT is a directory, or chip-N (its latest calibration) or
    chip-N/NAME in the store.
    """
    from bss2_calib.calib import ArtifactStore, load

    from .cmd_run import summary_lines

    res = load(ArtifactStore(store_dir).resolve(artifact))
    if table is not None:
        if table not in res.tables:
            raise click.ClickException(f"artifact has no table {table!r}; tables: {', '.join(res.tables)}")
        click.echo(res.tables[table].to_csv(), nl=False)
        return
    summary = res.summary()
    if as_json:
        echo_json(summary)
        return
    for line in summary_lines(summary):
        click.echo(line)
    click.echo("tables: " + ", ".join(f"{k} ({len(res.tables[k])} rows)" for k in res.tables))
    click.echo(f"artifact: {res.path}")

"""Options and helpers shared by the subcommands."""
import json
import logging
import sys

import click
import numpy as np

log = logging.getLogger("bss2")


def chip_options(f):
    """--chip and --preset, shared by every command that builds a simulated chip."""
    f = click.option("--preset", default="default", show_default=True,
                     help="Preset name (default, ideal, noiseless, hxtorch-mock, harsh) or JSON file.")(f)
    f = click.option("--chip", "chip_id", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Chip id (serial); it fixes the chip's fixed-pattern parameters.")(f)
    return f


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)


def _default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def echo_json(obj):
    click.echo(json.dumps(obj, indent=2, default=_default))


def progress(iterable=None, *, length=None, label=""):
    """A progress bar on stderr when it is a terminal, silent otherwise."""
    return click.progressbar(iterable, length=length, label=label, file=sys.stderr,
                             show_pos=True) if sys.stderr.isatty() else _Quiet(iterable)


class _Quiet:
    def __init__(self, iterable):
        self.iterable = iterable

    def __enter__(self):
        return self.iterable if self.iterable is not None else self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass

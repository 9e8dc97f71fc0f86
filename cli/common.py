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


REPORT_FORMATS = ("html", "pdf", "png")


def _report_formats(ctx, param, value):
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in REPORT_FORMATS]
    if bad or not formats:
        raise click.BadParameter(f"expected a comma-separated subset of {', '.join(REPORT_FORMATS)}, got {value!r}")
    return ",".join(formats)


def report_formats_option(*names, help_prefix="Formats of the report"):
    """A validated comma-separated subset of html, pdf, png (default: all three)."""
    return click.option(*names, default=",".join(REPORT_FORMATS), show_default=True, callback=_report_formats,
                        help=f"{help_prefix}: a comma-separated subset of {', '.join(REPORT_FORMATS)}.")


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


class StageProgress:
    """Progress of a run made of stages, on stderr; a ``progress`` callback for :func:`calib.calibrate`.

    On a terminal a click progress bar advances by one per stage and names the
    stage running; otherwise (CI, pipes) one plain line per stage start, and
    one per stage that failed or was skipped. Use as a context manager; the
    instance is the callback ``(stage, index, n_stages, event)``.

    Parameters
    ----------
    label : str
        Shown in front of the bar.
    tty : bool or None, default=None
        Force the bar (True) or the plain lines (False); None: whether
        ``file`` is a terminal.
    file : text stream or None, default=None
        None: ``sys.stderr``.
    """

    def __init__(self, label, *, tty=None, file=None):
        self.label = label
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty() if tty is None else bool(tty)
        self._bar = None
        self.problems = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        for line in self.problems:  # after the bar, so its last rendering does not overwrite them
            click.echo(line, file=self.file)
        self.problems = []
        return False

    def __call__(self, stage, index, n_stages, event):
        if not self.tty:
            if event == "start":
                click.echo(f"[{index + 1}/{n_stages}] {stage} ...", file=self.file)
            elif event != "done":
                click.echo(f"[{index + 1}/{n_stages}] {stage} {event.upper()}", file=self.file)
            return
        if self._bar is None:
            self._bar = click.progressbar(length=n_stages, label=self.label, file=self.file, show_pos=True,
                                          show_eta=False, item_show_func=lambda s: s)
            self._bar.__enter__()
        if event == "start":
            self._bar.update(0, current_item=stage)
            self._bar.render_progress()  # name the stage now running (update(0) does not redraw)
        else:
            if event != "done":
                self.problems.append(f"[{index + 1}/{n_stages}] {stage} {event.upper()}")
            self._bar.update(1, current_item=stage)

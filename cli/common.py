"""Options and helpers shared by the subcommands: declared once, used by every command that needs them.

Shared state of one invocation (verbosity, ``--json``) lives in ``ctx.meta``,
which click shares between the group's and the subcommand's contexts, so
``-q``/``-v`` and ``--json`` work before or after the subcommand's name.
"""
import json
import logging
import math
import sys
from pathlib import Path

import click
import numpy as np

log = logging.getLogger("bss2")

#: a log level between INFO and WARNING: what a person running a command should read (shown by default)
NOTE = 25
logging.addLevelName(NOTE, "NOTE")

_VERBOSE, _QUIET, _JSON, _ARGS = "bss2_calib.verbose", "bss2_calib.quiet", "bss2_calib.json", "bss2_calib.args"


class _Formatter(logging.Formatter):
    """``note: ...`` for NOTE, ``WARNING name: ...`` for warnings and errors, ``name: ...`` for the detail."""

    def format(self, record):
        msg = record.getMessage()
        if record.levelno == NOTE:
            return f"note: {msg}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname} {record.name}: {msg}"
        return f"{record.name}: {msg}"


class _Handler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``; on a terminal it first clears a progress bar's line."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass

    def emit(self, record):
        if getattr(sys.stderr, "isatty", lambda: False)():
            sys.stderr.write("\r\x1b[K")
        super().emit(record)


def configure_logging(ctx):
    """Set the log level from the ``-v``/``-q`` counts gathered in ``ctx.meta`` (one handler, on stderr)."""
    quiet, verbose = ctx.meta.get(_QUIET, False), ctx.meta.get(_VERBOSE, 0)
    level = logging.ERROR if quiet else (NOTE, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _Handler)), None)
    if handler is None:
        handler = _Handler()
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
    root.setLevel(level)


def _count_verbose(ctx, param, value):
    if value:
        ctx.meta[_VERBOSE] = ctx.meta.get(_VERBOSE, 0) + value
        configure_logging(ctx)


def _set_quiet(ctx, param, value):
    if value:
        ctx.meta[_QUIET] = True
        configure_logging(ctx)


def verbosity_options(f):
    """-v/--verbose (repeatable) and -q/--quiet: accepted by the group and by every subcommand."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
                     help="Only errors on stderr.")(f)
    f = click.option("-v", "--verbose", count=True, expose_value=False, callback=_count_verbose,
                     help="More log output on stderr: -v the per-instance detail, -vv debugging.")(f)
    return f


def is_quiet():
    """Whether -q was given (before or after the subcommand)."""
    return click.get_current_context().meta.get(_QUIET, False)


def verbosity():
    """How many -v were given (before and after the subcommand); 0 under -q."""
    ctx = click.get_current_context()
    return 0 if ctx.meta.get(_QUIET) else ctx.meta.get(_VERBOSE, 0)


def echo_notes(lines):
    """Explanations a person should read (``note: ...``) on stderr, unless -q."""
    if not is_quiet():
        for line in lines:
            click.echo(f"note: {line}", err=True)


def default_report_dir(artifact):
    """Where a report goes without --out: ``<artifact>-report`` beside the artifact directory."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + "-report")


#: Python keywords in library messages -> the flag that does the same on the command line
FLAGS = {"allow_mismatch=True": "--allow-mismatch", "spare_rows": "--spare-rows", "spare_columns": "--spare-columns"}


def one_line(err):
    """The first line of an exception's message, with Python keywords replaced by their flags."""
    text = str(err).strip().splitlines()
    msg = text[0] if text else type(err).__name__
    for keyword, flag in FLAGS.items():
        msg = msg.replace(keyword, flag)
    return msg


def stderr_progress(prefix):
    """A ``progress(msg)`` callback that prints ``PREFIX: msg`` on stderr, or None under -q."""
    if is_quiet():
        return None

    def report(msg):
        click.echo(f"{prefix}: {msg}", err=True)

    return report


def wants_json(ctx):
    """Whether --json was given to this invocation (also when parsing failed before its callback ran)."""
    return bool(ctx.meta.get(_JSON)) or "--json" in ctx.meta.get(_ARGS, ())


def remember_args(ctx, args):
    """Keep the command line's words (``wants_json`` looks there when parsing failed early)."""
    ctx.meta[_ARGS] = tuple(args)


def _set_json(ctx, param, value):
    if value:
        ctx.meta[_JSON] = True
    return value


def store_option(f):
    """--store DIR: the artifact store (to save into and to resolve chip-N names)."""
    return click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None,
                        help="Artifact store directory, where chip-N names are looked up [default: "
                             "$BSS2_CALIB_STORE or ~/.local/share/bss2-calib].")(f)


def chip_options(f):
    """--chip and --preset, shared by every command that builds a simulated chip."""
    f = click.option("--preset", default="default", show_default=True,
                     help="Preset name (default, ideal, noiseless, hxtorch-mock, harsh) or JSON file.")(f)
    f = click.option("--chip", "chip_id", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Chip id (serial); it fixes the chip's fixed-pattern parameters.")(f)
    return f


def json_option(f):
    """--json: one JSON document on stdout (errors too: ``{"error": "..."}``, with the usual exit code)."""
    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_set_json,
                        help="Print JSON on stdout (errors as {\"error\": ...}).")(f)


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


def _finite(obj):
    """NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def echo_json(obj):
    """Print ``obj`` as strict JSON on stdout (numpy scalars and arrays converted, NaN as null)."""
    click.echo(json.dumps(_finite(json.loads(json.dumps(obj, default=_default))), indent=2, allow_nan=False))


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

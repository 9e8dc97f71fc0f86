"""Writing a report: figures drawn once, then HTML, PDF and PNG files, each written atomically.

matplotlib is imported inside :func:`write_report` only (through the figure
modules of this package), so importing this module stays cheap.
"""
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..characterize.result import KIND as CHAR_KIND
from . import html as page_html
from .summary import fmt, is_characterization, label, summary_rows

FORMATS = ("html", "pdf", "png")
PNG_DPI = 110
#: summary rows per page of the PDF
PDF_ROWS_PER_PAGE = 34


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html, pdf : Path or None
        The report files (None when the format was not asked for).
    png : list of Path
        One file per figure.
    figures : list of str
        Names of the figures, in report order.
    missing : list of str
        Figures that the artifact(s) had no data for, with the reason.
    summary : list of tuple
        The summary rows (quantity, value, unit, source).
    """

    html: Path = None
    pdf: Path = None
    png: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    summary: list = field(default_factory=list)


def load_artifact(path):
    """Load a calibration or characterization artifact by the kind in its manifest."""
    from ..artifact import read_manifest

    if read_manifest(path, kind=None)["kind"] == CHAR_KIND:
        from ..characterize.io import load

        return load(path)
    from ..result import load

    return load(path)


def _as_artifact(a):
    if hasattr(a, "tables") and hasattr(a, "manifest"):
        return a
    return load_artifact(a)


# ---------------------------------------------------------------- writing
def _atomic_write(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _formats(formats):
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = [str(f).lower() for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"report formats must be a non-empty subset of {', '.join(FORMATS)}, got {formats!r}")
    return set(formats)


def write_report(artifacts, out_dir, *, formats=FORMATS, progress=None):
    """Write the report of a calibration or characterization artifact.

    Parameters
    ----------
    artifacts : path-like or loaded artifact, or a sequence of one or two
        The artifact to report (a directory, or an object with ``tables`` and
        ``manifest`` such as ``calib.load(path)`` or a
        :class:`~calib.characterize.Characterization`). A second artifact of
        the same kind and chip, made at another time, adds the drift between
        the two (the earlier one is the reference).
    out_dir : path-like
        Directory for ``report.html``, ``report.pdf`` and the PNGs
        (created if missing; files of an earlier report are replaced, each
        atomically).
    formats : str or iterable of {"html", "pdf", "png"}, default=all three
        E.g. ``"html,pdf"``.
    progress : callable(str) or None, default=None
        Called with a short message before each figure is drawn and each file written.

    Returns
    -------
    ReportFiles
        Paths written, figure names, figures not available, summary rows.

    Raises
    ------
    ValueError
        Bad formats, more than two artifacts, or a second artifact of another
        chip or kind (an :class:`~calib.errors.ArtifactError` for unreadable
        artifacts).
    """
    fmts = _formats(formats)
    if isinstance(artifacts, (str, os.PathLike)) or hasattr(artifacts, "tables"):
        artifacts = [artifacts]
    artifacts = list(artifacts)
    if not 1 <= len(artifacts) <= 2:
        raise ValueError(f"a report takes one or two artifacts, got {len(artifacts)}")
    arts = [_as_artifact(a) for a in artifacts]
    if len(arts) == 2:
        ka, kb = (x.manifest.get("kind") for x in arts)
        if ka != kb:
            raise ValueError(f"drift needs two artifacts of the same kind, got {ka} and {kb}")
        ca, cb = (x.manifest.get("chip_id") for x in arts)
        if ca != cb:
            raise ValueError(f"drift needs two artifacts of the same chip, got chip {ca} and chip {cb}")
        arts.sort(key=lambda x: str(x.manifest.get("created_utc", "")))
    main = arts[-1]  # the latest state of the chip is the report's subject

    # lazy: matplotlib is loaded here only
    if is_characterization(main):
        from .characterization import figures
    else:
        from .calibration import figures
    figs, missing = figures(main)
    if len(arts) == 2:
        from . import drift

        figs += drift.figures(arts[0], arts[1])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = [(q, fmt(v), u, s) for q, v, u, s in summary_rows(main)]
    res = ReportFiles(figures=[f[0] for f in figs], missing=missing, summary=summary)
    say = progress if progress is not None else (lambda msg: None)
    pngs = []
    for name, caption, fig in figs:
        say(f"drawing {name}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=PNG_DPI)
        pngs.append(buf.getvalue())
        fig.set_layout_engine("none")  # keep the layout just computed: the PDF page does not redo it
    if "png" in fmts:
        for (name, _, _), data in zip(figs, pngs):
            p = out / f"{name}.png"
            _atomic_write(p, data)
            res.png.append(p)
    if "pdf" in fmts:
        say("writing report.pdf")
        res.pdf = out / "report.pdf"
        _atomic_write(res.pdf, _pdf_bytes(main, summary, figs))
    if "html" in fmts:
        res.html = out / "report.html"
        _atomic_write(res.html, page_html.page(main, arts, summary, figs, pngs, missing).encode("utf-8"))
    return res


def _pdf_bytes(art, summary, figs):
    from matplotlib.backends.backend_pdf import PdfPages

    from . import plots as P

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": f"bss2-calib report, {label(art)}", "Creator": "bss2-calib"}) as pdf:
        per_page = PDF_ROWS_PER_PAGE
        for start in range(0, max(len(summary), 1), per_page):
            page = summary[start:start + per_page]
            pdf.savefig(P.table_figure(page, f"{label(art)}: summary from the artifact's tables"
                                       + (f" ({start // per_page + 1})" if len(summary) > per_page else "")))
        for _, _, fig in figs:
            pdf.savefig(fig)
    return buf.getvalue()

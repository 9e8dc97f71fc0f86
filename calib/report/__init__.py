"""Reports of calibration and characterization artifacts: HTML, PDF and PNG.

:func:`write_report` is the one entry point (``bss2-calib report`` and
``bss2-calib run --report`` call it). The HTML is self-contained (figures
embedded as base64 PNG, inline CSS, no scripts) and readable offline; the PDF
has the summary table on its first page and one figure per page after it.

The summary numbers are statistics of the artifact's own tables (each row
names its table, column and statistic); nothing is re-measured.

Modules: :mod:`~calib.report.summary` (summary rows, labels),
:mod:`~calib.report.writer` (:func:`write_report`, files),
:mod:`~calib.report.html` (the page), and the modules that import
matplotlib, loaded only inside :func:`write_report`:
:mod:`~calib.report.plots` (figure primitives on an Agg canvas),
:mod:`~calib.report.chip_plots` (the chip's own views),
:mod:`~calib.report.calibration`, :mod:`~calib.report.characterization`
and :mod:`~calib.report.drift` (the figures of each kind of report).
Importing this package never imports matplotlib.
"""
from .summary import CALIB_SUMMARY_SPEC, summary_rows
from .writer import FORMATS, ReportFiles, load_artifact, write_report

__all__ = ["write_report", "ReportFiles", "FORMATS", "load_artifact", "summary_rows", "CALIB_SUMMARY_SPEC"]

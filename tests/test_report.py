"""Reports: self-contained HTML with every figure, PDF, PNGs; summary numbers from the tables; CLI."""
import base64
import json
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bss2_calib.chipsim import Chip
from bss2_calib.calib.characterize import CharacterizeOptions, characterize
from bss2_calib.calib.characterize.result import SUMMARY_SPEC, state_tables, table_stat
from bss2_calib.calib.config import CalibWarning
from bss2_calib.calib.report import CALIB_SUMMARY_SPEC, summary_rows, write_report
from bss2_calib.cli.main import main

QUICK = CharacterizeOptions(rows=tuple(range(0, 128, 16)), transfer_levels=48, transfer_repeats=6, zero_repeats=64,
                            map_repeats=8, stuck_repeats=8)
PNG = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


CHIP = 0  # the session's shared default calibration (tests/conftest.py)


@pytest.fixture(scope="module")
def calibration(default_store):
    from bss2_calib import calib

    return calib.load(default_store.latest(CHIP))  # calibrated once per session; its directory is read only


@pytest.fixture(scope="module")
def char_dir(tmp_path_factory, calibration):
    """A two-state characterization (as found, and with the calibration applied), saved."""
    res = characterize(Chip(CHIP, "default", noise_seed=5), QUICK, artifact=calibration,
                       artifact_path=calibration.path)
    return res.save(tmp_path_factory.mktemp("char") / "char")


@pytest.fixture(scope="module")
def cli_report(char_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    res = CliRunner().invoke(main, ["report", str(char_dir), "--out", str(out), "--format", "html,png", "--json"])
    assert res.exit_code == 0, res.output
    assert "report: drawing" in res.stderr  # progress on stderr, JSON alone on stdout
    return out, json.loads(res.stdout)


class _Checker(HTMLParser):
    """Parses the page, checks that tags balance, collects images and table cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.imgs, self.rows, self._row, self._cell = [], [], [], [], None, None
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        if tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _parse(path):
    p = _Checker()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return p


# ------------------------------------------------------------------ HTML
def test_html_is_valid_self_contained_and_embeds_every_figure(cli_report):
    out, info = cli_report
    html_path = out / "report.html"
    page = _parse(html_path)
    assert not page.errors and not page.stack, (page.errors, page.stack)
    assert {"html", "head", "title", "body", "table", "figure", "img"} <= page.tags
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(|https?://", text)  # nothing fetched
    figures = info["figures"]
    assert len(figures) >= 8 and len(page.imgs) == len(figures)
    for img, name in zip(page.imgs, figures):
        assert img["alt"] == name
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert png.startswith(PNG)
        assert png == (out / f"{name}.png").read_bytes()  # the same figure as the PNG file
    assert {"residual_vs_level", "transfer_curves", "synapse_gain_map", "noise", "faults",
            "neuron_driver_histograms", "driver_curves"} <= set(figures)
    assert not (out / "report.pdf").exists()  # only the formats asked for


def test_summary_numbers_equal_the_table_statistics(cli_report, char_dir):
    from bss2_calib.calib.characterize.io import load

    out, info = cli_report
    art = load(char_dir)
    page = _parse(out / "report.html")
    shown = {r[0]: r[1] for r in page.rows if len(r) == 4 and r[0] != "quantity"}
    n = 0
    for state in ("uncalibrated", "calibrated"):
        st = state_tables(art.tables, state)
        for _, label, table, col, stat, subset, _ in SUMMARY_SPEC:
            v = table_stat(st[table], col, stat, subset)
            cell = shown[f"[{state}] {label}"]
            if v is None:
                assert cell == "n/a"
            elif isinstance(v, int):
                assert int(cell) == v
            else:
                assert float(cell) == pytest.approx(v, rel=1e-3, abs=1e-12)
            n += 1
        # and independently of table_stat, a few with plain pandas
        cs = st["column_summary"]
        ok = cs[cs["success"]]
        assert float(shown[f"[{state}] excitatory gain, median"]) == pytest.approx(
            ok["gain_exc_lsb_per_unit"].median(), rel=1e-3)
        assert float(shown[f"[{state}] offset at zero input, std"]) == pytest.approx(ok["offset_lsb"].std(), rel=1e-3)
        assert int(shown[f"[{state}] columns failed (fit, dead or noisy)"]) == int((~cs["success"]).sum())
    assert n == 2 * len(SUMMARY_SPEC)
    assert {r["quantity"] for r in info["summary"]} == set(shown)


def test_calibration_brings_the_residual_down(char_dir):
    from bss2_calib.calib.characterize.io import load
    from bss2_calib.calib.characterize.result import residual_by_level

    art = load(char_dir)
    res = {s: residual_by_level(state_tables(art.tables, s), 0.002) for s in ("uncalibrated", "calibrated")}
    inside = {s: res[s]["rms"][np.abs(res[s]["level"]) < 60] for s in res}
    assert inside["calibrated"].max() < 1.5  # within the noise of a 6-read mean, no systematic error left
    assert np.median(inside["uncalibrated"]) > 3 * np.median(inside["calibrated"])


COUNT_LABELS = ("count", "faulty synapses", "instances")


def test_figures_have_no_empty_panels_unitless_1_or_fractional_counts(calibration, char_dir, calibrated_harsh):
    """Every panel of every figure (default and harsh calibrations, a characterization) shows something."""
    from bss2_calib.calib.characterize.io import load
    from bss2_calib.calib.report import calibration as calibration_figures
    from bss2_calib.calib.report import characterization as characterization_figures

    figs = (calibration_figures.figures(calibration)[0] + calibration_figures.figures(calibrated_harsh[1])[0]
            + characterization_figures.figures(load(char_dir))[0])
    assert {"noise", "faults"} <= {name for name, _, _ in figs}
    for name, _, fig in figs:
        for ax in (a for a in fig.axes if a.get_visible()):
            where = (name, ax.get_title())
            assert "no data" not in [t.get_text() for t in ax.texts], where
            assert ax.has_data(), where
            for label, axis, (lo, hi) in ((ax.get_xlabel(), ax.xaxis, ax.get_xlim()),
                                          (ax.get_ylabel(), ax.yaxis, ax.get_ylim())):
                assert "(1)" not in label, where
                if label in COUNT_LABELS or label.startswith("activation code"):
                    ticks = np.asarray(axis.get_majorticklocs())
                    ticks = ticks[(ticks >= min(lo, hi)) & (ticks <= max(lo, hi))]
                    assert len(ticks) and np.all(ticks == np.round(ticks)) and ticks.min() >= 0, (where, ticks)


# ------------------------------------------------------------------ in a real browser
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package (.ci/run installs it); never a downloaded build
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _png_size(data):
    """(width, height) from a PNG's IHDR chunk."""
    assert data.startswith(PNG) and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_report_renders_in_a_real_browser(cli_report):
    """report.html opened from a file:// URL in headless Chromium: every figure decodes, no console error."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: install the test extras (make setup-test)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install chromium), as .ci/run does")
    out, info = cli_report
    errors, failed = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.goto((out / "report.html").resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "figure img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
            summary_shown = page.is_visible("#summary-table")
            rows = page.eval_on_selector_all("#summary-table tbody tr",
                                             "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
            title = page.title()
        finally:
            browser.close()
    assert not errors and not failed, (errors, failed)
    assert title.startswith("bss2-calib report: chip 0")
    assert [alt for alt, *_ in images] == info["figures"]
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
        assert (width, height) == _png_size((out / f"{alt}.png").read_bytes()), alt  # decoded at full size
    assert summary_shown and [r[0] for r in rows] == [r["quantity"] for r in info["summary"]]
    assert all(len(r) == 4 and r[1] for r in rows)


# ------------------------------------------------------------------ errors
def test_write_report_refuses_bad_arguments(char_dir, tmp_path):
    with pytest.raises(ValueError, match="formats"):
        write_report(char_dir, tmp_path, formats="html,svg")
    with pytest.raises(ValueError, match="formats"):
        write_report(char_dir, tmp_path, formats=[])
    with pytest.raises(ValueError, match="one or two"):
        write_report([char_dir] * 3, tmp_path)
    from bss2_calib.calib.characterize import Characterization
    from bss2_calib.calib.characterize.io import load

    art = load(char_dir)
    other = Characterization(tables=art.tables, manifest={**art.manifest, "chip_id": CHIP + 2})
    with pytest.raises(ValueError, match="same chip"):
        write_report([char_dir, other], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_report_errors_are_one_line(tmp_path, char_dir):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "Error:" in r.output
    r = CliRunner().invoke(main, ["report", str(char_dir), str(char_dir), str(char_dir), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "one or two" in r.output
    r = CliRunner().invoke(main, ["report", str(char_dir), "--out", str(tmp_path / "o"), "--format", "docx"])
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.output and "'docx'" in r.output
    assert not (tmp_path / "o").exists()  # refused before drawing anything


# ------------------------------------------------------------------ slow: PDF, drift, calibration artifacts
def _pdf_pages(data):
    return len(re.findall(rb"/Type\s*/Page[^s]", data))


@pytest.mark.slow
def test_all_formats_and_drift_between_two_characterizations(tmp_path, char_dir):
    chip = Chip(CHIP, "default", noise_seed=9)
    chip.advance(hours=2000.0, temperature_c=27.0)
    later = characterize(chip, QUICK)
    later.manifest["created_utc"] = "2999-01-01T00:00:00Z"  # certainly the later one
    res = write_report([later, char_dir], tmp_path / "r")
    assert res.figures[-2:] == ["drift", "drift_synapse_map"]
    assert res.html.is_file() and res.pdf.is_file()
    assert [p.name for p in res.png] == [f"{n}.png" for n in res.figures]
    assert all(p.read_bytes().startswith(PNG) for p in res.png)
    pdf = res.pdf.read_bytes()
    summary_pages = -(-len(res.summary) // 34)  # the summary table, 34 rows a page
    assert pdf.startswith(b"%PDF") and _pdf_pages(pdf) == len(res.figures) + summary_pages
    page = _parse(res.html)
    assert not page.errors and len(page.imgs) == len(res.figures)
    assert "drift reference" in res.html.read_text(encoding="utf-8")
    # a second run replaces the files in place
    again = write_report([later, char_dir], tmp_path / "r", formats="pdf")
    assert again.pdf == res.pdf and not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_report_of_a_calibration_artifact_in_the_store(tmp_path, calibration):
    from bss2_calib import calib

    stored = calib.ArtifactStore(tmp_path / "store").save(calib.load(calibration.path))
    r = CliRunner().invoke(main, ["report", f"chip-{CHIP}", "--store", str(tmp_path / "store"), "--out",
                                  str(tmp_path / "r"), "--format", "html,pdf", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert {"correction_histograms", "knob_before_after", "synapse_gain_map", "driver_curves",
            "faults"} <= set(info["figures"])
    assert any("residual_vs_level" in m for m in info["missing"])
    res = write_report(stored, tmp_path / "r2", formats="html,pdf")
    assert res.figures == info["figures"]
    page = _parse(res.html)
    assert not page.errors and len(page.imgs) == len(res.figures)
    shown = {r[0]: r[1] for r in page.rows if len(r) == 4}
    nc = calibration.tables["neuron_correction"]
    ok = nc[nc["success"]]
    assert float(shown["excitatory gain (relative to target), median"]) == pytest.approx(ok["gain_exc"].median(),
                                                                                        rel=1e-3)
    assert int(shown["neurons failed"]) == int((~nc["success"]).sum())
    assert len(summary_rows(calibration)) >= len(CALIB_SUMMARY_SPEC)
    assert _pdf_pages(res.pdf.read_bytes()) == len(res.figures) + -(-len(res.summary) // 34)


@pytest.mark.slow
def test_drift_between_two_calibrations(tmp_path, calibration):
    from bss2_calib import calib

    chip = Chip(CHIP, "default", noise_seed=3)
    chip.advance(hours=5000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibWarning)
        later = calib.calibrate(chip)
    res = write_report([calibration.path, later], tmp_path / "r", formats="png")
    assert "drift" in res.figures and res.html is None and res.pdf is None

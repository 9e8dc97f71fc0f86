"""The HTML page of a report: self-contained (figures embedded as base64 PNG, inline CSS, no scripts)."""
import base64
import html
import json

import numpy as np

from .summary import fmt, is_characterization, label, states_of, when

MAX_FAULT_ROWS = 300

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
.meta td:first-child{font-weight:600}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}
"""


def _e(x):
    return html.escape(str(x), quote=True)


def page(art, arts, summary, figs, pngs, missing):
    """The report page as text.

    Parameters
    ----------
    art : artifact
        The report's subject (the later one of a drift pair).
    arts : list of artifact
        One, or two for a drift report (earlier first).
    summary : list of (quantity, value text, unit, source)
    figs : list of (name, caption, Figure)
    pngs : list of bytes
        The figures as PNG, in the order of ``figs``.
    missing : list of str
        Figures left out, with the reason.
    """
    m = art.manifest
    lab = label(art)
    char = is_characterization(art)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e('bss2-calib report: ' + lab)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{_e('bss2-calib report: ' + lab)}</h1>", '<table class="meta">']
    preset = m.get("preset") or {}
    meta = [("kind", m.get("kind")), ("chip id", m.get("chip_id")),
            ("preset", f"{preset.get('name')} (sha256 {preset.get('sha256', '')[:16]}…)"),
            ("created (UTC)", m.get("created_utc")), ("package version", m.get("package_version")),
            ("conditions", json.dumps(m.get("conditions"), sort_keys=True))]
    if char:
        meta.append(("states", ", ".join(states_of(art))))
        meta.append(("hardware time spent", f"{m.get('hw_time_s', float('nan')):.3f} s"))
    if len(arts) == 2:
        meta.append(("compared with", f"{when(arts[0])} (drift reference)"))
    parts += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in meta]
    parts.append("</table>")

    parts.append('<h2 id="summary">Summary</h2>')
    parts.append("<p>Every number is a statistic of the artifact's tables; the source column says which.</p>")
    parts.append('<table id="summary-table"><thead><tr><th>quantity</th><th>value</th><th>unit</th><th>source</th>'
                 "</tr></thead><tbody>")
    for q, v, u, s in summary:
        parts.append(f'<tr><td>{_e(q)}</td><td class="num">{_e(v)}</td><td>{_e(u)}</td><td>{_e(s)}</td></tr>')
    parts.append("</tbody></table>")

    fl = art.tables.get("faults")
    if fl is not None:
        parts += _fault_section(fl)

    parts.append('<h2 id="figures">Figures</h2>')
    for (name, caption, _), data in zip(figs, pngs):
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f'<figure id="fig-{_e(name)}"><img alt="{_e(name)}" src="data:image/png;base64,{b64}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    if missing:
        parts.append('<h2 id="missing">Not in this report</h2><ul>')
        parts += [f"<li>{_e(x)}</li>" for x in missing]
        parts.append("</ul>")
    steps = m.get("steps") or []
    if steps:
        parts.append('<h2 id="steps">Steps</h2>')
        keys = [k for k in ("state", "name", "algorithm", "vectors", "measurements", "hw_time_s", "wall_time_s",
                            "n_failed") if any(k in st for st in steps)]
        parts.append("<table><thead><tr>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr></thead><tbody>")
        for st in steps:
            cells = []
            for k in keys:
                v = st.get(k, "")
                cells.append(f'<td class="num">{_e(fmt(v))}</td>' if isinstance(v, (int, float)) and not
                             isinstance(v, bool) else f"<td>{_e(v)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    q = m.get("quality")
    if q and not char:  # a characterization's quality is the summary above
        parts.append('<h2 id="manifest-quality">Quality figures recorded in the manifest</h2>')
        parts.append(f"<pre>{_e(json.dumps(q, indent=1, sort_keys=True, default=str))}</pre>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _fault_section(fl):
    parts = ['<h2 id="faults">Faulty elements</h2>']
    flr = fl.reset_index()
    if not len(flr):
        parts.append("<p>No faulty element found.</p>")
        return parts
    counts = flr.groupby(["state", "kind"]).size() if "state" in flr.columns else flr.groupby("kind").size()
    parts.append("<p>" + "; ".join(f"{_e(' '.join(map(str, k)) if isinstance(k, tuple) else k)}: {int(v)}"
                                   for k, v in counts.items()) + "</p>")
    cols = [c for c in ("state", "kind", "element", "measured", "expected", "threshold", "z_score", "unit",
                        "evidence") if c in flr.columns]
    parts.append("<table><thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr></thead><tbody>")
    for _, r in flr.head(MAX_FAULT_ROWS).iterrows():
        cells = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (float, np.floating))
            cells.append(f'<td class="num">{_e(fmt(v))}</td>' if num else f"<td>{_e(v)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if len(flr) > MAX_FAULT_ROWS:
        parts.append(f"<p>First {MAX_FAULT_ROWS} of {len(flr)} rows; all are in the artifact's faults table.</p>")
    return parts

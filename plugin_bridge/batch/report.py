"""Batch reports: report.csv and report.json (one row per item) and a static report.html with plots."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path, PurePosixPath

from ..chain import load_chain
from ..errors import PluginBridgeError
from ..files import write_atomic
from .jobs import write_json_atomic

COLUMNS = (
    "id",
    "status",
    "attempts",
    "model",
    "chain",
    "lufs_before",
    "lufs_after",
    "true_peak_before",
    "true_peak_after",
    "render_seconds",
    "error",
)


def flat_rows(rows: list[dict]) -> list[dict]:
    """Ledger rows flattened to the report's columns (result fields lifted to the top)."""
    out = []
    for r in rows:
        res = r.get("result") or {}
        flat = {k: res.get(k) for k in COLUMNS}
        flat.update(id=r["id"], status=r["status"], attempts=r["attempts"], error=r.get("error"))
        flat["values"] = res.get("values")
        flat["vector"] = res.get("vector")
        out.append(flat)
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


#: Song names longer than this are shortened on the loudness plot's axis (middle elided).
MAX_LABEL_CHARS = 24
#: At most this many song names on the axis; more songs are labelled every n-th.
MAX_SONG_LABELS = 60
#: Units by parameter-name suffix, for names a chain does not define.
_SUFFIX_UNITS = {"_db": "dB", "_dbtp": "dBTP", "_lufs": "LUFS", "_ms": "ms", "_s": "s", "_hz": "Hz"}


def song_label(item_id: str, max_chars: int = MAX_LABEL_CHARS) -> str:
    """A song's name for a plot axis: its item id without the audio suffix, the middle elided
    (``"…"``) when longer than ``max_chars``."""
    name = str(PurePosixPath(item_id).with_suffix("")) if PurePosixPath(item_id).suffix else item_id
    if len(name) <= max_chars:
        return name
    head = (max_chars - 1) // 2
    return name[:head] + "…" + name[-(max_chars - 1 - head) :]


def _chain_units(chain_names: set[str]) -> dict[str, str]:
    """``{parameter name: unit}`` from the `ParamSpace` of each named chain (unknown chains skipped)."""
    units: dict[str, str] = {}
    for name in sorted(chain_names):
        try:
            space = load_chain(name).space
        except PluginBridgeError:
            continue
        units.update({spec.name: spec.unit for spec in space})
    return units


def parameter_unit(name: str, units: dict[str, str]) -> str:
    """The unit of parameter ``name``: from ``units`` (the chain's space), else from the name's
    suffix (``_db`` dB, ``_ms`` ms, ``_hz`` Hz...), else ``""`` (a plain amount or ratio)."""
    if name in units:
        return units[name]
    return next((u for suffix, u in _SUFFIX_UNITS.items() if name.lower().endswith(suffix)), "")


def loudness_figure(rows: list[dict]):
    """The loudness plot (a matplotlib `Figure`): integrated loudness before and after, one column
    per finished song, named on the x axis. None when no song finished or matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    done = [r for r in rows if r["status"] == "done" and r["lufs_after"] is not None]
    if not done:
        return None
    x = list(range(len(done)))
    fig = Figure(figsize=(max(6.0, min(16.0, 0.35 * len(done) + 2)), 4.2))
    ax = fig.add_subplot()
    before = [r["lufs_before"] if r["lufs_before"] is not None else float("nan") for r in done]
    ax.scatter(x, before, label="before", marker="o")
    ax.scatter(x, [r["lufs_after"] for r in done], label="after", marker="x")
    step = -(-len(done) // MAX_SONG_LABELS)
    ax.set_xticks(x[::step], [song_label(r["id"]) for r in done[::step]], rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(done) - 0.5)
    ax.set_xlabel("song")
    ax.set_ylabel("integrated loudness (LUFS)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return fig


def parameter_figure(rows: list[dict]):
    """The parameter plot (a matplotlib `Figure`): one box plot per parameter of the real values
    the finished songs used, its y axis in the parameter's unit (from the chain's `ParamSpace`).
    None when no finished song has parameter values or matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    done = [r for r in rows if r["status"] == "done" and r.get("values")]
    if not done:
        return None
    names = list(dict.fromkeys(name for r in done for name in r["values"]))
    units = _chain_units({r["chain"] for r in done if r.get("chain")})
    cols = min(6, len(names))
    nrows = -(-len(names) // cols)
    fig = Figure(figsize=(2.0 * cols, 2.2 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = [float(r["values"][name]) for r in done if r["values"].get(name) is not None]
        ax.boxplot([values])
        ax.set_xticks([])
        ax.set_title(name, fontsize=8)
        unit = parameter_unit(name, units)
        ax.set_ylabel(unit or "amount", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _plots(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: loudness before/after and the parameter distributions."""
    figures = (
        ("Loudness before and after", loudness_figure(rows)),
        ("Parameter values", parameter_figure(rows)),
    )
    return [(title, _png(fig)) for title, fig in figures if fig is not None]


def render_html(rows: list[dict]) -> str:
    """The static HTML report: summary, plots (inline PNG), failures, and every item."""
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("done", "failed", "pending")}
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>plugin-bridge batch report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}.failed{color:#b00}</style></head><body>",
        "<h1>plugin-bridge batch report</h1>",
        f"<p id='summary'>{len(rows)} items: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['pending']} pending</p>",
    ]
    for title, png in _plots(rows):
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    failed = [r for r in rows if r["status"] == "failed"]
    parts.append(f"<h2>Failures ({len(failed)})</h2>")
    if failed:
        parts.append("<table id='failures'><tr><th>item</th><th>attempts</th><th>reason</th></tr>")
        parts += [
            f"<tr class='failed'><td>{esc(r['id'])}</td><td>{r['attempts']}</td><td>{esc(r['error'] or '')}</td>"
            "</tr>"
            for r in failed
        ]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append(
        "<h2>Items</h2><table id='items'><tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS[:-1]) + "</tr>"
    )
    for r in rows:
        cells = "".join(f"<td>{esc('' if r.get(c) is None else str(r.get(c)))}</td>" for c in COLUMNS[:-1])
        parts.append(f"<tr class='{r['status']}'>{cells}</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_reports(ledger_rows: list[dict], out_dir: Path) -> dict[str, str]:
    """Write report.csv, report.json and report.html into ``out_dir`` (atomically); returns their paths."""
    rows = flat_rows(ledger_rows)
    paths = {k: out_dir / f"report.{k}" for k in ("csv", "json", "html")}
    write_json_atomic(paths["json"], rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, "values"], extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "values": json.dumps(r["values"]) if r["values"] else ""})
    write_atomic(paths["csv"], buf.getvalue())
    write_atomic(paths["html"], render_html(rows))
    return {k: str(v) for k, v in paths.items()}

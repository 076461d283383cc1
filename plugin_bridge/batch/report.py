"""Batch reports: report.csv and report.json (one row per item) and a static report.html with plots."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from ..export import write_atomic
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


def _plots(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: loudness before/after and the parameter distributions."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    done = [r for r in rows if r["status"] == "done" and r["lufs_after"] is not None]
    plots = []
    if done:
        fig = Figure(figsize=(6, 3.2))
        ax = fig.add_subplot()
        before = [r["lufs_before"] if r["lufs_before"] is not None else float("nan") for r in done]
        after = [r["lufs_after"] for r in done]
        ax.scatter(range(len(done)), before, label="before", marker="o")
        ax.scatter(range(len(done)), after, label="after", marker="x")
        ax.set_xlabel("song")
        ax.set_ylabel("integrated loudness (LUFS)")
        ax.legend()
        plots.append(("Loudness before and after", _png(fig)))
    vectors = [r["vector"] for r in done if r.get("vector")]
    if vectors and len({len(v) for v in vectors}) == 1:
        names = (
            list(done[0]["values"].keys())
            if done[0].get("values")
            else [str(i) for i in range(len(vectors[0]))]
        )
        fig = Figure(figsize=(8, 3.6))
        ax = fig.add_subplot()
        ax.boxplot([list(col) for col in zip(*vectors, strict=True)])
        ax.set_xticks(range(1, len(names) + 1), names, rotation=70, fontsize=7)
        ax.set_ylabel("normalized value")
        plots.append(("Parameter distributions", _png(fig)))
    return plots


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

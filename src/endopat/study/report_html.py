"""report.html: the tables of report.md, rounded alike, and the figures embedded (self-contained)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from endopat.report import compute, unlabeled
from endopat.report.texts import DIFF_TEXT, NO_SAVINGS_TEXT, PROTOCOL_TEXT, SAVINGS_TEXT, SHARES, SOURCES_TEXT, PAIRS_TEXT
from endopat.study.protocol import deviations


def _img_tag(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def fmt(key: str, v) -> str:
    """A table value as report.md shows it: changes and shares as whole percentages, p-values to 3
    significant digits, label counts to one decimal, scores to three."""
    if v is None:
        return "-"
    if not isinstance(v, float):
        return str(v)
    if key.endswith("change_pct"):
        return f"{v:+.0f}%"
    if key.endswith("_pct"):
        return f"{v:.0f}%"
    if key.endswith("_p"):
        return f"{v:.3g}"
    if key == "df":
        return "inf" if v == float("inf") else f"{v:.0f}"
    if key.startswith("labels_") or key == "runs_to_resolve":
        return f"{v:.1f}" if key.startswith("labels_") else f"{v:.0f}"
    return f"{v:+.3f}" if key in ("dice_diff", "ci_low", "ci_high", "run_ci_low", "run_ci_high") else f"{v:.3f}"


def _html_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = ""
    for r in rows:
        cells = [f"<td>{html.escape(fmt(k, r.get(k)))}</td>" for k, _ in cols]
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _compute_table(cost: list[dict]) -> str:
    more = compute.running(cost)  # a study still running: the hours to come, estimated
    rows = "".join(f"<tr><td>{html.escape(r['what'])}</td><td>{compute.runs(r)}</td><td>{r['hours']:.2f}</td>"
                   f"<td>{compute.per_run(r)}</td>" + (f"<td>{compute.to_come(r)}</td>" if more else "") + "</tr>"
                   for r in cost)
    return ("<table><thead><tr><th>what</th><th>runs</th><th>hours</th><th>minutes per run</th>"
            + ("<th>hours to come (est.)</th>" if more else "") + f"</tr></thead><tbody>{rows}</tbody></table>")


def page(cfg, data, n_cells: int, total: int, table: list[dict], sav: list[dict], pst: list[dict],
          tasks: list[tuple[Path, str]], curves: Path | None, hist_png: Path | None, overlays: Path | None,
          no_sav: list[tuple[str, str]] = (), cost: list[dict] = (), per_class: str = "",
          pairs: list[tuple[str, str]] = ()) -> str:
    """report.html: the tables of report.md (rounded alike) and the figures, embedded; ``per_class``:
    a multi-class study's section (:func:`class_section`)."""
    cols = [("method", "method"), ("labels", "labels"), ("fraction", "fraction"), ("runs", "runs"),
            ("dice_mean", "DSC mean"), ("dice_change_pct", "DSC % vs baseline"), ("dice_median", "DSC median"),
            ("dice_q1", "DSC Q1"), ("dice_q3", "DSC Q3"), ("iou_mean", "IoU mean"),
            ("iou_change_pct", "IoU % vs baseline"), ("iou_median", "IoU median"), ("iou_q1", "IoU Q1"),
            ("iou_q3", "IoU Q3")]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(cfg.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}img{{max-width:100%}}
figure{{margin:1em 0}}figcaption{{color:#555;font-size:90%}}</style></head><body>
<h1>Study report: {html.escape(cfg.name)}</h1>
<p id="progress">{n_cells} of {total} cells finished. Test set: {len(data.split.test)} images from videos disjoint
from training and validation.</p>
<p id="protocol">{html.escape(PROTOCOL_TEXT.format(protocol=cfg.protocol).replace("**", ""))}</p>
<ul>{"".join(f"<li>{html.escape(d)}</li>" for d in deviations(cfg, data.labels))}</ul>
<h2>Table 1</h2>{_html_table(table, cols)}
<h2>DSC against labeled-set size</h2>{_img_tag(curves, "mean test DSC against labeled images")}
<h2>Label savings</h2><p>{html.escape(SAVINGS_TEXT)}</p>{_html_table(sav, [("method", "method"),
    ("baseline_labels", "baseline labels"), ("baseline_dice", "baseline DSC"),
    ("labels_text", "labels needed [95% CI]"), ("saved_text", "saved [95% CI]")])}
{"<p>" + html.escape(NO_SAVINGS_TEXT + "; ".join(f"{m} ({why})" for m, why in no_sav)) + ".</p>" if no_sav else ""}
<h2>Differences from the baseline</h2><p>{html.escape(DIFF_TEXT)}</p>{_html_table(pst, [("method", "method"),
    ("fraction", "fraction"), ("runs", "runs"), ("baseline_runs", "baseline runs"), ("n_images", "images"),
    ("dice_diff", "mean DSC diff"), ("run_ci_low", "CI low"), ("run_ci_high", "CI high"), ("df", "df"),
    ("verdict", "verdict"),
    *[(k, f"share: {t}") for k, t in SHARES], ("runs_to_resolve", "runs to resolve"),
    ("runs_to_resolve_note", "(design, or why none)"), ("ci_low", "CI low (images only)"), ("ci_high", "CI high (images only)"),
    ("wilcoxon_p", "Wilcoxon p")])}
{per_class}
<h2>Pretraining sources and the test split</h2><p>{html.escape(SOURCES_TEXT)}</p>
<ul id="sources">{"".join(f"<li><b>{html.escape(o.name)}</b> ({html.escape(o.source)}): {html.escape(o.sentence())}</li>"
                         for o in data.sources.values())}</ul>
{f'<p>{html.escape(PAIRS_TEXT)}</p><ul id="pairs">' + "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(t)}</li>"
                                                          for n, t in pairs) + "</ul>" if pairs else ""}
<h2>What each pretraining learnt</h2>{"".join(_img_tag(png, caption) for png, caption in tasks)}
<h2>a/b colour distributions</h2>{_img_tag(hist_png, "log a/b histograms per unlabeled source")}
<h2>Example test images</h2>{_img_tag(overlays, "ground truth and predictions")}
{"<h2>Compute</h2>" + _compute_table(cost) if cost else ""}
</body></html>"""
    return page


def class_section(rows: list[dict], savings: list[dict], curves: list[Path], text: str) -> str:
    """The per-class section of a multi-class study (:mod:`endopat.study.report_classes`)."""
    if not rows:
        return ""
    return (f"<h2>Per class</h2><p>{html.escape(text)}</p>"
            + "".join(_img_tag(p, f"{p.stem[len('curves_'):]}: DSC against labeled images") for p in curves)
            + _html_table(rows, [("class", "class"), ("method", "method"), ("fraction", "fraction"),
                                 ("labels", "labels"), ("n_test", "test images"), ("dice_mean", "DSC"),
                                 ("iou_mean", "IoU"), ("dice_diff", "DSC diff"), ("run_ci_low", "CI low"),
                                 ("run_ci_high", "CI high"), ("verdict", "verdict")])
            + _html_table(savings, [("class", "class"), ("method", "method"), ("baseline_labels", "baseline labels"),
                                    ("baseline_dice", "baseline DSC"), ("labels_text", "labels needed [95% CI]"),
                                    ("saved_text", "saved [95% CI]")]))


def unlabeled_section(rows: list[dict]) -> str:
    """The semi-supervised rows' unlabeled term at the kept epoch (:mod:`endopat.report.unlabeled`)."""
    if not rows:
        return ""
    return (f"<h2>The unlabeled term (semi-supervised rows)</h2><p>{html.escape(unlabeled.TEXT.replace('`', ''))}</p>"
            + _html_table(unlabeled.text_rows(rows), [("method", "method"), ("fraction", "fraction"),
                                                      ("read", "runs read"), ("runs", "runs"),
                                                      ("share", "share at the kept epoch (median)"),
                                                      ("share_range", "least - most"), ("epoch", "kept epoch of run")]))

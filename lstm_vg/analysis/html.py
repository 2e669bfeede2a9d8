"""One self-contained HTML page of the runs below a path (`lstm-vg report PATH --format html`).

The page holds, in order:
- the report's table: the rows and cells of the markdown report (`report.rows`, `markdown_cells`);
- the claims of PATH/experiment.yaml with their verdicts, when there are any;
- per experiment folder, every figure `lstm-vg plot` draws (`plots.experiment_figures`, drawn
  in memory, embedded as PNG data URIs at `plots.DPI`: the same pixels as `plot --format png`),
  the notes on figures it could not draw, the figures it could not draw now but `lstm-vg plot`
  saved earlier under <experiment>/plots/ (a clone of results/reproduced/ has the saved PNGs but
  not the gradient arrays they were drawn from), and the resolved configs of its runs: one <details>
  per group of runs whose config.yaml is the same but for the seed, shown with the group's
  seeds, so that `lstm-vg run` on the block trains that group again;
- the environment: meta.json's versions and device, one row per distinct combination.

Self-contained: no script, no stylesheet link, no URL but the images' `data:`; a
Content-Security-Policy meta tag makes a browser refuse anything else. Every text is escaped.
PNG, not SVG: matplotlib writes a heatmap's image into SVG at full resolution (1.7 MB for one
figure at T = 200, against 76 kB as PNG). Pure: loaded results (and saved PNG bytes) in, a string out.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

import yaml
from matplotlib.figure import Figure

from lstm_vg.analysis import grouping, plots, report
from lstm_vg.analysis.grouping import ExperimentResults
from lstm_vg.results.read import RunResult

# meta.json fields shown under "Environment" (docs/results-format.md)
ENVIRONMENT = ("lstm_vg", "jax", "jaxlib", "optax", "python", "platform", "device_kind", "host_cpu",
               "devices")
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1250px; margin: 2em auto;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; margin-top: 2em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.number { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.holds { color: #1a7f37; font-weight: bold; } td.fails { color: #cf222e; font-weight: bold; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }
figcaption, .notes { color: #555; font-size: 12px; }
pre { background: #f6f8fa; padding: 0.6em 0.9em; overflow-x: auto; font-size: 12px; }
summary { cursor: pointer; }
"""


def text(value) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe in an attribute)."""
    return escape(str(value))


def png_data_uri(figure: Figure | bytes) -> str:
    """The figure as a `data:image/png;base64,…` URI, drawn as `lstm-vg plot` writes it (or a
    saved PNG file's bytes as they are)."""
    if isinstance(figure, Figure):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=plots.DPI)
        figure = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(figure).decode("ascii")


def table(header: list[str], rows: list[list], numeric: list[bool] | None = None) -> str:
    """A <table>; `numeric` marks the columns to right-align."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=number" if right else ""}>{text(c)}</td>'
                                    for c, right in zip(row, numeric, strict=True)) + "</tr>"
                   for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def results_table(experiments: list[ExperimentResults]) -> str:
    """The markdown report's table as HTML: the same rows, columns and formatted cells."""
    rows = report.rows(experiments)
    swept = report.swept_columns(rows)
    header, numeric = report.markdown_header(swept)
    return table(header, [report.markdown_cells(r, swept) for r in rows], numeric)


def claims_section(verdicts: list) -> str:
    """The claims (`claims.Verdict`s) as `report --check` prints them: claim, measured, verdict."""
    held = sum(v.holds for v in verdicts)
    verdict = {True: '<td class="holds">holds</td>', False: '<td class="fails">FAILS</td>'}
    rows = "".join(f"<tr><td><code>{text(v.claim.text)}</code></td><td>{text(v.measured)}</td>"
                   f"{verdict[v.holds]}</tr>" for v in verdicts)
    return (f'<h2 id="claims">Claims</h2><p>{held} of {len(verdicts)} claims hold.</p>'
            f'<div class="wide"><table><thead><tr><th>claim</th><th>measured</th><th>verdict</th></tr>'
            f"</thead><tbody>{rows}</tbody></table></div>")


def figure_html(name: str, figure: Figure | bytes) -> str:
    """One figure (drawn now, or a saved PNG file's bytes), its name as the image's alt text,
    its anchor and its caption."""
    caption = name
    if isinstance(figure, bytes):
        caption += f" (saved by lstm-vg plot as plots/{name}.png; its data are not here to redraw it)"
    return (f'<figure id="{text(name)}"><img alt="{text(name)}" src="{png_data_uri(figure)}">'
            f"<figcaption>{text(caption)}</figcaption></figure>")


def config_groups(runs: tuple[RunResult, ...]) -> dict[str, list[RunResult]]:
    """Runs whose config.yaml is the same but for `seeds`, keyed by that config as YAML."""
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        rest = {key: value for key, value in run.config.items() if key != "seeds"}
        groups.setdefault(yaml.safe_dump(rest, sort_keys=False, allow_unicode=True), []).append(run)
    return groups


def configs_section(experiment: ExperimentResults) -> str:
    """One <details> per config group: its swept values and seeds, then its YAML with the seeds."""
    parts = []
    for config, runs in config_groups(experiment.runs).items():
        swept = [("cell", runs[0].cell)] if grouping.CELL_KEY in experiment.swept_keys else []
        swept += [(key.split(".")[-1], value) for key, value in experiment.setting(runs[0])]
        label = ", ".join(f"{key}={value}" for key, value in swept) or experiment.name
        seeds = yaml.safe_dump(sorted((r.seed for r in runs), key=grouping.sort_key),
                               default_flow_style=True).strip()
        parts.append(f"<details><summary>{text(label)} · seeds {text(seeds)}</summary>"
                     f"<pre>{text(config)}seeds: {text(seeds)}\n</pre></details>")
    return "".join(parts)


def experiment_section(experiment: ExperimentResults, saved: dict[str, bytes] | None = None) -> str:
    """An experiment folder's figures (with notes on those not drawn) and configs; `saved`:
    {file stem: PNG bytes} of its plots/ folder, shown where the same figure cannot be drawn now."""
    figures, notes = plots.experiment_figures(experiment)
    figures = {f"{experiment.name}_{stem}": figure for stem, figure in figures.items()}
    figures |= {stem: png for stem, png in sorted((saved or {}).items()) if stem not in figures}
    drawn = "".join(figure_html(name, figure) for name, figure in figures.items())
    noted = "".join(f"<li>{text(note)}</li>" for note in notes)
    return (f'<section id="experiment-{text(experiment.name)}"><h2>Experiment {text(experiment.name)}</h2>'
            f"<h3>Figures</h3>{drawn}" + (f'<ul class="notes">{noted}</ul>' if noted else "")
            + f"<h3>Configs</h3>{configs_section(experiment)}</section>")


def saved_figures(experiments: list[ExperimentResults]) -> dict[Path, dict[str, bytes]]:
    """The PNG files `lstm-vg plot` saved in each experiment's plots/ folder: {folder: {stem: bytes}}.
    The one read of files here; `page` stays pure."""
    return {e.folder: {file.stem: file.read_bytes() for file in sorted((e.folder / "plots").glob("*.png"))}
            for e in experiments}


def environment_section(runs: list[RunResult]) -> str:
    """meta.json's versions and device: one row per distinct combination, with its run count."""
    counts: dict[tuple, int] = {}
    for run in runs:
        values = tuple("—" if run.meta.get(key) is None else run.meta[key] for key in ENVIRONMENT)
        counts[values] = counts.get(values, 0) + 1
    rows = [[*values, count] for values, count in counts.items()]
    return '<h2 id="environment">Environment</h2>' + table([*ENVIRONMENT, "runs"], rows)


def page(experiments: list[ExperimentResults], verdicts: list | None = None, title: str = "lstm-vg report",
         description: str | None = None, saved: dict[Path, dict[str, bytes]] | None = None) -> str:
    """The whole page; `verdicts`: the checked claims (`claims.Verdict`s), None for none; `saved`:
    per experiment folder, the PNGs of its plots/ folder ({file stem: bytes}, `saved_figures`)."""
    contents = [("results", "results"), *([("claims", "claims")] if verdicts is not None else []),
                *((f"experiment-{e.name}", e.name) for e in experiments), ("environment", "environment")]
    body = [f"<h1>{text(title)}</h1>",
            f"<p>{text(description)}</p>" if description else "",
            "<nav>" + " · ".join(f'<a href="#{text(anchor)}">{text(label)}</a>' for anchor, label in contents)
            + "</nav>",
            '<h2 id="results">Results</h2>', results_table(experiments),
            claims_section(verdicts) if verdicts is not None else "",
            *(experiment_section(e, (saved or {}).get(e.folder)) for e in experiments),
            environment_section([r for e in experiments for r in e.runs])]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{text(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(part for part in body if part) + "\n</body></html>\n")

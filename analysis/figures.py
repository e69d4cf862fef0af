"""The paper's Figures 1-9 from a results table (matplotlib, Agg).

Every function takes `records.to_table` output (protocol "standard" unless
said) and returns a matplotlib Figure; `save` writes it as PNG and PDF.
Each architecture is one labelled series (a Line2D or a PathCollection whose
label is the model name), in one colour across all figures. FLOPs and
parameters are drawn on log axes; FLOPs are in whatever unit the table has
(the paper's Table 1 does not define its unit; see mtf_arch/flops.py).
`overlay` tables (our runs) are drawn over the paper's points as crosses
labelled "ours: <model>".
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis import fit  # noqa: E402

VANILLA = "Transformer"
LABELS = {
    "flops": "FLOPs (forward pass, Table 1 units)",
    "params": "Parameters",
    "speed_steps_per_s": "Throughput (steps/s)",
    "neg_log_ppl": "Negative log-perplexity (upstream)",
    "downstream": "Downstream (mean of GLUE, SuperGLUE, SQuAD)",
    "glue": "GLUE",
    "superglue": "SuperGLUE",
    "squad": "SQuAD",
}
# Figures 6-9: quality-cost trade-offs (Tay et al. 2022, appendix).
TRADEOFF = {6: "neg_log_ppl", 7: "superglue", 8: "glue", 9: "squad"}


def _standard(table):
  return fit.with_downstream(table[table["protocol"] == "standard"])


def colors(models):
  """One colour per model, stable across figures."""
  cmap = plt.get_cmap("tab20")
  return {m: cmap(i % 20) for i, m in enumerate(models)}


def _models(table):
  return list(dict.fromkeys(table["model"]))


def _series(ax, table, model, x_col, y_col, color, **kw):
  rows = table[table["model"] == model][[x_col,
                                         y_col]].dropna().sort_values(x_col)
  return ax.plot(
      rows[x_col], rows[y_col], marker="o", color=color, label=model, **kw)


def _overlay(ax, overlay, x_col, y_col, color_of):
  if overlay is None:
    return
  overlay = _standard(overlay)
  for model in _models(overlay):
    rows = overlay[overlay["model"] == model][[x_col, y_col]].dropna()
    if len(rows):
      ax.scatter(
          rows[x_col],
          rows[y_col],
          marker="x",
          s=60,
          color=color_of.get(model, "black"),
          label="ours: %s" % model)


def _log_x(ax, table, x_col, y_col):
  """Log x axis where there are points to draw, else a 'no data' note."""
  if ((table[x_col] > 0) & table[y_col].notna()).any():
    ax.set_xscale("log")
  else:
    ax.text(
        0.5,
        0.5,
        "no %s vs %s data" % (y_col, x_col),
        transform=ax.transAxes,
        ha="center")


def pareto(x, y):
  """Indices of the Pareto frontier (no point with less x has more y)."""
  order = np.argsort(x, kind="stable")
  best, out = -np.inf, []
  for i in order:
    if y[i] > best:
      out.append(i)
      best = y[i]
  return out


def figure1(table, overlay=None):
  """Compute vs quality for all models: upstream and downstream panels.

  Marker area grows with the parameter count (area proportional to its
  square root, so Switch XL's 29.6B does not hide the rest); the Pareto
  frontier is a black step line.
  """
  table = _standard(table)
  color_of = colors(_models(table))
  fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
  pmax = table["params"].max()
  for ax, metric in zip(axes, ("neg_log_ppl", "downstream")):
    for model in color_of:
      rows = table[table["model"] == model][["flops", metric]].join(
          table["params"]).dropna(subset=["flops", metric])
      ax.scatter(
          rows["flops"],
          rows[metric],
          s=15 + 600 * np.sqrt(rows["params"] / pmax) if pmax > 0 else 40,
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
    _overlay(ax, overlay, "flops", metric, color_of)
    _log_x(ax, table, "flops", metric)
    ax.set_xlabel(LABELS["flops"])
    ax.set_ylabel(LABELS[metric])
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7, loc="lower right", markerscale=0.5)
  fig.suptitle("Figure 1: compute vs performance (marker area ~ parameters)")
  fig.tight_layout()
  return fig


def figure_vs_vanilla(table, metric, title):
  """One panel per model: its scaling curve against the vanilla Transformer.

  Figure 2 (metric "neg_log_ppl") and Figure 3 ("downstream").
  """
  table = _standard(table)
  color_of = colors(_models(table))
  others = [m for m in color_of if m != VANILLA]
  ncols = 4
  nrows = max(1, -(-len(others) // ncols))
  fig, axes = plt.subplots(
      nrows, ncols, figsize=(4 * ncols, 3.3 * nrows), squeeze=False)
  for ax, model in zip(axes.flat, others):
    if VANILLA in color_of:
      _series(ax, table, VANILLA, "flops", metric, "0.5", linestyle="--")
    _series(ax, table, model, "flops", metric, color_of[model])
    _log_x(ax, table[table["model"] == model], "flops", metric)
    ax.set_title(model, fontsize=9)
    ax.set_xlabel(LABELS["flops"], fontsize=7)
    ax.set_ylabel(LABELS[metric], fontsize=7)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(others):]:
    ax.set_visible(False)
  fig.suptitle(title)
  fig.tight_layout()
  return fig


def figure_tradeoff(table, metric, number, overlay=None):
  """Figures 6-9: quality vs FLOPs, parameters and throughput."""
  table = _standard(table)
  color_of = colors(_models(table))
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
  for ax, x_col in zip(axes, ("flops", "params", "speed_steps_per_s")):
    for model in color_of:
      _series(
          ax,
          table,
          model,
          x_col,
          metric,
          color_of[model],
          linestyle="--" if model == VANILLA else "-")
    _overlay(ax, overlay, x_col, metric, color_of)
    _log_x(ax, table, x_col, metric)
    ax.set_xlabel(LABELS[x_col])
    ax.set_ylabel(LABELS[metric])
    ax.grid(alpha=0.3)
  axes[2].legend(fontsize=6)
  fig.suptitle("Figure %d: quality-cost trade-off, %s" %
               (number, LABELS[metric]))
  fig.tight_layout()
  return fig


def figure_protocol(table, protocol, number):
  """Figures 4 (protocol "depth") and 5 ("width"), or None without runs."""
  table = fit.with_downstream(table[table["protocol"] == protocol])
  if table.empty:
    return None
  color_of = colors(_models(table))
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for ax, metric in zip(axes, ("neg_log_ppl", "downstream")):
    for model in color_of:
      _series(ax, table, model, "flops", metric, color_of[model])
    _log_x(ax, table, "flops", metric)
    ax.set_xlabel(LABELS["flops"])
    ax.set_ylabel(LABELS[metric])
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.suptitle("Figure %d: scaling %s" %
               (number, "depth" if protocol == "depth" else "width of FFN"))
  fig.tight_layout()
  return fig


def save(fig, out_dir, name):
  """Writes `name`.png and `name`.pdf; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name + ext) for ext in (".png", ".pdf")]
  for path in paths:
    fig.savefig(path, dpi=110)
  plt.close(fig)
  return paths

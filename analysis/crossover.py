"""Beyond the paper: where one architecture overtakes another.

Each model's quality-vs-compute curve is the piecewise-linear interpolation
of its sizes in (log10 FLOPs, metric), defined only between its smallest and
largest FLOPs (no extrapolation). Two models cross where the difference of
their curves changes sign inside the range both cover; the crossing FLOPs is
found by linear interpolation of the difference between grid points. The
best architecture of a compute region is the one with the highest curve
among the models whose range covers it.
"""

import numpy as np
import pandas as pd

from analysis import fit


def curves(table, metric, x_col="flops"):
  """{model: (log10 x sorted, y)} for models with >= 2 usable points."""
  table = fit.with_downstream(table)
  out = {}
  rows = table[table["protocol"] == "standard"]
  for model in dict.fromkeys(rows["model"]):
    sub = rows[rows["model"] == model][[x_col, metric]].dropna()
    sub = sub[sub[x_col] > 0].sort_values(x_col)
    if len(sub) >= 2:
      out[model] = (np.log10(sub[x_col].values), sub[metric].values)
  return out


def _grid(lo, hi, n):
  return np.linspace(lo, hi, n)


def crossovers(table, metric, x_col="flops", n=400):
  """Pairwise crossings of quality-vs-compute curves.

  Args:
    table: records.to_table output.
    metric: a column (e.g. "neg_log_ppl", "downstream").
    x_col: the compute column.
    n: grid points over each pair's shared range.

  Returns:
    DataFrame: model_a, model_b, x (compute at the crossing), leader_below,
    leader_above; pairs that never cross within their shared range are
    listed with x NaN and the leader in both columns; pairs whose ranges do
    not overlap are left out.
  """
  c = curves(table, metric, x_col)
  rows = []
  models = list(c)
  for i, a in enumerate(models):
    for b in models[i + 1:]:
      lo = max(c[a][0][0], c[b][0][0])
      hi = min(c[a][0][-1], c[b][0][-1])
      if hi <= lo:
        continue
      g = _grid(lo, hi, n)
      diff = np.interp(g, *c[a]) - np.interp(g, *c[b])
      sign = np.sign(diff)
      found = False
      for k in range(1, len(g)):
        if sign[k - 1] != 0 and sign[k] != 0 and sign[k] != sign[k - 1]:
          t = diff[k - 1] / (diff[k - 1] - diff[k])
          x = g[k - 1] + t * (g[k] - g[k - 1])
          rows.append((a, b, 10**x, a if diff[k - 1] > 0 else b,
                       a if diff[k] > 0 else b))
          found = True
      if not found:
        leader = a if diff.mean() > 0 else b
        rows.append((a, b, np.nan, leader, leader))
  return pd.DataFrame(
      rows,
      columns=["model_a", "model_b", x_col, "leader_below", "leader_above"])


def best_by_region(table, metric, x_col="flops", n=400):
  """The best model at each compute, merged into regions.

  Returns:
    DataFrame: x_lo, x_hi (compute bounds of the region), best, value_lo,
    value_hi (the best curve's metric at the bounds).
  """
  c = curves(table, metric, x_col)
  if not c:
    return pd.DataFrame(
        columns=["x_lo", "x_hi", "best", "value_lo", "value_hi"])
  lo = min(v[0][0] for v in c.values())
  hi = max(v[0][-1] for v in c.values())
  g = _grid(lo, hi, n)
  best, value = [], []
  for x in g:
    live = {
        m: np.interp(x, *v) for m, v in c.items() if v[0][0] <= x <= v[0][-1]
    }
    m = max(live, key=live.get)
    best.append(m)
    value.append(live[m])
  rows, start = [], 0
  for k in range(1, len(g) + 1):
    if k == len(g) or best[k] != best[start]:
      rows.append(
          (10**g[start], 10**g[k - 1], best[start], value[start], value[k - 1]))
      start = k
  return pd.DataFrame(
      rows, columns=["x_lo", "x_hi", "best", "value_lo", "value_hi"])

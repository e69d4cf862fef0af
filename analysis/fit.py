"""Table 2: the fitted scaling slopes of each model (Tay et al. 2022, 3.6).

The paper "derive[s] alpha by plotting F (FLOPs), U (upstream perplexity),
D (downstream accuracy), P (number of parameters)" and reports "the slope of
the fitted linear line"; its Table 2 is not in our copy and the text does
not name the axes' scales, so we fix them as follows (each a least-squares
line through one model's sizes, protocol "standard"):

  alpha_F,U: U = negative log-perplexity (higher is better) vs log10(FLOPs)
  alpha_F,D: D vs log10(FLOPs)
  alpha_P,U: U vs log10(parameters)
  alpha_P,D: D vs log10(parameters)
  alpha_U,D: D vs U (both linear)

with D = the mean of the GLUE, SuperGLUE and SQuAD scores (0-100; the text
says "downstream accuracy" without naming one score). For a table of offline
proxy runs only, D is the mean of glue_proxy, superglue_proxy and squad_proxy
and is named "Dproxy" in every column (alpha_F,Dproxy, ...): it is not GLUE. Logarithms for FLOPs
and parameters because the sizes grow geometrically (the paper's figures use
log axes); the slope's sign then says whether quality improves with scale,
and alpha_F,U is in nats of log-perplexity per decade of FLOPs. Every slope
comes with a percentile bootstrap confidence interval (resampling the
model's points with replacement; resamples with fewer than two distinct x
values are dropped) and the number of points. With 3-5 points per model the
intervals are wide and the bootstrap has few distinct resamples: read them
as a rough spread, not as calibrated coverage.
"""

import numpy as np
import pandas as pd

SLOPES = (("F", "U"), ("F", "D"), ("P", "U"), ("P", "D"), ("U", "D"))
AXES = {
    "F": ("flops", True),
    "P": ("params", True),
    "U": ("neg_log_ppl", False),
    "D": ("downstream", False),
}
DOWNSTREAM = ("glue", "superglue", "squad")
PROXY = tuple(m + "_proxy" for m in DOWNSTREAM)


def downstream_columns(table):
  """GLUE/SuperGLUE/SQuAD, or the offline proxies when a table has only those
  (any of them; a missing one makes the mean NaN, not a smaller mean).

  Returns:
    (columns, is_proxy).
  """

  def has(c):
    return c in table and table[c].notna().any()

  if not any(has(c) for c in DOWNSTREAM) and any(has(c) for c in PROXY):
    return PROXY, True
  return DOWNSTREAM, False


def with_downstream(table):
  """Adds `downstream`: the mean of GLUE, SuperGLUE and SQuAD (NaN if any
  is missing) -- or of their proxies, for a table of offline proxy runs."""
  table = table.copy()
  columns, _ = downstream_columns(table)
  for c in columns:
    if c not in table:
      table[c] = float("nan")
  table["downstream"] = table[list(columns)].mean(axis=1, skipna=False)
  return table


def slope_names(proxy):
  """["F,U", "F,D", ...], with "Dproxy" for D when the scores are proxies."""
  d_name = "Dproxy" if proxy else "D"
  return [
      "%s,%s" % tuple(d_name if k == "D" else k
                      for k in pair)
      for pair in SLOPES
  ]


def slope(x, y):
  """Least-squares slope of y on x."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  return float(np.polyfit(x, y, 1)[0])


def bootstrap_ci(x, y, n_boot=2000, level=0.95, seed=0):
  """Percentile bootstrap interval of the slope.

  Args:
    x, y: the points.
    n_boot: resamples.
    level: coverage of the interval.
    seed: random seed (fixed, so tables are reproducible).

  Returns:
    (low, high); NaNs with fewer than three points.
  """
  x, y = np.asarray(x, float), np.asarray(y, float)
  if len(x) < 3:
    return float("nan"), float("nan")
  rng = np.random.RandomState(seed)
  idx = rng.randint(0, len(x), size=(n_boot, len(x)))
  xs, ys = x[idx], y[idx]
  xm, ym = xs.mean(1, keepdims=True), ys.mean(1, keepdims=True)
  sxx = ((xs - xm)**2).sum(1)
  ok = sxx > 1e-12 * max(1.0, float(np.var(x)) * len(x))
  slopes = ((xs - xm) * (ys - ym)).sum(1)[ok] / sxx[ok]
  tail = (1 - level) / 2 * 100
  return (float(np.percentile(slopes,
                              tail)), float(np.percentile(slopes, 100 - tail)))


def points(table, model, x_key, y_key):
  """(x, y) arrays of one model's complete points on two axes."""
  x_col, x_log = AXES[x_key]
  y_col, y_log = AXES[y_key]
  rows = table[(table["model"] == model) & (table["protocol"] == "standard")]
  rows = rows[[x_col, y_col]].dropna()
  rows = rows[(rows[x_col] > 0) if x_log else rows[x_col].notna()]
  x = np.log10(rows[x_col].values) if x_log else rows[x_col].values
  y = np.log10(rows[y_col].values) if y_log else rows[y_col].values
  return x, y


def slopes_table(table, n_boot=2000, level=0.95):
  """Table 2: one row per model.

  Args:
    table: records.to_table output.
    n_boot, level: bootstrap settings.

  Returns:
    (DataFrame with one row per model that has protocol "standard" rows,
    columns model and, per slope "F,U" etc. (slope_names),
    alpha_F,U, lo_F,U, hi_F,U, n_F,U; a list of "model: why" lines for
    slopes that could not be fitted).
  """
  _, proxy = downstream_columns(table)
  table = with_downstream(table)
  rows, missing = [], []
  models = list(dict.fromkeys(table[table["protocol"] == "standard"]["model"]))
  for model in models:
    row = {"model": model}
    for (x_key, y_key), name in zip(SLOPES, slope_names(proxy)):
      x, y = points(table, model, x_key, y_key)
      row["n_" + name] = len(x)
      if len(x) < 2 or np.ptp(x) == 0:
        row["alpha_" + name] = row["lo_" + name] = row["hi_" + name] = np.nan
        missing.append("%s: alpha_%s not fitted (%d usable point%s)" %
                       (model, name, len(x), "" if len(x) == 1 else "s"))
        continue
      row["alpha_" + name] = slope(x, y)
      row["lo_" + name], row["hi_" + name] = bootstrap_ci(
          x, y, n_boot=n_boot, level=level)
    rows.append(row)
  return pd.DataFrame(rows), missing


def slopes_markdown(frame):
  """Table 2 as Markdown: alpha [lo, hi] (n) per cell."""
  names = [c[len("alpha_"):] for c in frame.columns if c.startswith("alpha_")]
  lines = [
      "| model | " + " | ".join("alpha_" + n for n in names) + " |",
      "|---" * (len(names) + 1) + "|"
  ]
  for _, row in frame.iterrows():
    cells = []
    for n in names:
      if np.isnan(row["alpha_" + n]):
        cells.append("- (n=%d)" % row["n_" + n])
      elif np.isnan(row["lo_" + n]):
        cells.append("%.3f (n=%d)" % (row["alpha_" + n], row["n_" + n]))
      else:
        cells.append(
            "%.3f [%.3f, %.3f] (n=%d)" %
            (row["alpha_" + n], row["lo_" + n], row["hi_" + n], row["n_" + n]))
    lines.append("| %s | %s |" % (row["model"], " | ".join(cells)))
  return "\n".join(lines) + "\n"

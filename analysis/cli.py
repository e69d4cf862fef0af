"""python -m analysis: Table 2, Figures 1-9 and crossovers from results.

  python -m analysis [--results PATH] [--overlay PATH] [--out DIR]

PATH is a CSV in Table 1's columns, a JSON-lines records file (see
analysis/records.py), a launch results.json, or a folder of them; the
default is the paper's own Table 1 (analysis/data/table1.csv). Writes into
DIR (default analysis_out/):

  table.csv                 the table read (one row per model, size, protocol)
  table2.csv, table2.md     fitted slopes with bootstrap CIs and point counts
  crossovers_<metric>.csv   where each pair of architectures crosses
  best_<metric>.csv         the best architecture per compute region
                            (metric downstream_proxy for offline proxies)
  figures/figure<N>.png/.pdf  Figures 1, 2, 3, 6-9 (4 and 5 with depth/width
                            records); a figure without data is not written
  report.md                 what the units are, Table 2, every missing
                            point, the figures written and those left out

A study folder (runs/<study>/) is read as its results.jsonl only. Axis
labels say whose FLOPs unit and which throughput a figure shows (see
analysis/labels.py) and name the offline proxies as proxies.
"""

import argparse
import os
import sys

from analysis import crossover
from analysis import figures
from analysis import fit
from analysis import labels as labels_lib
from analysis import records

CROSSOVER_METRICS = ("neg_log_ppl", "downstream")


def missing_points(table):
  """Lines naming (model, size) cells without a value, per metric.

  Metrics no row has (e.g. GLUE in a proxy-only study) are named once, in
  the first line, instead of in every row.
  """
  present = [m for m in records.METRICS if table[m].notna().any()]
  absent = [m for m in records.METRICS if m not in present]
  out = ["no record has %s" % ", ".join(absent)] if absent else []
  for _, row in table.iterrows():
    gaps = [m for m in present if row[m] != row[m]]  # NaN
    if gaps:
      out.append("%s %s (%s): no %s" %
                 (row["model"], row["size"], row["protocol"], ", ".join(gaps)))
  return out


def _markdown(frame):
  """A DataFrame as a GitHub Markdown table (tabulate, 4 digits)."""
  if frame.empty:
    return "(none)\n"
  return frame.to_markdown(index=False, floatfmt=".4g") + "\n"


def load(path):
  """(table, Labels) of a results path."""
  loaded = records.load(path)
  table = records.to_table(loaded)
  origin = labels_lib.origin_of(path, loaded)
  return table, labels_lib.describe(table, origin, labels_lib.study_spec(path))


def draw(table, labels, overlay=None):
  """Every figure: [(name, figures.Drawn)] in the paper's order."""
  out = [("figure1", figures.figure1(table, overlay, labels))]
  out.append(("figure2",
              figures.figure_vs_vanilla(
                  table, "neg_log_ppl",
                  "Figure 2: upstream negative log-perplexity vs the "
                  "Transformer", labels)))
  out.append(
      ("figure3",
       figures.figure_vs_vanilla(
           table, "downstream",
           "Figure 3: %s vs the Transformer" % labels.short("downstream"),
           labels)))
  for number, protocol in ((4, "depth"), (5, "width")):
    out.append(("figure%d" % number,
                figures.figure_protocol(table, protocol, number, labels)))
  for number, metric in figures.TRADEOFF.items():
    out.append(("figure%d" % number,
                figures.figure_tradeoff(table, metric, number, overlay,
                                        labels)))
  return out


def _remove(folder, names):
  """Deletes files an earlier run may have left (a figure now without data,
  a crossover file of the other downstream kind)."""
  for name in names:
    if os.path.exists(os.path.join(folder, name)):
      os.remove(os.path.join(folder, name))


def write_figures(table, labels, overlay, out_dir):
  """Writes the figures with data; returns (paths, skipped, report lines)."""
  fig_dir = os.path.join(out_dir, "figures")
  made, skipped, partial = [], [], []
  for name, drawn in draw(table, labels, overlay):
    (partial if drawn.figure is not None else skipped).extend(drawn.notes)
    made += figures.save(drawn, fig_dir, name)
    if drawn.figure is None:
      _remove(fig_dir, [name + ".png", name + ".pdf"])
  lines = ["", "## Figures", ""]
  lines += ["- " + os.path.relpath(p, out_dir) for p in made] or ["- none"]
  lines += ["", "Not written (no data):", ""]
  lines += ["- " + n for n in skipped] or ["- none"]
  if partial:
    lines += ["", "Panels left out (no data):", ""
             ] + ["- " + n for n in partial]
  return made, skipped, lines


def write_crossovers(table, labels, out_dir):
  """crossovers_<metric>.csv and best_<metric>.csv; returns report lines.

  The downstream files are named downstream_proxy for the offline proxies.
  """
  downstream = "downstream_proxy" if labels.proxy else "downstream"
  other = "downstream" if labels.proxy else "downstream_proxy"
  _remove(out_dir, ["crossovers_%s.csv" % other, "best_%s.csv" % other])
  lines = []
  for metric in CROSSOVER_METRICS:
    name = downstream if metric == "downstream" else metric
    cross = crossover.crossovers(table, metric)
    cross.to_csv(os.path.join(out_dir, "crossovers_%s.csv" % name), index=False)
    best = crossover.best_by_region(table, metric)
    best.to_csv(os.path.join(out_dir, "best_%s.csv" % name), index=False)
    crossed = cross.dropna()
    lines += [
        "",
        "## %s: best architecture per FLOPs region" % labels.short(metric), "",
        "x_lo, x_hi: %s." % labels.flops, "",
        _markdown(best),
        "%d of %d overlapping pairs cross; first ten:" %
        (len(crossed), len(cross)), "",
        _markdown(crossed.head(10))
    ]
  return lines


def run(results, out_dir, overlay=None, n_boot=2000, log=print):
  """Reads results and writes every table and figure; returns report lines."""
  table, labels = load(results)
  if table.empty:
    raise records.RecordError("%s: no records" % results)
  ours = None
  if overlay:
    overlay_table, overlay_labels = load(overlay)
    ours = (overlay_labels, overlay_table)
  os.makedirs(out_dir, exist_ok=True)
  table.to_csv(os.path.join(out_dir, "table.csv"), index=False)
  report = ["# Analysis of %s" % results, "", "## What the numbers are", ""]
  report += ["- " + n for n in labels.notes] + [""]

  slopes, not_fitted = fit.slopes_table(table, n_boot=n_boot)
  slopes.to_csv(os.path.join(out_dir, "table2.csv"), index=False)
  caption = ("D = %s." % labels.short("downstream") + " " +
             "F in %s; see analysis/fit.py for the axes.\n\n" % labels.flops)
  with open(os.path.join(out_dir, "table2.md"), "w") as f:
    f.write(caption + fit.slopes_markdown(slopes))
  report += ["## Table 2 (slopes)", "", caption + fit.slopes_markdown(slopes)]

  gaps = missing_points(table)
  per_model = table[table["protocol"] == "standard"].groupby(
      "model", sort=False)["size"].apply(list)
  single = [
      "%s: only %s" % (m, ", ".join(s))
      for m, s in per_model.items()
      if len(s) < 2
  ]
  report += ["## Missing points", ""]
  report += ["- " + line for line in single + not_fitted + gaps] or ["- none"]

  made, skipped, lines = write_figures(table, labels, ours, out_dir)
  report += lines + write_crossovers(table, labels, out_dir)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write("\n".join(report) + "\n")
  for line in single + not_fitted:
    log("[analysis] missing: %s" % line)
  for line in skipped:
    log("[analysis] %s" % line)
  log("[analysis] %d rows from %s; wrote %s (report.md, table2.md, %d figure "
      "files)" % (len(table), results, out_dir, len(made)))
  return report


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m analysis",
      description="Table 2, Figures 1-9 and crossover analysis from results "
      "records (Tay et al. 2022).",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split("\n\n", 1)[1])
  parser.add_argument(
      "--results",
      default=records.PAPER_TABLE1,
      help="CSV (Table 1 columns), .jsonl records, results.json or a folder "
      "(default: the paper's Table 1)")
  parser.add_argument(
      "--overlay", help="our runs (same formats), drawn over Figures 1, 6-9")
  parser.add_argument("--out", default="analysis_out", help="output folder")
  parser.add_argument(
      "--n_boot", type=int, default=2000, help="bootstrap resamples")
  args = parser.parse_args(argv)
  try:
    run(args.results, args.out, args.overlay, args.n_boot)
  except records.RecordError as e:
    sys.exit("analysis: error: %s" % e)


if __name__ == "__main__":
  main()

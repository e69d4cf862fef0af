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
  figures/figure<N>.png/.pdf  Figures 1, 2, 3, 6-9 (4 and 5 with depth/width
                            records)
  report.md                 summary, including every missing point
"""

import argparse
import os
import sys

from analysis import crossover
from analysis import figures
from analysis import fit
from analysis import records

CROSSOVER_METRICS = ("neg_log_ppl", "downstream")


def missing_points(table):
  """Lines naming (model, size) cells without a value, per metric."""
  out = []
  for _, row in table.iterrows():
    gaps = [m for m in records.METRICS if row[m] != row[m]]  # NaN
    if gaps:
      out.append("%s %s (%s): no %s" %
                 (row["model"], row["size"], row["protocol"], ", ".join(gaps)))
  return out


def _markdown(frame, floatfmt="%.4g"):
  cols = list(frame.columns)
  lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
  for _, row in frame.iterrows():
    cells = [
        floatfmt % v if isinstance(v, float) else str(v) for v in row.values
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def run(results, out_dir, overlay=None, n_boot=2000, log=print):
  """Reads results and writes every table and figure; returns report lines."""
  table = records.to_table(records.load(results))
  if table.empty:
    raise records.RecordError("%s: no records" % results)
  ours = records.to_table(records.load(overlay)) if overlay else None
  os.makedirs(out_dir, exist_ok=True)
  table.to_csv(os.path.join(out_dir, "table.csv"), index=False)
  report = ["# Analysis of %s" % results, ""]

  slopes, not_fitted = fit.slopes_table(table, n_boot=n_boot)
  slopes.to_csv(os.path.join(out_dir, "table2.csv"), index=False)
  with open(os.path.join(out_dir, "table2.md"), "w") as f:
    f.write(fit.slopes_markdown(slopes))
  report += [
      "## Table 2 (slopes; see analysis/fit.py for the axes)", "",
      fit.slopes_markdown(slopes)
  ]

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
  report.append("")

  fig_dir = os.path.join(out_dir, "figures")
  made = []
  made += figures.save(figures.figure1(table, ours), fig_dir, "figure1")
  made += figures.save(
      figures.figure_vs_vanilla(
          table, "neg_log_ppl",
          "Figure 2: upstream negative log-perplexity vs the Transformer"),
      fig_dir, "figure2")
  made += figures.save(
      figures.figure_vs_vanilla(
          table, "downstream",
          "Figure 3: downstream accuracy vs the Transformer"), fig_dir,
      "figure3")
  for number, protocol in ((4, "depth"), (5, "width")):
    fig = figures.figure_protocol(table, protocol, number)
    if fig is None:
      report.append("- Figure %d: missing (no records with protocol %r)" %
                    (number, protocol))
    else:
      made += figures.save(fig, fig_dir, "figure%d" % number)
  for number, metric in figures.TRADEOFF.items():
    made += figures.save(
        figures.figure_tradeoff(table, metric, number, ours), fig_dir,
        "figure%d" % number)
  report += ["", "## Figures", ""
            ] + ["- " + os.path.relpath(p, out_dir) for p in made]

  for metric in CROSSOVER_METRICS:
    cross = crossover.crossovers(table, metric)
    cross.to_csv(
        os.path.join(out_dir, "crossovers_%s.csv" % metric), index=False)
    best = crossover.best_by_region(table, metric)
    best.to_csv(os.path.join(out_dir, "best_%s.csv" % metric), index=False)
    crossed = cross.dropna()
    report += [
        "",
        "## %s: best architecture per FLOPs region" % metric, "",
        _markdown(best),
        "%d of %d overlapping pairs cross; first ten:" %
        (len(crossed), len(cross)), "",
        _markdown(crossed.head(10))
    ]
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write("\n".join(report) + "\n")
  for line in single + not_fitted:
    log("[analysis] missing: %s" % line)
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

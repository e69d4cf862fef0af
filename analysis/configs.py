"""Table 1's params and FLOPs (and optionally speed) for every config we define.

  python -m analysis.configs [--out DIR] [--arch NAME ...] [--size Tiny ...]
                             [--speed] [--speed_batch 8]

Enumerates gin/arch/*.gin through mtf_arch.registry (each file names its
Table 1 model and sizes), builds each (architecture, size) experiment
(arch + size + run/pretrain.gin, on a one-slice CPU mesh) as a graph only,
and writes DIR/configs.csv and DIR/configs.md beside the paper's Table 1
values. A config that fails to build gets its error in the `error` column;
the other rows are still written.

Columns: params (trainable, T5's 32,100-piece vocabulary padded to 32,128),
gflops (our unit: matmul GFLOPs of one forward pass of one sequence, 512
input and 114 target tokens, 2 FLOPs per multiply-add, one-hot lookups
excluded; see mtf_arch/flops.py), lowered_gflops (the same plus Mesh-TF's
one-hot embedding and relative-bias lookups, which it lowers to matmuls),
paper_flops (Table 1, unit undefined), and their ratios. With --speed:
training steps/s on this machine's CPU at batch --speed_batch and the
paper's lengths, mesh "batch:1,model:1" (one slice), Adafactor; it
allocates the variables, so it is slow and large sizes may not fit.
"""

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from analysis import records
from mtf_arch import registry

RUN_FILE = "run/pretrain.gin"
COLUMNS = [
    "model", "size", "arch", "params", "paper_params", "params_gap_pct",
    "gflops", "lowered_gflops", "paper_flops", "ratio", "lowered_ratio",
    "speed_steps_per_s", "paper_speed", "build_s", "error"
]


def paper_table():
  """{(model, size): {metric: value}} from the shipped Table 1."""
  out = {}
  for r in records.read_table_csv(records.PAPER_TABLE1):
    out.setdefault((r["model"], r["size"]), {})[r["metric"]] = r["value"]
  return out


def measure(arch, size, speed=False, speed_batch=8):
  """One row: params and FLOPs (and speed) of an (Arch, size)."""
  from mtf_arch import flops  # pylint: disable=g-import-not-at-top
  files = [arch.gin_file, registry.size_file(arch.name, size), RUN_FILE]
  row = {
      "model": arch.paper_model or arch.name,
      "size": size,
      "arch": arch.name
  }
  start = time.time()
  try:
    n, count = flops.forward_count(files)
    row.update(
        params=n,
        gflops=count.matmul_flops / 1e9,
        lowered_gflops=(count.matmul_flops + count.one_hot_flops) / 1e9)
    if speed:
      from mtf_arch import speed as speed_lib  # pylint: disable=g-import-not-at-top
      row["speed_steps_per_s"] = speed_lib.train_steps_per_second(
          files, batch_size=speed_batch)
  except Exception as e:  # pylint: disable=broad-except
    row["error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:300]
  row["build_s"] = time.time() - start
  return row


def add_paper(frame, paper):
  """Paper columns and ratios (ours / paper)."""
  for i, row in frame.iterrows():
    ref = paper.get((row["model"], row["size"]), {})
    frame.loc[i, "paper_params"] = ref.get("params", np.nan)
    frame.loc[i, "paper_flops"] = ref.get("flops", np.nan)
    frame.loc[i, "paper_speed"] = ref.get("speed_steps_per_s", np.nan)
  frame["params_gap_pct"] = 100 * (frame["params"] / frame["paper_params"] - 1)
  frame["ratio"] = frame["gflops"] / frame["paper_flops"]
  frame["lowered_ratio"] = frame["lowered_gflops"] / frame["paper_flops"]
  return frame


def _fmt(value, column):
  if isinstance(value, str):
    return value.replace("|", "/")
  if value is None or value != value:
    return ""
  if column in ("params", "paper_params"):
    return "%.2fB" % (value / 1e9) if value >= 1e9 else "%.2fM" % (value / 1e6)
  if column in ("ratio", "lowered_ratio", "params_gap_pct"):
    return "%+.1f%%" % value if column == "params_gap_pct" else "%.2f" % value
  return "%.3g" % value


def to_markdown(frame, header=""):
  cols = [c for c in COLUMNS if c in frame and frame[c].notna().any()]
  lines = [header, "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
  for _, row in frame.iterrows():
    lines.append("| " + " | ".join(_fmt(row[c], c) for c in cols) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m analysis.configs",
      description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split("\n\n", 1)[1])
  parser.add_argument("--out", default="analysis_out")
  parser.add_argument("--arch", nargs="*", help="gin/arch names (default all)")
  parser.add_argument(
      "--size",
      nargs="*",
      help="sizes (default: each "
      "architecture's paper sizes)")
  parser.add_argument(
      "--speed",
      action="store_true",
      help="also measure training steps/s (slow)")
  parser.add_argument("--speed_batch", type=int, default=8)
  args = parser.parse_args(argv)
  archs = registry.architectures()
  unknown = sorted(set(args.arch or []) - set(archs))
  if unknown:
    sys.exit("analysis: error: unknown architecture(s) %s (known: %s)" %
             (", ".join(unknown), ", ".join(archs)))
  todo = [(a, s) for name, a in archs.items()
          if not args.arch or name in args.arch for s in a.sizes
          if not args.size or s.lower() in [x.lower() for x in args.size]]
  start, rows = time.time(), []
  for i, (arch, size) in enumerate(todo, 1):
    row = measure(arch, size, args.speed, args.speed_batch)
    rows.append(row)
    print(
        "[configs] %2d/%d %-22s %-5s %s (%.1fs)" %
        (i, len(todo), row["model"], size, row.get("error") or
         "params %.4g, %.4g GFLOPs" %
         (row["params"], row["gflops"]), row["build_s"]),
        flush=True)
  wall = time.time() - start
  frame = add_paper(pd.DataFrame(rows, columns=COLUMNS), paper_table())
  os.makedirs(args.out, exist_ok=True)
  frame.to_csv(os.path.join(args.out, "configs.csv"), index=False)
  header = (
      "Params and forward-pass FLOPs of %d configs (%.0f s wall; graph "
      "only unless speed is measured). gflops: matmul GFLOPs per sequence (512/114 tokens, "
      "one-hot lookups excluded); lowered_gflops: with them; ratio = "
      "ours / paper.%s\n" %
      (len(frame), wall, " Speed: CPU steps/s at batch %d, mesh "
       "batch:1,model:1." % args.speed_batch if args.speed else ""))
  with open(os.path.join(args.out, "configs.md"), "w") as f:
    f.write(to_markdown(frame, header))
  failed = frame["error"].notna().sum()
  print("[configs] wrote %s and configs.md: %d rows, %d failed, %.1f s wall" %
        (os.path.join(args.out, "configs.csv"), len(frame), failed, wall))


if __name__ == "__main__":
  main()

"""The fidelity report: every Table 1 row as we build it, against the paper.

  python -m analysis.configs [--out DIR] [--arch NAME ...] [--size Tiny ...]
                             [--no_memory] [--update] [--speed]

Enumerates gin/arch/*.gin through mtf_arch.registry (each file names its
Table 1 model and sizes) and, per (architecture, size):

* builds arch + size + run/pretrain.gin on one CPU slice as a graph only
  and counts parameters and forward FLOPs (mtf_arch/flops.py);
* compares them with Table 1 by the two fidelity measures: the parameter gap
  (ours / paper - 1; band 5%) and the FLOPs gap, our FLOPs relative to the
  same-size vanilla Transformer against Table 1's own ratio (band 10%): the
  ratio cancels the paper's unstated FLOPs unit. Our vanilla FLOPs are the
  closed form `flops.transformer_lowered_flops`, which the counter matches
  exactly (tests/test_flops.py);
* unless --no_memory: builds the row's exact pretraining gin files (its
  v3-32 mesh from `registry.paper_mesh`, the run's batch and lengths, the
  Adafactor update) as a graph only and estimates per-core memory
  (mtf_arch/memory.py): whether the layout splits every dimension evenly
  and whether it fits a v3 core's 16 GiB;
* the v3-32 time the row needs at Table 1's speed column: 2^19 pretraining
  plus 10^5 finetuning steps.

Writes DIR/configs.csv (every column) and DIR/configs.md (a summary of the
bands, the grid's total time, and the table). A row that fails to build gets
its error in the `error` column; the others are still written. --update
keeps the rows of DIR/configs.csv that this run does not measure.

Columns: params (trainable, T5's 32,100-piece vocabulary padded to 32,128);
gflops (matmul GFLOPs of one forward pass of one sequence, 512 input and
114 target tokens, 2 FLOPs per multiply-add, one-hot lookups excluded);
lowered_gflops (the same plus Mesh-TF's one-hot embedding and relative-bias
lookups, which it lowers to matmuls; the FLOPs ratios use these, as Table
1's column follows them: ours are 15.2-15.4x the paper's at Tiny-Large);
repeated_gflops (what the row's model-parallel slices compute more than
once on its v3-32 mesh: an einsum that the layout leaves unsplit over
`model`, counted once per model slice, as Mesh-TF's own FLOPs counter does);
flops_ratio / paper_flops_ratio (to the same-size vanilla Transformer, both
counted with repetitions: Table 1's Large and XL rows fit this count, see
gin/arch/lconv.gin) and flops_gap_pct, the FLOPs band's measure;
whole_flops_ratio / whole_flops_gap_pct (each matmul counted once, the
lowered count); core_gib (variables + Adafactor slots + activations with
elementwise outputs rematerialized) and core_gib_kept (every activation
kept); v3_32_days. With --speed: CPU training steps/s at batch
--speed_batch (allocates the variables: slow, large sizes may not fit).
"""

import argparse
import functools
import os
import sys
import time

import numpy as np
import pandas as pd

from analysis import records
from mtf_arch import registry

RUN_FILE = "run/pretrain.gin"
PRETRAIN_STEPS = 2**19
FINETUNE_STEPS = 10**5
COLUMNS = [
    "model", "size", "arch", "variant_of", "params", "paper_params",
    "params_gap_pct", "lowered_gflops", "repeated_gflops", "flops_ratio",
    "paper_flops_ratio", "flops_gap_pct", "whole_flops_ratio",
    "whole_flops_gap_pct", "gflops", "paper_flops", "mesh", "core_gib",
    "core_gib_kept", "fits", "paper_speed", "v3_32_days", "speed_steps_per_s",
    "build_s", "error"
]
# What configs.md shows (configs.csv has every column).
MD_COLUMNS = [
    "model", "size", "arch", "params", "params_gap_pct", "flops_ratio",
    "paper_flops_ratio", "flops_gap_pct", "whole_flops_gap_pct", "mesh",
    "core_gib", "fits", "v3_32_days", "error"
]


def paper_table():
  """{(model, size): {metric: value}} from the shipped Table 1."""
  out = {}
  for r in records.read_table_csv(records.PAPER_TABLE1):
    out.setdefault((r["model"], r["size"]), {})[r["metric"]] = r["value"]
  return out


def vanilla_lowered_flops(size):
  """Lowered forward FLOPs of gin/arch/transformer.gin at a paper size."""
  from mtf_arch import flops  # pylint: disable=g-import-not-at-top
  from mtf_arch import graph  # pylint: disable=g-import-not-at-top
  files = ["arch/transformer.gin", registry.size_file("transformer", size)]
  with graph.config(files + flops.ONE_SLICE):
    macros = {
        m: graph.query("%" + m)
        for m in ("num_layers", "d_model", "d_ff", "num_heads", "d_kv")
    }
  return flops.transformer_lowered_flops(
      vocab_size=graph.T5_VOCAB_SIZE, **macros)


@functools.lru_cache(maxsize=None)
def vanilla_mesh_flops(size):
  """Lowered + repeated FLOPs of the vanilla row at a size (`flops_ratio`)."""
  return vanilla_lowered_flops(size) + repeated_flops(
      registry.architectures()["transformer"], size)


def repeated_flops(arch, size):
  """FLOPs that a row's model-parallel slices compute more than once.

  `flops.sliced_count` of the row's pretraining files on its v3-32 mesh
  (graph only), per sequence; 0 without being built where the mesh has no
  model-parallel axis (Tiny-Base's `batch:32`), as nothing is repeated there.
  Table 1's FLOPs column fits the lowered count plus these: mesh_tensorflow
  counts an einsum's FLOPs over its laid-out size, one slice times the
  number of cores (`laid_out_size` in the `Einsum` lowering of
  mesh_tensorflow/ops.py), so a matmul that a layout leaves unsplit over
  `model` is counted once per model slice (gin/arch/lconv.gin).

  Args:
    arch: a registry.Arch.
    size: a Table 1 size.

  Returns:
    FLOPs (2 per multiply-add).
  """
  from mtf_arch import flops  # pylint: disable=g-import-not-at-top
  from mtf_arch import graph  # pylint: disable=g-import-not-at-top
  files = pretrain_files(arch, size)
  with graph.config(files):
    mesh_shape, layout_rules = graph.mesh_and_layout()
  data = flops.data_axis(mesh_shape, layout_rules)
  if all(d.size == 1 for i, d in enumerate(mesh_shape.dims) if i != data):
    return 0.0
  return flops.sliced_count(files).repeated_flops


def pretrain_files(arch, size):
  """The gin files of a row's pretraining command in the paper grid."""
  return [
      arch.gin_file,
      registry.size_file(arch.name, size),
      "mesh/%s.gin" % registry.paper_mesh(arch.name, size), RUN_FILE
  ]


def measure(arch, size, speed=False, speed_batch=8, memory=False):
  """One row: params, FLOPs (and per-core memory, speed) of an (Arch, size)."""
  from mtf_arch import flops  # pylint: disable=g-import-not-at-top
  files = [arch.gin_file, registry.size_file(arch.name, size), RUN_FILE]
  row = {
      "model": arch.paper_model or arch.name,
      "size": size,
      "arch": arch.name,
      "variant_of": arch.variant_of,
  }
  start = time.time()
  try:
    n, count = flops.forward_count(files)
    lowered = count.matmul_flops + count.one_hot_flops
    repeated = repeated_flops(arch, size)
    row.update(
        params=n,
        gflops=count.matmul_flops / 1e9,
        lowered_gflops=lowered / 1e9,
        repeated_gflops=repeated / 1e9,
        flops_ratio=(lowered + repeated) / vanilla_mesh_flops(size),
        whole_flops_ratio=lowered / vanilla_lowered_flops(size))
    if memory:
      from mtf_arch import memory as memory_lib  # pylint: disable=g-import-not-at-top
      est = memory_lib.estimate(pretrain_files(arch, size))
      row.update(
          mesh=registry.paper_mesh(arch.name, size),
          core_gib=memory_lib.total_bytes(est) / memory_lib.GIB,
          core_gib_kept=(est.variable_bytes + est.slot_bytes +
                         est.activation_bytes_kept) / memory_lib.GIB)
      fits = memory_lib.total_bytes(est) <= memory_lib.V3_CORE_HBM_BYTES
      row["fits"] = "yes" if fits and not est.split_errors else "no"
      if est.split_errors:
        row["error"] = "layout cannot split " + ", ".join(est.split_errors)
    if speed:
      from mtf_arch import speed as speed_lib  # pylint: disable=g-import-not-at-top
      row["speed_steps_per_s"] = speed_lib.train_steps_per_second(
          files, batch_size=speed_batch)
  except Exception as e:  # pylint: disable=broad-except
    row["error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:300]
  row["build_s"] = time.time() - start
  return row


def add_paper(frame, paper):
  """Paper columns, the two fidelity gaps and the v3-32 time."""
  for i, row in frame.iterrows():
    ref = paper.get((row["model"], row["size"]), {})
    vanilla = paper.get(("Transformer", row["size"]), {})
    frame.loc[i, "paper_params"] = ref.get("params", np.nan)
    frame.loc[i, "paper_flops"] = ref.get("flops", np.nan)
    frame.loc[i, "paper_flops_ratio"] = (
        ref.get("flops", np.nan) / vanilla.get("flops", np.nan))
    frame.loc[i, "paper_speed"] = ref.get("speed_steps_per_s", np.nan)
  frame["params_gap_pct"] = 100 * (frame["params"] / frame["paper_params"] - 1)
  for kind in ("", "whole_"):
    frame[kind + "flops_gap_pct"] = 100 * (
        frame[kind + "flops_ratio"].astype(float) / frame["paper_flops_ratio"] -
        1)
  frame["v3_32_days"] = ((PRETRAIN_STEPS + FINETUNE_STEPS) /
                         frame["paper_speed"] / 86400)
  return frame


def summary(frame):
  """Lines on the bands and the grid's cost, over the default arch files."""
  rows = frame[frame["variant_of"].isna()]
  n = len(rows)
  p_ok = (rows["params_gap_pct"].abs() < registry.PARAM_BAND_PCT).sum()
  f_ok = (rows["flops_gap_pct"].abs() < registry.FLOPS_BAND_PCT).sum()
  w_ok = (rows["whole_flops_gap_pct"].abs() < registry.FLOPS_BAND_PCT).sum()
  lines = [
      "Table 1 rows (default gin/arch files): %d." % n,
      "Parameters within %g%% of Table 1: %d of %d." %
      (registry.PARAM_BAND_PCT, p_ok, n),
      "FLOPs / same-size vanilla within %g%% of Table 1's ratio: %d of %d, "
      "counting what the row's model-parallel slices repeat (flops_ratio); "
      "%d of %d counting each matmul once (whole_flops_ratio)." %
      (registry.FLOPS_BAND_PCT, f_ok, n, w_ok, n),
  ]
  if frame["fits"].notna().any():
    lines.append(
        "Rows that start and fit a 16 GiB v3 core: %d of %d; "
        "largest per-core estimate %.1f GiB." %
        ((frame["fits"] == "yes").sum(), len(frame), frame["core_gib"].max()))
  in_grid = frame[frame["arch"].isin(list(registry.study_architectures()))]
  lines.append(
      "The paper grid (%d rows, variants with in-studies included) needs "
      "%.0f v3-32 days at Table 1's speed (2^19 pretraining + 10^5 "
      "finetuning steps per row; rows without a Table 1 speed not counted)." %
      (len(in_grid), in_grid["v3_32_days"].sum()))
  return lines


def _fmt(value, column):
  if isinstance(value, str):
    return value.replace("|", "/")
  if value is None or value != value:
    return ""
  if column in ("params", "paper_params"):
    return "%.2fB" % (value / 1e9) if value >= 1e9 else "%.2fM" % (value / 1e6)
  if column.endswith("_pct"):
    return "%+.1f%%" % value
  if column in ("flops_ratio", "whole_flops_ratio", "paper_flops_ratio",
                "core_gib", "v3_32_days"):
    return "%.2f" % value
  return "%.3g" % value


def to_markdown(frame, header=""):
  """configs.md: the header, then a table of the MD_COLUMNS that have data."""
  import tabulate  # pylint: disable=g-import-not-at-top
  cols = [c for c in MD_COLUMNS if c in frame and frame[c].notna().any()]
  body = [[_fmt(row[c], c) for c in cols] for _, row in frame.iterrows()]
  return header + "\n" + tabulate.tabulate(
      body, headers=cols, tablefmt="github", disable_numparse=True) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m analysis.configs",
      description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split("\n\n", 1)[1])
  parser.add_argument(
      "--out", default="analysis_out", help="folder for configs.csv/.md")
  parser.add_argument("--arch", nargs="*", help="gin/arch names (default all)")
  parser.add_argument(
      "--size",
      nargs="*",
      help="sizes (default: each architecture's paper sizes)")
  parser.add_argument(
      "--no_memory",
      action="store_true",
      help="skip the per-core memory estimate under the v3-32 mesh")
  parser.add_argument(
      "--update",
      action="store_true",
      help="keep the rows of --out's configs.csv that are not measured now")
  parser.add_argument(
      "--speed",
      action="store_true",
      help="also measure CPU training steps/s (slow)")
  parser.add_argument(
      "--speed_batch",
      type=int,
      default=8,
      help="batch size for --speed (default 8)")
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
    row = measure(arch, size, args.speed, args.speed_batch, not args.no_memory)
    rows.append(row)
    print(
        "[configs] %2d/%d %-22s %-5s %s (%.1fs)" %
        (i, len(todo), arch.name, size, row.get("error") or
         "params %.4g, FLOPs ratio %.3g%s" %
         (row["params"], row["flops_ratio"], ", %.1f GiB/core" %
          row["core_gib"] if "core_gib" in row else ""), row["build_s"]),
        flush=True)
  wall = time.time() - start
  frame = pd.DataFrame(rows, columns=COLUMNS)
  csv_path = os.path.join(args.out, "configs.csv")
  if args.update and os.path.exists(csv_path):
    old = pd.read_csv(csv_path)
    old = old[old["arch"].isin(list(archs))]  # drop rows of removed arch files
    done = set(zip(frame["arch"], frame["size"]))
    keep = old[[k not in done for k in zip(old["arch"], old["size"])]]
    frame = pd.concat([keep.reindex(columns=COLUMNS), frame])
  frame = frame.sort_values(["model", "arch", "size"],
                            key=lambda c: c.map(records.size_rank)
                            if c.name == "size" else c).reset_index(drop=True)
  frame = add_paper(frame, paper_table())
  os.makedirs(args.out, exist_ok=True)
  frame.to_csv(csv_path, index=False)
  lines = summary(frame) + [
      "",
      "Measured graph only in %.0f s wall (this run: %d rows). Gaps: "
      "params = ours / Table 1 - 1; FLOPs = (ours / our vanilla) / "
      "(Table 1 / Table 1's vanilla) - 1, both at the same size, ours "
      "counted with what model-parallel slices repeat on the row's mesh "
      "(whole_flops_gap_pct: each matmul once). core_gib: "
      "per-core memory of a training step on the row's v3-32 mesh "
      "(mtf_arch/memory.py). v3_32_days: at Table 1's steps/s." %
      (wall, len(rows))
  ]
  with open(os.path.join(args.out, "configs.md"), "w") as f:
    f.write(
        to_markdown(frame, "\n\n".join(lines[:-2]) + "\n\n" + lines[-1] + "\n"))
  failed = frame["error"].notna().sum()
  print("\n".join(summary(frame)))
  print("[configs] wrote %s and configs.md: %d rows, %d with errors, %.1f s" %
        (csv_path, len(frame), failed, wall))


if __name__ == "__main__":
  main()

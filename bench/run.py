"""Benchmark: Mesh-TF (stock CLI) against HuggingFace T5 in PyTorch, on CPU.

  python -m bench.run --sizes tiny small --repeats 3

For each size, `repeats` times and interleaved (Mesh-TF, PyTorch, Mesh-TF,
...), one training run of each side as its own process:

* Mesh-TF: the stock `t5_mesh_transformer --module_import=mtf_arch` with
  arch/transformer.gin + size/<size>.gin + mesh/cpu_1.gin + run/pretrain.gin +
  run/cpu_quick.gin (the offline span-corruption task) and --gin_param
  overrides: inputs 512 / targets 114, batch 8, fp32, Adafactor, no checkpoint
  inside the loop.
* PyTorch: bench/hf_t5.py, T5ForConditionalGeneration of the same size and
  vocabulary, Adafactor, same lengths, batch and thread count. Optional: the
  report says so when torch or transformers is missing.

Per run: steady steps/s (from the per-step lines, the first two dropped),
tokens/s (batch x (inputs + targets) per step), seconds from process start
to the first step line, peak resident memory of the process tree (psutil,
sampled every 0.1 s). Per size: the median and spread of each, and the
Mesh-TF / PyTorch ratio of paired runs. A large float32 matmul of each
framework (tensorflow, torch when present, numpy; bench/peak.py, each in its
own process) is timed at the start and at the end of the run; each side's
training FLOP/s (3 x forward matmul FLOPs of mtf_arch.flops' closed form, per
step) are reported against its own framework's peak and against the best.
Then every architecture in gin/arch/ is trained a few steps at a small common size
(mtf_arch/speed.py in its own process) for steps/s and peak memory.

Writes <out>/report.json and <out>/report.md (default runs/bench/).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from bench import peak
from bench import stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SEQ = {"inputs": 512, "targets": 114}
BATCH = 8
# Timed steps per run: enough for a steady rate after the two dropped.
DEFAULT_STEPS = {"tiny": 12, "small": 6}
ARCH_SIZE = "micro_3"  # d_model 160, 2 layers (gin/size/micro_3.gin)
ARCH_SEQ = {"inputs": 128, "targets": 29}


def _gin_dir():
  from mtf_arch import paths  # pylint: disable=g-import-not-at-top
  return paths.gin_dir()


def offline_vocab_size():
  """The offline task's vocabulary: SentencePiece pieces + 100 sentinels."""
  from mtf_arch import tasks  # pylint: disable=g-import-not-at-top
  return tasks.OFFLINE_VOCABULARY.vocab_size


def size_config(size):
  with open(os.path.join(_gin_dir(), "size", size + ".gin")) as f:
    return stats.read_size(f.read())


def thread_env(threads):
  """Environment pinning both frameworks to `threads` threads."""
  env = dict(os.environ)
  env.update(
      TF_NUM_INTRAOP_THREADS=str(threads),
      TF_NUM_INTEROP_THREADS=str(threads),
      OMP_NUM_THREADS=str(threads),
      # OpenMP's default spin-waiting makes PyTorch ~3x slower whenever the
      # machine runs anything else (measured here: 46 s against 16 s for four
      # Tiny steps at load 3.5); TensorFlow's Eigen pool already sleeps.
      OMP_WAIT_POLICY="PASSIVE",
      # transformers would otherwise import TensorFlow too (start-up, memory).
      USE_TF="0",
      USE_TORCH="1",
      TF_CPP_MIN_LOG_LEVEL="1",
      PYTHONUNBUFFERED="1")
  return env


def run_timed(argv, env, log_path, timeout=900, stop_after_steps=None):
  """Runs a process; timestamps its output lines and samples its memory.

  With `stop_after_steps`, the process is killed once that many step lines
  have arrived (the estimator's final checkpoint and its ~40 s input pipeline
  tear-down are not what is measured).

  Returns:
    {"rc", "wall_s", "peak_rss_mb", "lines": [(seconds, text)]}.
  """
  import psutil  # pylint: disable=g-import-not-at-top
  start = time.time()
  proc = subprocess.Popen(
      argv,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=env,
      cwd=REPO)
  lines = []

  def read():
    for line in proc.stdout:
      lines.append((time.time() - start, line.rstrip("\n")))

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  peak, stopped = 0, False
  ps = psutil.Process(proc.pid)
  while proc.poll() is None:
    if time.time() - start > timeout:
      proc.kill()
      break
    if (stop_after_steps and len(stats.parse_steps(lines)) >= stop_after_steps):
      stopped = True
      proc.kill()
      break
    try:
      tree = [ps] + ps.children(recursive=True)
      peak = max(peak, sum(p.memory_info().rss for p in tree))
    except psutil.Error:
      pass
    time.sleep(0.1)
  proc.wait()
  reader.join(timeout=10)
  with open(log_path, "w") as f:
    f.write("$ %s\n" % " ".join(argv))
    for t, line in lines:
      f.write("%9.3f %s\n" % (t, line))
  return {
      "rc": 0 if stopped else proc.returncode,
      "wall_s": time.time() - start,
      "peak_rss_mb": peak / 2**20,
      "lines": lines
  }


def mtf_argv(size, steps, model_dir, dtype="float32", extra_params=()):
  params = [
      "utils.run.sequence_length = %r" % SEQ,
      "utils.run.batch_size = %d" % BATCH,
      "utils.run.train_steps = %d" % steps,
      # No checkpoint inside the measured loop (the estimator still writes
      # one before the first step and one after the last).
      "utils.run.save_checkpoints_steps = 100000",
      "utils.get_variable_dtype.activation_dtype = %r" % dtype,
  ] + list(extra_params)
  files = [
      "arch/transformer.gin",
      "size/%s.gin" % size, "mesh/cpu_1.gin", "run/pretrain.gin",
      "run/cpu_quick.gin"
  ]
  return ([
      os.path.join(BIN, "t5_mesh_transformer"), "--module_import=mtf_arch",
      "--model_dir=" + model_dir
  ] + ["--gin_file=" + f for f in files] + ["--gin_param=" + p for p in params])


def hf_argv(size, steps, vocab, threads, dtype="float32"):
  cfg = size_config(size)
  argv = [sys.executable, "-m", "bench.hf_t5"]
  for k, v in cfg.items():
    argv += ["--%s" % k, str(v)]
  return argv + [
      "--vocab",
      str(vocab), "--inputs",
      str(SEQ["inputs"]), "--targets",
      str(SEQ["targets"]), "--batch",
      str(BATCH), "--steps",
      str(steps), "--threads",
      str(threads), "--dtype", dtype
  ]


def torch_available():
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import transformers  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    return str(e)
  return None


def measure_run(side, size, steps, threads, vocab, log_dir, rep, dtype):
  """One training run of one side: its rates, start-up and memory."""
  tag = "%s_%s_%s_%d" % (side, size, dtype, rep)
  load_before = os.getloadavg()[0]
  if side == "mtf":
    model_dir = tempfile.mkdtemp(prefix="bench_mtf_")
    argv = mtf_argv(size, steps, model_dir, dtype)
  else:
    argv = hf_argv(size, steps, vocab, threads, dtype)
  out = run_timed(argv, thread_env(threads),
                  os.path.join(log_dir, tag + ".log"))
  if side == "mtf":
    shutil.rmtree(model_dir, ignore_errors=True)
  steps_seen = stats.parse_steps(out["lines"])
  rate = stats.steady_rate(steps_seen)
  tokens_per_step = BATCH * (SEQ["inputs"] + SEQ["targets"])
  result = {
      "side": side,
      "size": size,
      "dtype": dtype,
      "rep": rep,
      "rc": out["rc"],
      "steps_per_s": rate,
      "tokens_per_s": rate * tokens_per_step if rate else None,
      "first_step_s": steps_seen[0][0] if steps_seen else None,
      "wall_s": out["wall_s"],
      "peak_rss_mb": out["peak_rss_mb"],
      "losses": [s[2] for s in steps_seen],
      "load_avg": [load_before, os.getloadavg()[0]],
  }
  print(
      "  %-4s %-6s %-8s rep %d: %s steps/s, %s tokens/s, first step %s s, "
      "peak %.0f MB, load %.1f" % (side, size, dtype, rep, stats.fmt(rate),
                                   stats.fmt(result["tokens_per_s"], "%.0f"),
                                   stats.fmt(result["first_step_s"], "%.1f"),
                                   out["peak_rss_mb"], load_before),
      flush=True)
  if out["rc"] != 0 or rate is None:
    print(
        "    run failed (rc %s); see %s" % (out["rc"], tag + ".log"),
        flush=True)
  return result


def matmul_peaks(threads, frameworks):
  """{framework: bench.peak record}, each timed in its own process.

  With the training runs' thread environment, so a peak and the runs that
  are measured against it use the same threads. A framework that cannot run
  (torch missing) is left out.
  """
  out = {}
  for framework in frameworks:
    proc = subprocess.run([
        sys.executable, "-m", "bench.peak", "--framework", framework,
        "--threads",
        str(threads)
    ],
                          cwd=REPO,
                          env=thread_env(threads),
                          capture_output=True,
                          text=True,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
      print("bench: %s matmul peak failed (rc %d): %s" %
            (framework, proc.returncode, proc.stderr.strip()[-300:]))
      continue
    out[framework] = json.loads(lines[-1])
  return out


def arch_worker(arch, steps, warmup, threads):
  """Child process: steps/s of one architecture (mtf_arch/speed.py)."""
  from mtf_arch import registry  # pylint: disable=g-import-not-at-top
  from mtf_arch import speed  # pylint: disable=g-import-not-at-top
  info = registry.architectures()[arch]
  files = [
      info.gin_file,
      registry.size_file(arch, ARCH_SIZE), "run/pretrain.gin"
  ]
  rate = speed.train_steps_per_second(
      files,
      vocab_size=offline_vocab_size(),
      batch_size=BATCH,
      sequence_length=ARCH_SEQ,
      steps=steps,
      warmup=warmup,
      threads=threads)
  print("ARCH_RESULT " + json.dumps({"arch": arch, "steps_per_s": rate}))


def measure_archs(threads, log_dir, steps=5, warmup=2):
  from mtf_arch import registry  # pylint: disable=g-import-not-at-top
  rows = []
  for arch in sorted(registry.architectures()):
    argv = [
        sys.executable, "-m", "bench.run", "--arch-worker", arch,
        "--arch-steps",
        str(steps), "--threads",
        str(threads)
    ]
    load_before = os.getloadavg()[0]
    out = run_timed(argv, thread_env(threads),
                    os.path.join(log_dir, "arch_%s.log" % arch))
    rate = None
    for _, line in out["lines"]:
      if line.startswith("ARCH_RESULT "):
        rate = json.loads(line[len("ARCH_RESULT "):])["steps_per_s"]
    row = {
        "arch": arch,
        "steps_per_s": rate,
        "peak_rss_mb": out["peak_rss_mb"],
        "rc": out["rc"],
        "load_avg": load_before
    }
    print(
        "  arch %-22s %s steps/s, peak %.0f MB" %
        (arch, stats.fmt(rate), out["peak_rss_mb"]),
        flush=True)
    rows.append(row)
  return rows


def train_flops_per_step(size, vocab):
  """3 x forward matmul FLOPs of one batch (closed form of mtf_arch.flops)."""
  from mtf_arch import flops  # pylint: disable=g-import-not-at-top
  cfg = size_config(size)
  return 3 * BATCH * flops.transformer_forward_flops(
      cfg["num_layers"], cfg["d_model"], cfg["d_ff"], cfg["num_heads"],
      cfg["d_kv"], vocab, SEQ["inputs"], SEQ["targets"])


# The framework whose matmul kernel each side's training runs on.
OWN_FRAMEWORK = {"mtf": "tensorflow", "hf": "torch"}


def summarize_size(runs, size, dtype, peaks, flops_per_step):
  """Medians, spreads, paired ratios and FLOP/s fractions of one size.

  Args:
    runs: measure_run records.
    size, dtype: the size and dtype summarized.
    peaks: {framework: best matmul FLOP/s} (bench.peak).
    flops_per_step: training FLOPs of one step.
  """
  out = {"size": size, "dtype": dtype, "train_flops_per_step": flops_per_step}
  by_side = {}
  for side in ("mtf", "hf"):
    mine = sorted([
        r for r in runs
        if r["side"] == side and r["size"] == size and r["dtype"] == dtype
    ],
                  key=lambda r: r["rep"])
    by_side[side] = mine
    out[side] = {
        key: stats.summarize([r[key] for r in mine])
        for key in ("tokens_per_s", "steps_per_s", "first_step_s",
                    "peak_rss_mb")
    }
    med = out[side]["steps_per_s"]["median"]
    out[side]["flops_per_s"] = med * flops_per_step if med else None
    out[side].update(
        peak.fractions(out[side]["flops_per_s"], peaks, OWN_FRAMEWORK[side]))
  ratios = stats.paired_ratios([r["tokens_per_s"] for r in by_side["mtf"]],
                               [r["tokens_per_s"] for r in by_side["hf"]])
  out["ratio_mtf_over_hf"] = stats.summarize(ratios)
  mem = stats.paired_ratios([r["peak_rss_mb"] for r in by_side["mtf"]],
                            [r["peak_rss_mb"] for r in by_side["hf"]])
  out["memory_ratio_mtf_over_hf"] = stats.summarize(mem)
  return out


def loss_agreement(runs):
  """bfloat16 against float32 loss curves, per size and side.

  Per (size, side): the mean training loss over the second half of the steps
  in each dtype (median over repeats), the largest per-step gap between the
  first float32 and the first bfloat16 run, and, as the yardstick, the
  largest per-step gap between two float32 runs (how much two runs of one
  configuration differ anyway).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  rows = []
  keys = sorted({(r["size"], r["side"]) for r in runs})
  for size, side in keys:
    curves = {}
    for r in sorted(runs, key=lambda r: r["rep"]):
      if r["size"] == size and r["side"] == side and r["losses"]:
        curves.setdefault(r["dtype"], []).append(r["losses"])
    if "float32" not in curves or "bfloat16" not in curves:
      continue

    def tail(c):
      return float(np.mean(c[len(c) // 2:]))

    def gap(a, b):
      n = min(len(a), len(b))
      return float(np.max(np.abs(np.array(a[:n]) - np.array(b[:n]))))

    fp32, bf16 = curves["float32"], curves["bfloat16"]
    rows.append({
        "size": size,
        "side": side,
        "float32_tail_loss": float(np.median([tail(c) for c in fp32])),
        "bfloat16_tail_loss": float(np.median([tail(c) for c in bf16])),
        "max_step_gap": gap(fp32[0], bf16[0]),
        "float32_repeat_gap": gap(fp32[0], fp32[1]) if len(fp32) > 1 else None,
        "steps": min(len(fp32[0]), len(bf16[0])),
    })
  return rows


def _cell(summary, pattern):
  if summary["median"] is None:
    return "-"
  return "%s (%s-%s)" % (pattern % summary["median"], pattern % summary["min"],
                         pattern % summary["max"])


def peak_line(report):
  """Each framework's float32 matmul peak (start, end), numpy's kernel."""
  parts = []
  for framework, best in sorted(report["matmul_peaks"].items()):
    times = [
        "%.0f" % (d[framework]["flops_per_s"] / 1e9)
        for d in report["matmul"].values()
        if framework in d
    ]
    parts.append("%s %.0f GFLOP/s (start/end %s)" %
                 (framework, best / 1e9, "/".join(times)))
  numpy_rec = next(
      (d["numpy"] for d in report["matmul"].values() if "numpy" in d), None)
  kernel = ""
  if numpy_rec:
    kernel = "; numpy ran %s" % (", ".join(
        "%s %s (%s kernel)" %
        (b["internal_api"], b["version"], b["architecture"])
        for b in numpy_rec["blas"]) or "an unknown BLAS")
    if numpy_rec["openblas_coretype"]:
      kernel += ", forced by OPENBLAS_CORETYPE=%s" % numpy_rec[
          "openblas_coretype"]
  return ("float32 matmul peak (4096^3, best of 5, each framework in its own "
          "process): %s%s. Each side's training FLOP/s is given against its "
          "own framework's peak (Mesh-TF: tensorflow, PyTorch: torch) and "
          "against the best." % ("; ".join(parts), kernel))


def markdown(report):
  """The human-readable report."""
  m = report["machine"]
  lines = [
      "# mtf_arch benchmark, %s" % report["date"], "",
      "Machine: %s, %d CPUs, Python %s; %d threads per framework; load "
      "average %.1f at start, %.1f at end." %
      (m["cpu"], m["cpus"], m["python"], report["threads"],
       report["load_avg"][0], report["load_avg"][1]), "",
      "Training: vanilla Transformer (T5.1.0), inputs %d / targets %d, batch "
      "%d, Adafactor, vocabulary %d (offline, padded to %d on both sides). "
      "tokens/s = batch x (inputs + targets) x steps/s. Cells: median "
      "(min-max) of %d interleaved runs." %
      (SEQ["inputs"], SEQ["targets"], BATCH, report["vocab"],
       -(-report["vocab"] // 128) * 128, report["repeats"]), "",
      peak_line(report), ""
  ]
  rows = []
  for s in report["sizes"]:
    for side, name in (("mtf", "Mesh-TF CLI"), ("hf", "PyTorch HF T5")):
      d = s[side]
      rows.append([
          s["size"], s["dtype"], name,
          _cell(d["tokens_per_s"], "%.0f"),
          _cell(d["steps_per_s"], "%.3f"),
          _cell(d["first_step_s"], "%.1f"),
          _cell(d["peak_rss_mb"], "%.0f"),
          stats.fmt(d["of_own_peak"] and 100 * d["of_own_peak"], "%.0f%%"),
          stats.fmt(d["of_best_peak"] and 100 * d["of_best_peak"], "%.0f%%")
      ])
    rows.append([
        s["size"], s["dtype"], "**ratio Mesh-TF / PyTorch**",
        _cell(s["ratio_mtf_over_hf"], "%.2fx"), "", "",
        _cell(s["memory_ratio_mtf_over_hf"], "%.2fx"), "", ""
    ])
  lines.append(
      stats.markdown_table([
          "size", "dtype", "side", "tokens/s", "steps/s", "first step (s)",
          "peak RSS (MB)", "of own matmul peak", "of best matmul peak"
      ], rows))
  if report.get("hf_skipped"):
    lines += ["", "PyTorch side skipped: %s" % report["hf_skipped"]]
  if report.get("loss_agreement"):
    lines += [
        "", "Loss curves, bfloat16 activations (PyTorch: autocast) against "
        "float32 (bench.run.loss_agreement):", ""
    ]
    lines.append(
        stats.markdown_table([
            "size", "side", "steps", "fp32 loss, 2nd half",
            "bf16 loss, 2nd half", "max step gap bf16-fp32",
            "max step gap fp32-fp32"
        ], [[
            a["size"], a["side"], a["steps"],
            "%.3f" % a["float32_tail_loss"],
            "%.3f" % a["bfloat16_tail_loss"],
            "%.3f" % a["max_step_gap"],
            stats.fmt(a["float32_repeat_gap"], "%.3f")
        ] for a in report["loss_agreement"]]))
  if report.get("archs"):
    lines += [
        "",
        "Every architecture at size/%s.gin (own size file where the "
        "architecture has one), inputs %d / targets %d, batch %d, "
        "mtf_arch/speed.py (in-process session, random batches), one run "
        "each:" % (ARCH_SIZE, ARCH_SEQ["inputs"], ARCH_SEQ["targets"], BATCH),
        ""
    ]
    lines.append(
        stats.markdown_table(["architecture", "steps/s", "peak RSS (MB)"], [[
            a["arch"],
            stats.fmt(a["steps_per_s"], "%.2f"),
            "%.0f" % a["peak_rss_mb"]
        ] for a in report["archs"]]))
  return "\n".join(lines) + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument(
      "--sizes",
      nargs="*",
      default=["tiny", "small"],
      help="paper sizes to compare (none: only the arch table)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument(
      "--steps",
      type=int,
      default=None,
      help="steps per run (default: 12 at tiny, 6 at small)")
  p.add_argument("--threads", type=int, default=2)
  p.add_argument(
      "--dtypes",
      nargs="+",
      default=["float32"],
      choices=["float32", "bfloat16"])
  p.add_argument(
      "--no-archs",
      action="store_true",
      help="skip the every-architecture table")
  p.add_argument("--no-hf", action="store_true", help="skip the PyTorch side")
  p.add_argument("--out", default=os.path.join(REPO, "runs", "bench"))
  p.add_argument("--arch-worker", help=argparse.SUPPRESS)
  p.add_argument("--arch-steps", type=int, default=5)
  args = p.parse_args(argv)

  if args.arch_worker:
    arch_worker(args.arch_worker, args.arch_steps, 2, args.threads)
    return 0

  os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
  log_dir = os.path.join(args.out, "logs")
  vocab = offline_vocab_size()
  hf_skipped = "--no-hf" if args.no_hf else torch_available()
  if hf_skipped and not args.no_hf:
    print("bench: PyTorch side skipped: torch/transformers missing (%s); "
          "pip install torch transformers to compare" % hf_skipped)
  sides = ["mtf"] + ([] if hf_skipped else ["hf"])
  load_start = os.getloadavg()[0]
  frameworks = ["tensorflow", "numpy"] + ([] if hf_skipped else ["torch"])
  print("bench: matmul peaks (start)", flush=True)
  matmul = {"start": matmul_peaks(args.threads, frameworks)}
  runs = []
  for rep in range(args.repeats):
    for size in args.sizes:
      for dtype in args.dtypes:
        steps = args.steps or DEFAULT_STEPS.get(size, 8)
        for side in (sides if rep % 2 == 0 else sides[::-1]):
          runs.append(
              measure_run(side, size, steps, args.threads, vocab, log_dir, rep,
                          dtype))
  print("bench: matmul peaks (end)", flush=True)
  matmul["end"] = matmul_peaks(args.threads, frameworks)
  peaks = {}
  for when in matmul.values():
    for framework, rec in when.items():
      peaks[framework] = max(peaks.get(framework, 0), rec["flops_per_s"])
  sizes = [
      summarize_size(runs, size, dtype, peaks,
                     train_flops_per_step(size, vocab))
      for size in args.sizes
      for dtype in args.dtypes
  ]
  archs = None
  if not args.no_archs:
    print("bench: every architecture at %s" % ARCH_SIZE, flush=True)
    archs = measure_archs(args.threads, log_dir)
  report = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {
          "cpu": _cpu_name(),
          "cpus": os.cpu_count(),
          "python": platform.python_version(),
          "platform": platform.platform()
      },
      "threads": args.threads,
      "repeats": args.repeats,
      "vocab": vocab,
      "sequence_length": SEQ,
      "batch": BATCH,
      "load_avg": [load_start, os.getloadavg()[0]],
      "matmul": matmul,
      "matmul_peaks": peaks,
      "hf_skipped": hf_skipped,
      "sizes": sizes,
      "loss_agreement": loss_agreement(runs),
      "runs": runs,
      "archs": archs,
  }
  with open(os.path.join(args.out, "report.json"), "w") as f:
    json.dump(report, f, indent=1)
  text = markdown(report)
  with open(os.path.join(args.out, "report.md"), "w") as f:
    f.write(text)
  print(text)
  print("bench: wrote %s" % os.path.join(args.out, "report.{json,md}"))
  return 0


def _cpu_name():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


if __name__ == "__main__":
  sys.exit(main())

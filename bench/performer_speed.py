"""Performer against Transformer training speed at a pinned micro size.

  python -m bench.performer_speed --rounds 2 --steps 5 [--chunk_sizes 32 64]
      [--performers performer performer_favor]

mtf_arch/speed.py (one CPU slice, Adafactor, random batches, 2 warm-up steps)
on arch/<arch>.gin + run/pretrain.gin with the size bound here (d_model 128,
3 layers each side, d_ff 512, 4 heads of d_kv 32: not read from a size file),
inputs 128 / targets 29, batch 8, the offline task's vocabulary. Each run is
its own process with bench.run's thread environment, one at a time: the
Transformer and each Performer file (arch/performer.gin: the deterministic
ReLU kernel; arch/performer_favor.gin: 256 random features), once per chunk
size, alternating, `rounds` times each. Prints each run's steps/s and the
medians.
"""

import argparse
import json
import statistics
import subprocess
import sys

from bench import run

SIZE = [
    "num_layers = 3", "d_model = 128", "d_ff = 512", "num_heads = 4",
    "d_kv = 32"
]
SEQ = {"inputs": 128, "targets": 29}
BATCH = 8


def worker(arch, gin_params, steps, threads):
  """Child process: prints steps/s of one configuration."""
  from mtf_arch import speed  # pylint: disable=g-import-not-at-top
  rate = speed.train_steps_per_second(
      ["arch/%s.gin" % arch, "run/pretrain.gin"],
      SIZE + list(gin_params),
      vocab_size=run.offline_vocab_size(),
      batch_size=BATCH,
      sequence_length=SEQ,
      steps=steps,
      warmup=2,
      threads=threads)
  print("ARCH_RESULT " + json.dumps({"steps_per_s": rate}))


def worker_rate(arch, gin_params, steps, threads):
  """steps/s of one `worker` child process."""
  argv = [
      sys.executable, "-m", "bench.performer_speed", "--worker", arch,
      "--steps",
      str(steps), "--threads",
      str(threads), "--gin_params"
  ] + list(gin_params)
  out = subprocess.run(
      argv,
      env=run.thread_env(threads),
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
      check=True).stdout
  for line in out.splitlines():
    if line.startswith("ARCH_RESULT "):
      return json.loads(line[len("ARCH_RESULT "):])["steps_per_s"]
  raise RuntimeError("no ARCH_RESULT from %s" % arch)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument(
      "--chunk_sizes",
      nargs="*",
      type=int,
      default=[],
      help="Performer chunk sizes (none: the default)")
  p.add_argument(
      "--performers",
      nargs="*",
      default=["performer"],
      help="Performer arch files to time (gin/arch/<name>.gin)")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--worker", help=argparse.SUPPRESS)
  p.add_argument("--gin_params", nargs="*", default=[], help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    worker(args.worker, args.gin_params, args.steps, args.threads)
    return
  configs = [("transformer", [])]
  for arch in args.performers:
    for c in args.chunk_sizes or [None]:
      params = [] if c is None else [
          "PerformerSelfAttention.chunk_size = %d" % c
      ]
      configs.append((arch, params))
  rates = {}
  for _ in range(args.rounds):
    for arch, params in configs:
      name = " ".join([arch] + params)
      rates.setdefault(name, []).append(
          worker_rate(arch, params, args.steps, args.threads))
      print("%.3f steps/s  %s" % (rates[name][-1], name), flush=True)
  for name, r in rates.items():
    print("median %.3f steps/s over %d runs  %s" %
          (statistics.median(r), len(r), name))


if __name__ == "__main__":
  main()

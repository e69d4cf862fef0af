"""The float32 matmul peak of each framework, each in its own process.

`python -m bench.peak --framework tensorflow --threads 2` prints one JSON
line: the best of `--repeats` timed n x n x n float32 matmuls (2 n^3 FLOPs
each) through that framework's own kernel -- `tf.linalg.matmul` (Eigen or
oneDNN, as the Mesh-TF CLI runs its einsums), `torch.matmul` (what the
PyTorch T5 runs), `numpy.matmul` (the BLAS numpy links) -- and, for numpy,
which BLAS and which of its CPU kernels ran (threadpoolctl), with
OPENBLAS_CORETYPE when the environment sets it (a forced, older kernel is
slower). bench/run.py runs one process per framework, with the thread
environment of the training runs, and reports every framework's training
throughput as a fraction of its own peak and of the best peak.
"""

import argparse
import json
import os
import time

FRAMEWORKS = ("tensorflow", "torch", "numpy")


def _best_seconds(fn, repeats):
  fn()  # warm-up: thread pools, kernel selection
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def measure(framework, n=4096, repeats=5, threads=None):
  """Best float32 matmul FLOP/s of one framework.

  Args:
    framework: one of FRAMEWORKS.
    n: the matrices' side.
    repeats: timed matmuls after one warm-up; the fastest counts.
    threads: intra-op threads (None: the framework's default).

  Returns:
    {"framework", "flops_per_s", "n", "threads"} and, for numpy, "blas"
    (threadpoolctl's description of each BLAS pool) and "openblas_coretype".
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = rng.standard_normal((n, n), dtype=np.float32)
  b = rng.standard_normal((n, n), dtype=np.float32)
  out = {"framework": framework, "n": n, "threads": threads}
  if framework == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if threads:
      tf.config.threading.set_intra_op_parallelism_threads(threads)
    ta, tb = tf.constant(a), tf.constant(b)
    # .numpy() waits for the result; the copy back is n^2, the work n^3.
    seconds = _best_seconds(lambda: tf.linalg.matmul(ta, tb).numpy(), repeats)
  elif framework == "torch":
    import torch  # pylint: disable=g-import-not-at-top
    if threads:
      torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    seconds = _best_seconds(lambda: torch.matmul(ta, tb), repeats)
  elif framework == "numpy":
    import threadpoolctl  # pylint: disable=g-import-not-at-top
    with threadpoolctl.threadpool_limits(limits=threads):
      seconds = _best_seconds(lambda: a @ b, repeats)
      out["blas"] = [{
          k: pool.get(k)
          for k in ("internal_api", "version", "architecture", "num_threads",
                    "threading_layer")
      }
                     for pool in threadpoolctl.threadpool_info()
                     if pool.get("user_api") == "blas"]
    out["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
  else:
    raise ValueError("bench.peak: unknown framework %r; use one of %s" %
                     (framework, ", ".join(FRAMEWORKS)))
  out["flops_per_s"] = 2.0 * n**3 / seconds
  return out


def fractions(rate, peaks, own):
  """A throughput as a fraction of its framework's peak and of the best.

  Args:
    rate: the training run's FLOP/s.
    peaks: {framework: best FLOP/s measured}.
    own: the framework the run used ("tensorflow" for the Mesh-TF CLI).

  Returns:
    {"of_own_peak", "of_best_peak"}; None where a peak is missing.
  """
  best = max(peaks.values()) if peaks else None
  mine = peaks.get(own)
  return {
      "of_own_peak": rate / mine if rate and mine else None,
      "of_best_peak": rate / best if rate and best else None,
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument(
      "--framework",
      choices=FRAMEWORKS,
      required=True,
      help="whose float32 matmul to time")
  p.add_argument("--n", type=int, default=4096, help="matrix side")
  p.add_argument(
      "--repeats", type=int, default=5, help="timed matmuls; the best counts")
  p.add_argument(
      "--threads",
      type=int,
      default=None,
      help="intra-op threads (default: the framework's own)")
  args = p.parse_args(argv)
  print(json.dumps(measure(args.framework, args.n, args.repeats, args.threads)))


if __name__ == "__main__":
  main()

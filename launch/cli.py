"""Compose and run stock `t5_mesh_transformer` commands (no model code here)."""

import os
import re
import subprocess
import sys
import time

STEP_RE = re.compile(r"step, tf_loss\[([-\d.e+naif]+)\]\[(\d+)\]")


def t5_command(model_dir, gin_files, gin_params=(), extra_flags=()):
  """The argv of one stock CLI run with the package imported."""
  exe = os.path.join(os.path.dirname(sys.executable), "t5_mesh_transformer")
  return ([exe, "--module_import=mtf_arch", "--model_dir=" + model_dir] +
          ["--gin_file=" + f for f in gin_files] +
          ["--gin_param=" + p for p in gin_params] + list(extra_flags))


def _fmt_secs(s):
  return "%d:%02d" % (s // 60, s % 60)


def run_with_progress(argv, log_path, label, total_steps=None, out=sys.stdout):
  """Runs `argv`, appending its full output to `log_path`.

  Prints one progress line per ~10% of `total_steps` (training loss, elapsed
  time, estimate of the rest), parsed from Mesh-TF's `step, tf_loss` lines.

  Returns:
    (return code, list of (step, loss) seen).
  """
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  start = time.time()
  seen, first_step, next_report = [], None, 0.0
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  with open(log_path, "a") as log:
    log.write("\n$ %s\n" % " ".join(argv))
    log.flush()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env)
    for line in proc.stdout:
      log.write(line)
      m = STEP_RE.search(line)
      if not m:
        continue
      loss, step = float(m.group(1)), int(m.group(2))
      seen.append((step, loss))
      if first_step is None:
        first_step, first_time = step, time.time()
      if total_steps and step >= next_report:
        done = step - first_step
        rate = done / max(time.time() - first_time, 1e-9)
        eta = (total_steps - step) / rate if rate > 0 else 0
        print(
            "[%s] step %d/%d  loss %.3f  elapsed %s  eta %s" %
            (label, step, total_steps, loss, _fmt_secs(time.time() - start),
             _fmt_secs(eta)),
            file=out,
            flush=True)
        next_report = step + max(total_steps // 10, 1)
    code = proc.wait()
  return code, seen

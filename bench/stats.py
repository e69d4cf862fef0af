"""Pure logic of the benchmark: parsing step lines, rates, spreads, tables.

Nothing here runs a model or imports TensorFlow or torch, so it is tested
directly (tests/test_bench.py).

A run's output is a list of (seconds since the process started, line). Both
sides print one line per training step: Mesh-TF's `tf.Print` in
`utils.tpu_estimator_model_fn` (`step, tf_loss[LOSS][STEP]`, STEP being the
global step before the update) and the PyTorch worker's
`hf step, loss[LOSS][STEP]`, printed in the same form on purpose. Each
side prints exactly one such line per step.
"""

import re
import statistics

STEP_RE = re.compile(r"step, (?:tf_)?loss\[([-\d.e+naif]+)\]\[(\d+)\]")
GIN_MACRO_RE = re.compile(r"^\s*(\w+)\s*=\s*(\d+)\s*(?:#.*)?$", re.M)
SIZE_KEYS = ("num_layers", "d_model", "d_ff", "num_heads", "d_kv")


def parse_steps(timed_lines):
  """[(seconds, step, loss)] of the step lines among timestamped output lines.

  Mesh-TF prints exactly one line per training step, but the step number in
  it is read concurrently with the global step's increment, so two lines can
  carry the same number and a number can be skipped: every line is kept, and
  rates count lines, not step numbers.

  Args:
    timed_lines: iterable of (seconds, text).

  Returns:
    list of (seconds, step, loss), in arrival order.
  """
  out = []
  for t, line in timed_lines:
    m = STEP_RE.search(line)
    if m:
      out.append((float(t), int(m.group(2)), float(m.group(1))))
  return out


def steady_rate(steps, skip=2):
  """Steps per second after the first `skip` step lines.

  (lines kept - 1) / (last time - first time): each line is one step.

  Args:
    steps: output of `parse_steps`.
    skip: leading step lines to drop (graph optimization, input pipeline
      warm-up, first allocations).

  Returns:
    steps per second, or None with fewer than two kept lines.
  """
  kept = steps[skip:]
  if len(kept) < 2 or kept[-1][0] <= kept[0][0]:
    return None
  return (len(kept) - 1) / (kept[-1][0] - kept[0][0])


def summarize(values):
  """{"median", "min", "max", "spread", "n"}; spread = (max - min) / median."""
  values = [v for v in values if v is not None]
  if not values:
    return {"median": None, "min": None, "max": None, "spread": None, "n": 0}
  med = statistics.median(values)
  lo, hi = min(values), max(values)
  return {
      "median": med,
      "min": lo,
      "max": hi,
      "spread": (hi - lo) / med if med else None,
      "n": len(values)
  }


def paired_ratios(numerators, denominators):
  """Ratios of interleaved runs, pair by pair (run i of one side over run i
  of the other), so a slow period of the shared machine affects both."""
  return [
      a / b for a, b in zip(numerators, denominators) if a is not None and b
  ]


def read_size(text):
  """The size macros of a gin/size/*.gin file's text: {key: int}.

  Args:
    text: the file's contents.

  Returns:
    {num_layers, d_model, d_ff, num_heads, d_kv}.

  Raises:
    ValueError: a macro is missing.
  """
  found = {k: int(v) for k, v in GIN_MACRO_RE.findall(text)}
  missing = [k for k in SIZE_KEYS if k not in found]
  if missing:
    raise ValueError("size file lacks %s" % ", ".join(missing))
  return {k: found[k] for k in SIZE_KEYS}


def fmt(value, pattern="%.3g", none="-"):
  return none if value is None else pattern % value


def markdown_table(header, rows):
  """A GitHub Markdown table from a header and rows of cells."""
  lines = [
      "| " + " | ".join(header) + " |",
      "|" + "|".join("---" for _ in header) + "|"
  ]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)

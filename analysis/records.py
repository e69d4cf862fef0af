"""Results records: the JSON-lines schema, readers, and the wide table.

One record per (model, size, checkpoint, metric), one JSON object per line:

  {"model": "Transformer", "size": "Base", "metric": "neg_log_ppl",
   "value": -1.75, "step": 524288, "source": "runs/t5_base",
   "protocol": "standard"}

Fields:
  model (str, required): the paper's Table 1 model name ("Transformer",
    "GLU-Transformer", ...).
  size (str, required): "Tiny", "Small", "Base", "Large", "XL", or a free
    label for depth/width runs ("NL=8").
  metric (str, required): one of METRICS: params (count), flops (any unit,
    the same for every record of a table; a study writes mtf_arch/flops.py's
    lowered-graph count with source "graph", not Table 1's unit),
    speed_steps_per_s (Table 1's TPU speed, or a study cell's own CPU
    pretraining steps/s; analysis/labels.py says which), neg_log_ppl
    (upstream validation negative log-perplexity), glue, superglue, squad
    (downstream scores, 0-100); glue_proxy, superglue_proxy, squad_proxy
    (the offline proxy suite of mtf_arch/proxy_tasks.py: never GLUE).
  value (number, required).
  step (int or null, optional): checkpoint step; the latest step of each
    (model, size, protocol, metric) is the one tabulated.
  source (str, optional): where the value came from.
  protocol (str, optional): "standard" (default; the size grid), "depth" or
    "width" (the paper's Figures 4 and 5 scaling protocols).

A folder is read as every records file below it, except that a study
folder (`launch.study`'s runs/<study>/) gives its results.jsonl only -- not
its cells' own files nor its analysis/ output (see `results_files`).

Also read: a CSV with Table 1's columns (`TABLE1_COLUMNS`; params as "16M"
or a number; an empty cell is a missing value), and `results.json` files as
written by `python -m launch.default` (negative log-perplexity by step).
Malformed input raises `RecordError` naming the file and line or row.
"""

import csv
import json
import math
import os

import pandas as pd

METRICS = ("params", "flops", "speed_steps_per_s", "neg_log_ppl", "glue",
           "superglue", "squad", "glue_proxy", "superglue_proxy", "squad_proxy")
TABLE1_COLUMNS = ("model", "size") + METRICS
SIZES = ("Tiny", "Small", "Base", "Large", "XL")
PROTOCOLS = ("standard", "depth", "width")
PAPER_TABLE1 = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "data", "table1.csv")
_REQUIRED = ("model", "size", "metric", "value")
_OPTIONAL = ("step", "source", "protocol")


class RecordError(ValueError):
  """A malformed results file; the message names the file and line/row."""


def parse_count(text):
  """'16M' -> 16e6, '2.9B' -> 2.9e9, '1234' -> 1234.0."""
  text = str(text).strip()
  scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(text[-1:].upper())
  return float(text[:-1]) * scale if scale else float(text)


def _number(value, where, name):
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise RecordError("%s: %s must be a number, got %r" % (where, name, value))
  if not math.isfinite(value):
    raise RecordError("%s: %s is not finite (%r)" % (where, name, value))
  return float(value)


def validate(record, where):
  """Checks one record dict; returns it normalized (all fields present).

  Args:
    record: the parsed JSON object.
    where: "file:line" for error messages.

  Returns:
    a dict with model, size, metric, value, step, source, protocol.
  """
  if not isinstance(record, dict):
    raise RecordError("%s: expected a JSON object, got %s" %
                      (where, type(record).__name__))
  missing = [k for k in _REQUIRED if k not in record]
  if missing:
    raise RecordError("%s: missing field(s) %s" % (where, ", ".join(missing)))
  unknown = sorted(set(record) - set(_REQUIRED) - set(_OPTIONAL))
  if unknown:
    raise RecordError("%s: unknown field(s) %s" % (where, ", ".join(unknown)))
  for key in ("model", "size"):
    if not isinstance(record[key], str) or not record[key].strip():
      raise RecordError("%s: %s must be a non-empty string" % (where, key))
  if record["metric"] not in METRICS:
    raise RecordError("%s: unknown metric %r (expected one of %s)" %
                      (where, record["metric"], ", ".join(METRICS)))
  step = record.get("step")
  if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
    raise RecordError("%s: step must be an integer or null, got %r" %
                      (where, step))
  protocol = record.get("protocol") or "standard"
  if protocol not in PROTOCOLS:
    raise RecordError("%s: unknown protocol %r (expected one of %s)" %
                      (where, protocol, ", ".join(PROTOCOLS)))
  return {
      "model": record["model"].strip(),
      "size": record["size"].strip(),
      "metric": record["metric"],
      "value": _number(record["value"], where, "value"),
      "step": step,
      "source": record.get("source") or where,
      "protocol": protocol,
  }


def read_jsonl(path):
  """Records from a JSON-lines file (blank lines and '#' lines skipped)."""
  out = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.lstrip().startswith("#"):
        continue
      where = "%s:%d" % (path, number)
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise RecordError("%s: not valid JSON (%s)" % (where, e.msg)) from None
      out.append(validate(record, where))
  return out


def read_table_csv(path):
  """Records from a CSV in Table 1's columns (row numbers count the header)."""
  out = []
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    columns = reader.fieldnames or []
    missing = [c for c in ("model", "size") if c not in columns]
    if missing:
      raise RecordError("%s: header lacks column(s) %s (expected %s)" %
                        (path, ", ".join(missing), ",".join(TABLE1_COLUMNS)))
    unknown = [c for c in columns if c not in TABLE1_COLUMNS]
    if unknown:
      raise RecordError("%s: unknown column(s) %s (expected %s)" %
                        (path, ", ".join(unknown), ",".join(TABLE1_COLUMNS)))
    for number, row in enumerate(reader, 2):
      where = "%s:row %d" % (path, number)
      if None in row or any(row[c] is None for c in columns):
        raise RecordError("%s: expected %d cells" % (where, len(columns)))
      for metric in METRICS:
        text = (row.get(metric) or "").strip()
        if not text:
          continue
        try:
          value = parse_count(text) if metric == "params" else float(text)
        except ValueError:
          raise RecordError("%s: %s is not a number: %r" %
                            (where, metric, text)) from None
        out.append(
            validate(
                {
                    "model": row["model"],
                    "size": row["size"],
                    "metric": metric,
                    "value": value,
                    "source": where
                }, where))
  return out


def read_launch_results(path, paper_models=None):
  """Records from a `launch.default` results.json (neg. log-perplexity).

  Args:
    path: the results.json file.
    paper_models: {arch file name: model name}; by default each
      `registry.Arch.label` (Table 1's name; a variant's adds its file name).
  """
  try:
    with open(path) as f:
      data = json.load(f)
    arch, size = data["arch"], data["size"]
    by_step = data["neg_log_perplexity"]
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise RecordError("%s: not a launch results.json (%s: %s)" %
                      (path, type(e).__name__, e)) from None
  if paper_models is None:
    from mtf_arch import registry  # pylint: disable=g-import-not-at-top
    paper_models = {k: a.label for k, a in registry.architectures().items()}
  model = paper_models.get(arch) or arch
  size = {s.lower(): s for s in SIZES}.get(size.lower(), size)
  return [
      validate(
          {
              "model": model,
              "size": size,
              "metric": "neg_log_ppl",
              "value": value,
              "step": int(step),
              "source": path
          }, "%s:step %s" % (path, step)) for step, value in by_step.items()
  ]


def is_study_folder(path):
  """Whether a folder is a `launch.study` study directory (results.jsonl at
  the top, beside study.json or cells/)."""
  return os.path.isfile(os.path.join(
      path,
      "results.jsonl")) and (os.path.isfile(os.path.join(path, "study.json")) or
                             os.path.isdir(os.path.join(path, "cells")))


def _is_analysis_output(path):
  """Whether a folder was written by this package (report.md, table2.csv)."""
  return all(
      os.path.isfile(os.path.join(path, name))
      for name in ("report.md", "table2.csv"))


def results_files(folder):
  """The records files of a folder, for `load`.

  A study folder contributes its results.jsonl only (not its cells' own
  record files, not its analysis/ output); below other folders, study
  folders count the same way, analysis output folders are skipped, and every
  other *.jsonl, *.csv and results.json is read.
  """
  out = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    if is_study_folder(root):
      out.append(os.path.join(root, "results.jsonl"))
      dirs[:] = []
      continue
    if _is_analysis_output(root):
      dirs[:] = []
      continue
    out += [
        os.path.join(root, f)
        for f in sorted(files)
        if f.endswith((".jsonl", ".csv")) or f == "results.json"
    ]
  return out


def load(path):
  """Records from a file (.jsonl, .csv, results.json) or a folder of them
  (see `results_files`: a study folder gives its results.jsonl only)."""
  if os.path.isdir(path):
    files = results_files(path)
    if not files:
      raise RecordError("%s: no *.jsonl, *.csv or results.json files" % path)
    return [r for f in files for r in load(f)]
  if not os.path.exists(path):
    raise RecordError("%s: no such file or folder" % path)
  if path.endswith(".csv"):
    return read_table_csv(path)
  if path.endswith(".jsonl"):
    return read_jsonl(path)
  if path.endswith(".json"):
    return read_launch_results(path)
  raise RecordError("%s: unknown results format (expected .jsonl, .csv or "
                    "results.json)" % path)


def size_rank(size):
  return SIZES.index(size) if size in SIZES else len(SIZES)


def to_table(records):
  """The wide table: one row per (model, size, protocol), METRICS columns.

  The latest step wins where several checkpoints report a metric (records
  without a step count as later than any step, in file order).
  Models keep the order in which they first appear.
  """
  columns = ["model", "size", "protocol"] + list(METRICS)
  if not records:
    return pd.DataFrame(columns=columns)
  frame = pd.DataFrame(records)
  frame["order"] = range(len(frame))
  frame["step_key"] = frame["step"].fillna(float("inf"))
  frame = frame.sort_values(["step_key", "order"], kind="stable")
  latest = frame.groupby(["model", "size", "protocol", "metric"],
                         sort=False).last().reset_index()
  wide = latest.pivot_table(
      index=["model", "size", "protocol"],
      columns="metric",
      values="value",
      aggfunc="last").reset_index()
  for metric in METRICS:
    if metric not in wide:
      wide[metric] = float("nan")
  first = {
      m: i for i, m in reversed(
          list(enumerate(frame.sort_values("order")["model"])))
  }
  wide["_m"] = wide["model"].map(first)
  wide["_s"] = wide["size"].map(size_rank)
  wide = wide.sort_values(["protocol", "_m", "_s",
                           "size"]).reset_index(drop=True)
  wide.columns.name = None
  return wide[columns]

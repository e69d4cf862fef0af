"""What each axis, legend and table of an analysis shows, in words.

Three kinds of input need three sets of words:

* "paper": the shipped Table 1 (analysis/data/table1.csv). Its FLOPs are
  Table 1's column, whose unit the paper does not state; its speed is the
  paper's steps/s on 16 TPU-v3 chips.
* "study": records of a `launch.study` run. Its FLOPs are what the study
  writes: mtf_arch/flops.py's count from the lowered Mesh-TF graph (matmuls
  plus the one-hot lookups Mesh-TF lowers to matmuls) of one forward pass of
  one sequence at the study's lengths -- at the paper's sizes and lengths
  ~15x Table 1's column, so never "Table 1 units". Its speed is each cell's
  own pretraining steps/s on the study's machine (CPU, the study's batch).
* "other": any other file; units are whatever that file holds.

Downstream scores of the offline proxy suite (glue_proxy, superglue_proxy,
squad_proxy; mtf_arch/proxy_tasks.py) are named as proxies everywhere.
"""

import dataclasses
import json
import os
import re

from analysis import records

SCORES = {
    "neg_log_ppl": "Negative log-perplexity (upstream)",
    "glue": "GLUE",
    "superglue": "SuperGLUE",
    "squad": "SQuAD",
    "glue_proxy": "GLUE proxy (offline paraphrase task, not GLUE)",
    "superglue_proxy": "SuperGLUE proxy (offline RTE task, not SuperGLUE)",
    "squad_proxy": "SQuAD proxy (offline QA task, not SQuAD)",
}
DOWNSTREAM = "Downstream (mean of GLUE, SuperGLUE, SQuAD)"
DOWNSTREAM_PROXY = ("Downstream proxy (mean of the 3 offline proxies;\n"
                    "not GLUE, SuperGLUE or SQuAD)")
_FLOPS = {
    "paper": ("FLOPs (Table 1's column)",
              "FLOPs: Table 1's column (the paper does not state its "
              "unit)."),
    "study": ("FLOPs per sequence (mtf_arch/flops.py, not Table 1's unit)",
              "FLOPs: counted by mtf_arch/flops.py from the lowered Mesh-TF "
              "graph, one forward pass of one sequence at %s (matmuls and "
              "one-hot lookups); at the paper's sizes and 512/114 tokens "
              "this count is ~15x Table 1's column, so it is not Table 1's "
              "unit."),
    "other": ("FLOPs (unit of the input)",
              "FLOPs: in the unit of the input records."),
}
_SPEED = {
    "paper": ("Speed (Table 1, steps/s, 16 TPU-v3 chips)",
              "Throughput: Table 1's speed column (steps/s on the paper's "
              "16 TPU-v3 chips)."),
    "study": ("Pretraining steps/s (CPU, this study's machine)",
              "Throughput: each cell's own pretraining steps/s, measured on "
              "the study's machine (CPU, its cores shared by the cells run "
              "side by side)%s; not Table 1's TPU speed."),
    "other": ("Throughput (steps/s, as in the input)",
              "Throughput: steps/s as given in the input records."),
}


@dataclasses.dataclass
class Labels:
  """The words of one analysis.

  Attributes:
    origin: "paper", "study" or "other".
    proxy: whether the downstream scores are the offline proxies.
    flops, speed: short axis labels.
    notes: one sentence per unit, for figure footnotes and report.md.
  """
  origin: str
  proxy: bool
  flops: str
  speed: str
  notes: list

  def axis(self, column):
    """The axis label of a table column (or "downstream")."""
    if column == "flops":
      return self.flops
    if column == "speed_steps_per_s":
      return self.speed
    if column == "params":
      return "Parameters"
    if column == "downstream":
      return DOWNSTREAM_PROXY if self.proxy else DOWNSTREAM
    return SCORES.get(column, column)

  def brief(self, column):
    """A shorter axis label for small panels (the footnote says the rest)."""
    if column == "downstream" and self.proxy:
      return "Downstream proxy (offline, not GLUE)"
    return self.axis(column)

  def short(self, column):
    """A one-line name of a column (titles, file names stay as they are)."""
    return self.axis(column).replace(";\n", "; ").replace("\n", " ")


def study_spec(results):
  """The `spec` of study.json beside a results file or in a study folder."""
  folder = results if os.path.isdir(results) else os.path.dirname(results)
  path = os.path.join(folder, "study.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f).get("spec")
  except (OSError, ValueError, AttributeError):
    return None


def _batch(spec):
  """'batch 16 x 64 input tokens' from a study spec, or ''."""
  sizes = [
      re.match(r"\s*utils\.run\.batch_size\s*=\s*(\d+)", p)
      for p in spec.get("gin_params", [])
  ]
  sizes = [m.group(1) for m in sizes if m]
  lengths = spec.get("sequence_length") or {}
  text = "batch %s" % sizes[-1] if sizes else ""
  if text and lengths.get("inputs"):
    text += " x %s input tokens" % lengths["inputs"]
  return text


def origin_of(path, loaded):
  """"paper", "study" or "other" for records loaded from `path`."""
  if os.path.abspath(path) == os.path.abspath(records.PAPER_TABLE1):
    return "paper"
  flops_sources = {r["source"] for r in loaded if r["metric"] == "flops"}
  if flops_sources == {"graph"} or (not flops_sources and study_spec(path)):
    return "study"
  return "other"


def describe(table, origin, spec=None):
  """Labels for a table of the given origin (spec: the study's, if any)."""
  from analysis import fit  # pylint: disable=g-import-not-at-top
  _, proxy = fit.downstream_columns(table)
  flops, flops_note = _FLOPS[origin]
  speed, speed_note = _SPEED[origin]
  if origin == "study":
    lengths = (spec or {}).get("sequence_length") or {}
    flops_note %= ("%s input / %s target tokens" %
                   (lengths["inputs"], lengths["targets"])
                   if "inputs" in lengths and "targets" in lengths else
                   "the study's sequence lengths")
    batch = _batch(spec or {})
    speed_note %= (", " + batch) if batch else ", at the study's batch"
  notes = [flops_note, speed_note]
  if proxy:
    notes.append("Downstream: the offline proxy suite (mtf_arch/proxy_tasks."
                 "py), scored as glue_proxy, superglue_proxy, squad_proxy; "
                 "these are not GLUE, SuperGLUE or SQuAD scores.")
  return Labels(origin, proxy, flops, speed, notes)

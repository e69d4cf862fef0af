"""The paper's Table 1 (../shared/paper/table1.csv), shipped in analysis/."""

import csv
import os

TABLE1 = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "analysis",
    "data", "table1.csv")


def parse_count(text):
  """'16M' -> 16e6, '2.9B' -> 2.9e9."""
  scale = {"M": 1e6, "B": 1e9}[text[-1]]
  return float(text[:-1]) * scale


def table1_params(model):
  """{size: params} for a Table 1 model name, e.g. 'Transformer'."""
  with open(TABLE1) as f:
    return {
        row["size"]: parse_count(row["params"])
        for row in csv.DictReader(f)
        if row["model"] == model
    }

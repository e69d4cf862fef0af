"""analysis/: records, Table 2 slopes, figures, crossovers and the CLI.

Slopes are checked on synthetic data with known slopes; figures are built
from the paper's Table 1 and inspected through matplotlib's objects; bad
results files must name the file and line or row.
"""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis import crossover
from analysis import figures
from analysis import fit
from analysis import labels as labels_lib
from analysis import records

PAPER_MODELS = 12


def _paper():
  return records.to_table(records.load(records.PAPER_TABLE1))


def _synthetic(slopes,
               sizes=("Tiny", "Small", "Base", "Large", "XL"),
               noise=0.0,
               seed=0):
  """Records whose U, D vs log10 FLOPs/params follow known slopes.

  slopes: {model: (a_FU, a_FD)}; params = 10 x FLOPs (so a_P = a_F).
  """
  rng = np.random.RandomState(seed)
  out = []
  for model, (a_fu, a_fd) in slopes.items():
    for i, size in enumerate(sizes):
      log_f = 0.1 + 0.5 * i
      u = -3 + a_fu * log_f + noise * rng.randn()
      d = 50 + a_fd * log_f + noise * rng.randn()
      # Three different scores whose mean is d: a downstream mean weighted
      # otherwise (or one score alone) has another slope.
      values = {
          "flops": 10**log_f,
          "params": 10**(log_f + 1),
          "neg_log_ppl": u,
          "glue": d + 10 + 2 * log_f,
          "superglue": d - 4 - 5 * log_f,
          "squad": d - 6 + 3 * log_f
      }
      out += [
          dict(
              model=model,
              size=size,
              metric=k,
              value=v,
              step=None,
              source="synthetic",
              protocol="standard") for k, v in values.items()
      ]
  return records.to_table(out)


def test_fitted_slopes_recover_known_slopes():
  table = _synthetic({"A": (0.5, 10.0), "B": (-0.2, 4.0)})
  frame, missing = fit.slopes_table(table, n_boot=200)
  assert not missing
  a, b = frame.set_index("model").loc["A"], frame.set_index("model").loc["B"]
  for row, (fu, fd) in ((a, (0.5, 10.0)), (b, (-0.2, 4.0))):
    assert row["alpha_F,U"] == pytest.approx(fu)
    assert row["alpha_F,D"] == pytest.approx(fd)
    assert row["alpha_P,U"] == pytest.approx(fu)
    assert row["alpha_P,D"] == pytest.approx(fd)
    assert row["alpha_U,D"] == pytest.approx(fd / fu)
    assert row["n_F,U"] == 5
    # Exact lines: every resample gives the same slope.
    assert row["lo_F,U"] == pytest.approx(fu) == row["hi_F,U"]


def test_bootstrap_interval_covers_the_true_slope_with_noise():
  x = np.linspace(0, 2, 12)
  y = 0.7 * x + np.random.RandomState(1).randn(12) * 0.05
  lo, hi = fit.bootstrap_ci(x, y, n_boot=1000)
  assert lo < 0.7 < hi and hi - lo < 0.2
  assert np.isnan(fit.bootstrap_ci(x[:2], y[:2])[0])


def test_single_size_model_is_reported_not_dropped(tmp_path):
  table = _synthetic({"A": (0.5, 10.0)})
  lone = _synthetic({"Lone": (0.1, 1.0)}, sizes=("Base",))
  frame, missing = fit.slopes_table(pd.concat([table, lone]), n_boot=50)
  assert "Lone" in list(frame["model"])
  assert np.isnan(frame.set_index("model").loc["Lone", "alpha_F,U"])
  assert any(
      m.startswith("Lone: alpha_F,U not fitted (1 usable point)")
      for m in missing)
  csv = tmp_path / "partial.csv"
  csv.write_text("model,size,flops,neg_log_ppl\nA,Tiny,1,-3\nA,Base,10,-2\n"
                 "A,Large,20,\nLone,Base,5,-2.5\n")
  report = "\n".join(
      cli.run(str(csv), str(tmp_path / "out"), n_boot=20, log=lambda s: None))
  assert "Lone: only Base" in report
  assert "A Large (standard): no neg_log_ppl" in report
  assert "no record has params, speed_steps_per_s, glue" in report
  assert "A Tiny (standard)" not in report


def test_paper_table_is_read_completely():
  table = _paper()
  assert len(table) == 54 and table["model"].nunique() == PAPER_MODELS
  row = table[(table["model"] == "Switch Transformer")
              & (table["size"] == "XL")]
  assert row["params"].item() == pytest.approx(29.6e9)
  assert list(
      table[table["model"] == "ALBERT"]["size"]) == ["Small", "Base", "Large"]
  frame, missing = fit.slopes_table(table, n_boot=100)
  assert not missing
  albert = frame.set_index("model").loc["ALBERT"]
  assert albert["alpha_F,D"] < 0  # "ALBERT scales (trends) negatively"
  assert albert["n_F,D"] == 3


@pytest.mark.parametrize("text, needle", [
    ('{"model": "T", "size": "Base", "metric": "glue", "value": 1}\n{bad\n',
     ":2: not valid JSON"),
    ('\n{"model": "T", "size": "Base", "metric": "glue"}\n',
     ":2: missing field(s) value"),
    ('{"model": "T", "size": "Base", "metric": "bleu", "value": 1}\n',
     ":1: unknown metric 'bleu'"),
    ('{"model": "T", "size": "Base", "metric": "glue", "value": "x"}\n',
     ":1: value must be a number"),
    ('{"model": "T", "size": "B", "metric": "glue", "value": 1, "step": 1.5}\n',
     ":1: step must be an integer"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, text, needle):
  path = tmp_path / "results.jsonl"
  path.write_text(text)
  with pytest.raises(records.RecordError) as e:
    records.load(str(path))
  assert str(path) + needle in str(e.value)


@pytest.mark.parametrize("text, needle", [
    ("model,size,flops\nT,Base,1.0\nT,Large,lots\n",
     ":row 3: flops is not a number: 'lots'"),
    ("model,size,flops\nT,Base,1.0,7\n", ":row 2: expected 3 cells"),
    ("model,flops\nT,1.0\n", ": header lacks column(s) size"),
])
def test_malformed_csv_names_file_and_row(tmp_path, text, needle):
  path = tmp_path / "table.csv"
  path.write_text(text)
  with pytest.raises(records.RecordError) as e:
    records.load(str(path))
  assert str(path) + needle in str(e.value)


def test_cli_reports_a_malformed_file(tmp_path, capsys):
  path = tmp_path / "r.jsonl"
  path.write_text("[1, 2]\n")
  with pytest.raises(SystemExit) as e:
    cli.main(["--results", str(path), "--out", str(tmp_path / "o")])
  assert "analysis: error: %s:1: expected a JSON object" % path in str(
      e.value.code)


def test_latest_step_wins_and_launch_results_are_read(tmp_path):
  path = tmp_path / "results.json"
  path.write_text(
      json.dumps({
          "arch": "transformer",
          "size": "tiny",
          "neg_log_perplexity": {
              "100": -5.0,
              "300": -4.0,
              "200": -4.5
          }
      }))
  table = records.to_table(records.load(str(tmp_path)))
  assert list(table["model"]) == ["Transformer"]
  assert list(table["size"]) == ["Tiny"]
  assert table["neg_log_ppl"].item() == -4.0


def _paper_labels():
  return labels_lib.describe(_paper(), "paper")


def test_figure1_content():
  labels = _paper_labels()
  fig = figures.figure1(_paper(), labels=labels).figure
  ax_up, ax_down = fig.axes
  assert ax_up.get_xlabel() == "FLOPs (Table 1's column)"
  assert ax_up.get_xscale() == "log"
  assert ax_up.get_ylabel() == labels.axis("neg_log_ppl")
  assert ax_down.get_ylabel() == "Downstream (mean of GLUE, SuperGLUE, SQuAD)"
  series = [c.get_label() for c in ax_up.collections]
  assert len(series) == PAPER_MODELS and "MLP-Mixer" in series
  frontier = [l for l in ax_up.lines if l.get_label() == "Pareto frontier"][0]
  y = frontier.get_ydata()
  assert np.all(np.diff(y) > 0) and y[-1] == pytest.approx(-1.45)  # MoS XL
  sizes = ax_up.collections[series.index("Switch Transformer")].get_sizes()
  assert sizes.max() > ax_up.collections[0].get_sizes().max()  # area ~ params
  figures.plt.close(fig)


@pytest.mark.parametrize("metric", ["neg_log_ppl", "downstream"])
def test_figures_2_and_3_one_panel_per_model(metric):
  labels = _paper_labels()
  fig = figures.figure_vs_vanilla(_paper(), metric, "t", labels).figure
  panels = [ax for ax in fig.axes if ax.get_visible()]
  assert len(panels) == PAPER_MODELS - 1
  table = fit.with_downstream(_paper())
  for ax in panels:
    names = [l.get_label() for l in ax.lines]
    assert names == ["Transformer", ax.get_title()]
    assert ax.get_ylabel() == labels.axis(metric)
    for line in ax.lines:  # the drawn curve is the table's, in FLOPs order
      rows = table[table["model"] == line.get_label()].sort_values("flops")
      np.testing.assert_allclose(line.get_xdata(), rows["flops"])
      np.testing.assert_allclose(line.get_ydata(), rows[metric])
  figures.plt.close(fig)


def test_tradeoff_figure_axes_and_series():
  labels = _paper_labels()
  fig = figures.figure_tradeoff(_paper(), "superglue", 7, labels=labels).figure
  assert [ax.get_xlabel() for ax in fig.axes] == [
      "FLOPs (Table 1's column)", "Parameters",
      "Speed (Table 1, steps/s, 16 TPU-v3 chips)"
  ]
  table = _paper()
  for ax, x_col in zip(fig.axes, figures.COST_AXES):
    assert len(ax.lines) == PAPER_MODELS
    assert ax.get_ylabel() == "SuperGLUE"
    for line in ax.lines:
      rows = table[table["model"] == line.get_label()].sort_values(x_col)
      np.testing.assert_allclose(line.get_xdata(), rows[x_col])
      np.testing.assert_allclose(line.get_ydata(), rows["superglue"])
  assert "Figure 7" in fig._suptitle.get_text()
  figures.plt.close(fig)


def test_crossover_of_two_known_lines():
  rows = []
  for model, ys in (("A", (1.0, 2.0, 3.0)), ("B", (2.0, 2.0, 2.0))):
    for size, f, y in zip(("Tiny", "Small", "Base"), (1, 10, 100), ys):
      rows += [
          dict(model=model, size=size, metric="flops", value=f),
          dict(model=model, size=size, metric="neg_log_ppl", value=y)
      ]
  table = records.to_table([records.validate(r, "t") for r in rows])
  cross = crossover.crossovers(table, "neg_log_ppl")
  assert cross["flops"].item() == pytest.approx(10.0)
  assert (cross["leader_below"].item(), cross["leader_above"].item()) == ("B",
                                                                          "A")
  best = crossover.best_by_region(table, "neg_log_ppl")
  assert list(best["best"]) == ["B", "A"]


def test_cli_writes_tables_and_figures_from_the_paper(tmp_path):
  out = tmp_path / "out"
  cli.main(
      ["--results", records.PAPER_TABLE1, "--out",
       str(out), "--n_boot", "50"])
  for n in (1, 2, 3, 6, 7, 8, 9):
    assert (out / "figures" / ("figure%d.png" % n)).stat().st_size > 1000
    assert (out / "figures" / ("figure%d.pdf" % n)).exists()
  assert not (out / "figures" / "figure4.png").exists()
  report = (out / "report.md").read_text()
  assert "Figure 4 not written: no records with protocol 'depth'" in report
  assert "Figure 5 not written: no records with protocol 'width'" in report
  table2 = pd.read_csv(out / "table2.csv")
  assert len(table2) == PAPER_MODELS
  assert "alpha_U,D" in (out / "table2.md").read_text()

"""analysis/ as `make demo` uses it: proxy-only study records, a study folder.

The records are synthetic (no training) but in the study runner's format
(launch/study.py's cell_records plus each cell's pretraining steps/s): the
offline proxies instead of GLUE/SuperGLUE/SQuAD, FLOPs from the graph
counter, a study folder with study.json, per-cell record files and an
earlier analysis/ output. Figures are checked through the data of the
matplotlib objects they draw, against the table.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis import figures
from analysis import fit
from analysis import labels as labels_lib
from analysis import records

MODELS = ("Transformer", "GLU-Transformer", "Performer", "ALBERT")
SIZES = ("micro_1", "micro_2", "micro_3")
PROXIES = ("glue_proxy", "superglue_proxy", "squad_proxy")
SPEC = {
    "name": "fake",
    "gin_params": ["utils.run.batch_size = 16", "dropout_rate = 0.0"],
    "sequence_length": {
        "inputs": 64,
        "targets": 14
    },
}


def cell_values(m, i):
  """Known values of model number m at size number i (linear in i)."""
  return {
      "flops": 1.5e7 * 4**i * (1 + 0.1 * m),
      "params": 2e5 * 3**i * (1 + 0.05 * m),
      "neg_log_ppl": -7.0 + 0.1 * (m * 7 % 5) + (0.6 + 0.08 * (m * 3 % 4)) * i,
      "glue_proxy": 50.0 + m * 5 % 7 + (3 + m % 3) * i,
      "superglue_proxy": 45.0 - m % 4 + (2 + 0.5 * (m % 2)) * i,
      "squad_proxy": 1.0 + 0.5 * (m % 3) + 3 * i,
      "speed_steps_per_s": 9.0 / 1.7**i / (1 + 0.2 * m),
  }


def study_records(models=MODELS, sizes=SIZES, protocol="standard", speed=True):
  """Records a study writes: distinct, known values per (model, size)."""
  out = []
  for m, model in enumerate(models):
    for i, size in enumerate(sizes):
      values = cell_values(m, i)
      if not speed:
        del values["speed_steps_per_s"]
      for metric, value in values.items():
        step = None if metric in ("flops", "params") else 110
        out.append({
            "model": model,
            "size": size,
            "metric": metric,
            "value": value,
            "step": step,
            "source": "graph" if step is None else "runs/fake/cells/x",
            "protocol": protocol,
        })
  return out


def write_study(folder, recs, spec=SPEC):
  """A study folder as launch.study leaves it (after an earlier analysis)."""
  os.makedirs(os.path.join(folder, "cells", "transformer-micro_1"))
  os.makedirs(os.path.join(folder, "analysis"))
  with open(os.path.join(folder, "study.json"), "w") as f:
    json.dump({"spec": spec, "mtf_arch_version": "test"}, f)
  with open(os.path.join(folder, "results.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in recs)
  cell = os.path.join(folder, "cells", "transformer-micro_1")
  with open(os.path.join(cell, "records.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in recs[:3])
  # The evaluation's detail records: not in analysis's schema.
  with open(os.path.join(cell, "eval_records.jsonl"), "w") as f:
    f.write(
        json.dumps({
            "model": "Transformer",
            "size": "micro_1",
            "step": 110,
            "task": "mtf_arch_proxy_qa",
            "metric": "em",
            "value": 1.0
        }) + "\n")
  # What an earlier analysis wrote, a CSV not in Table 1's columns.
  with open(os.path.join(folder, "analysis", "best_downstream.csv"), "w") as f:
    f.write("x_lo,x_hi,best,value_lo,value_hi\n1,2,Transformer,1,2\n")
  for name in ("report.md", "table2.csv"):
    with open(os.path.join(folder, "analysis", name), "w") as f:
      f.write("old\n")
  return folder


def _table(recs=None):
  return records.to_table(
      [records.validate(r, "t") for r in (recs or study_records())])


def _labels(table):
  return labels_lib.describe(table, "study", SPEC)


def _line(ax, label):
  lines = [l for l in ax.lines if l.get_label() == label]
  assert len(lines) == 1, [l.get_label() for l in ax.lines]
  return lines[0]


def _expected(table, model, x_col, y_col):
  rows = table[(table["model"] == model)
               & (table["protocol"] == "standard")].sort_values(x_col)
  return rows[x_col].values, rows[y_col].values


def _assert_no_overlapping_tick_labels(fig):
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  for ax in fig.axes:
    if not ax.get_visible():
      continue
    for axis in (ax.xaxis, ax.yaxis):
      boxes = [
          t.get_window_extent(renderer)
          for t in axis.get_ticklabels(which="both")
          if t.get_visible() and t.get_text()
      ]
      for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), (ax.get_title(), [
            t.get_text() for t in axis.get_ticklabels(which="both")
        ])


def test_downstream_proxy_is_the_mean_of_three_different_proxies():
  table = fit.with_downstream(_table())
  row = table[(table["model"] == "Performer")
              & (table["size"] == "micro_2")].iloc[0]
  # Performer is model 2, micro_2 size 1: GLU 50 + 3 + 5, SuperGLUE
  # 45 - 2 + 2, SQuAD 1 + 1 + 3; any other weighting (or one score) differs.
  assert row["downstream"] == pytest.approx((58.0 + 45.0 + 5.0) / 3)


def test_proxy_study_slopes_are_named_as_proxies_and_recovered():
  frame, missing = fit.slopes_table(_table(), n_boot=50)
  assert not missing
  assert "alpha_F,Dproxy" in frame and "alpha_F,D" not in frame
  frame = frame.set_index("model")
  for m, model in enumerate(MODELS):
    row = frame.loc[model]
    # Per size: FLOPs x4, params x3, U and each proxy by a known step.
    du = 0.6 + 0.08 * (m * 3 % 4)
    dd = ((3 + m % 3) + (2 + 0.5 * (m % 2)) + 3) / 3
    assert row["alpha_F,U"] == pytest.approx(du / np.log10(4))
    assert row["alpha_F,Dproxy"] == pytest.approx(dd / np.log10(4))
    assert row["alpha_P,Dproxy"] == pytest.approx(dd / np.log10(3))
    assert row["alpha_U,Dproxy"] == pytest.approx(dd / du)


def test_labels_name_proxies_and_whose_units():
  labels = _labels(_table())
  assert labels.proxy
  for column in ("glue_proxy", "superglue_proxy", "squad_proxy", "downstream"):
    text = labels.axis(column)
    assert "proxy" in text and "not " in text, text
  assert "Table 1" not in labels.flops.replace("not Table 1's unit", "")
  assert "mtf_arch/flops.py" in labels.flops
  assert "64 input / 14 target tokens" in labels.notes[0]
  assert "CPU" in labels.speed and "batch 16" in labels.notes[1]
  paper = labels_lib.describe(
      records.to_table(records.load(records.PAPER_TABLE1)), "paper")
  assert not paper.proxy and paper.flops == "FLOPs (Table 1's column)"
  assert "TPU" in paper.speed


def test_figure1_points_and_labels_match_the_table():
  table = _table()
  labels = _labels(table)
  drawn = figures.figure1(table, labels=labels)
  fig = drawn.figure
  up, down = fig.axes[:2]
  assert up.get_xlabel() == labels.flops and up.get_xscale() == "log"
  assert "proxy" in down.get_ylabel()
  wide = fit.with_downstream(table)
  for ax, metric in ((up, "neg_log_ppl"), (down, "downstream")):
    for model in MODELS:
      [points] = [c for c in ax.collections if c.get_label() == model]
      rows = wide[wide["model"] == model]
      np.testing.assert_allclose(points.get_offsets(), rows[["flops",
                                                             metric]].values)
  _assert_no_overlapping_tick_labels(fig)
  figures.plt.close(fig)


@pytest.mark.parametrize("metric", ["neg_log_ppl", "downstream"])
def test_figures_2_and_3_draw_each_models_curve_and_the_vanilla(metric):
  table = _table()
  wide = fit.with_downstream(table)
  drawn = figures.figure_vs_vanilla(table, metric, "Figure x", _labels(table))
  panels = [ax for ax in drawn.figure.axes if ax.get_visible()]
  assert [ax.get_title() for ax in panels] == list(MODELS[1:])
  for ax in panels:
    for model in ("Transformer", ax.get_title()):
      x, y = _expected(wide, model, "flops", metric)
      line = _line(ax, model)
      np.testing.assert_allclose(line.get_xdata(), x)
      np.testing.assert_allclose(line.get_ydata(), y)
  _assert_no_overlapping_tick_labels(drawn.figure)
  figures.plt.close(drawn.figure)


@pytest.mark.parametrize("number, metric", [(6, "neg_log_ppl"),
                                            (7, "superglue_proxy"),
                                            (8, "glue_proxy"),
                                            (9, "squad_proxy")])
def test_tradeoff_figures_draw_the_proxies_and_the_measured_speed(
    number, metric):
  table = _table()
  labels = _labels(table)
  drawn = figures.figure_tradeoff(
      table, figures.TRADEOFF[number], number, labels=labels)
  assert not drawn.notes
  axes = drawn.figure.axes
  assert [ax.get_xlabel() for ax in axes
         ] == [labels.flops, "Parameters", labels.speed]
  for ax, x_col in zip(axes, figures.COST_AXES):
    assert ax.get_ylabel() == labels.axis(metric)
    for model in MODELS:
      x, y = _expected(table, model, x_col, metric)
      order = np.argsort(x)
      line = _line(ax, model)
      np.testing.assert_allclose(line.get_xdata(), x[order])
      np.testing.assert_allclose(line.get_ydata(), y[order])
  title = drawn.figure._suptitle.get_text()
  assert title == "Figure %d: quality-cost trade-off, %s" % (
      number, labels.short(metric))
  assert ("proxy" in title) == (metric != "neg_log_ppl")
  _assert_no_overlapping_tick_labels(drawn.figure)
  figures.plt.close(drawn.figure)


def test_figure_without_data_is_not_drawn_and_panels_without_are_named():
  table = _table(study_records(speed=False))
  drawn = figures.figure_tradeoff(table, "glue", 8, labels=_labels(table))
  assert len(drawn.figure.axes) == 2  # no throughput panel
  assert any("Pretraining steps/s" in n for n in drawn.notes)
  figures.plt.close(drawn.figure)
  upstream_only = [r for r in study_records() if r["metric"] not in PROXIES]
  table = _table(upstream_only)
  assert figures.figure_tradeoff(table, "squad", 9).figure is None
  assert figures.figure_protocol(table, "depth", 4).figure is None


def test_depth_and_width_records_build_figures_4_and_5():
  sizes = {
      "depth": ["base-num_layers%d" % n for n in (2, 4, 6)],
      "width": ["base-d_ff%d" % n for n in (64, 128, 256)]
  }
  recs = []
  for protocol in ("depth", "width"):
    recs += study_records(MODELS[:2], sizes[protocol], protocol, speed=False)
  table = _table(recs)
  wide = fit.with_downstream(table)
  for number, protocol in ((4, "depth"), (5, "width")):
    drawn = figures.figure_protocol(table, protocol, number, _labels(table))
    up, down = drawn.figure.axes
    for ax, metric in ((up, "neg_log_ppl"), (down, "downstream")):
      for model in MODELS[:2]:
        rows = wide[(wide["model"] == model)
                    & (wide["protocol"] == protocol)].sort_values("flops")
        assert len(rows) == 3
        line = _line(ax, model)
        np.testing.assert_allclose(line.get_xdata(), rows["flops"])
        np.testing.assert_allclose(line.get_ydata(), rows[metric])
      notes = sorted({t.get_text() for t in ax.texts})
      assert notes == (["L=2", "L=4", "L=6"] if protocol == "depth" else
                       ["d_ff=128", "d_ff=256", "d_ff=64"])
    figures.plt.close(drawn.figure)


def test_study_folder_is_read_as_its_results_only(tmp_path):
  recs = study_records()
  folder = write_study(str(tmp_path / "fake"), recs)
  assert records.results_files(folder) == [
      os.path.join(folder, "results.jsonl")
  ]
  assert len(records.load(folder)) == len(recs)
  # A folder above the study reads it the same way.
  assert len(records.load(str(tmp_path))) == len(recs)


def test_cli_on_a_study_folder_writes_every_figure_with_proxy_labels(
    tmp_path, capsys):
  folder = write_study(str(tmp_path / "fake"), study_records())
  out = tmp_path / "fake" / "analysis"
  cli.main(["--results", folder, "--out", str(out), "--n_boot", "20"])
  for n in (1, 2, 3, 6, 7, 8, 9):
    assert (out / "figures" / ("figure%d.png" % n)).stat().st_size > 1000
  report = (out / "report.md").read_text()
  assert "Panels left out" not in report  # throughput panels have data
  for n in (4, 5):
    assert not (out / "figures" / ("figure%d.png" % n)).exists()
    assert "Figure %d not written: no records with protocol" % n in report
  assert "mean of GLUE, SuperGLUE, SQuAD" not in report
  assert "Table 1 units" not in report and "not Table 1's unit" in report
  assert "not GLUE, SuperGLUE or SQuAD" in report
  assert "alpha_F,Dproxy" in (out / "table2.md").read_text()
  table = pd.read_csv(out / "table.csv")
  assert len(table) == len(MODELS) * len(SIZES)  # the cells' files not read
  best = pd.read_csv(out / "best_downstream_proxy.csv")
  assert set(best["best"]) <= set(MODELS) and len(best)
  assert not (out / "best_downstream.csv").exists()  # the earlier one
  # What the study runner prints from it (launch/study.py).
  from launch import study  # pylint: disable=g-import-not-at-top
  capsys.readouterr()
  study.print_best(str(out))
  printed = capsys.readouterr().out
  assert "best architecture by compute (downstream_proxy)" in printed
  # The study's results file, as make demo passes it, reads the same.
  from_file, labels = cli.load(os.path.join(folder, "results.jsonl"))
  from_folder, folder_labels = cli.load(folder)
  pd.testing.assert_frame_equal(from_file, from_folder)
  assert labels == folder_labels and labels.origin == "study"


def test_figures_without_data_are_not_written_and_named_in_the_report(tmp_path):
  out = tmp_path / "out"
  os.makedirs(out / "figures")
  (out / "figures" / "figure9.png").write_text("from an earlier run")
  upstream = [
      r for r in study_records()
      if r["metric"] not in PROXIES + ("speed_steps_per_s",)
  ]
  path = tmp_path / "results.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in upstream))
  cli.main(["--results", str(path), "--out", str(out), "--n_boot", "20"])
  report = (out / "report.md").read_text()
  written = sorted(p.name for p in (out / "figures").glob("*.png"))
  assert written == ["figure1.png", "figure2.png", "figure6.png"]
  skipped = report.split("Not written (no data):")[1].split("##")[0]
  for n in (3, 4, 5, 7, 8, 9):
    assert "Figure %d not written" % n in skipped
  panels = report.split("Panels left out (no data):")[1].split("##")[0]
  assert "Figure 1: Downstream" in panels
  assert "Figure 6: Pretraining steps/s" in panels


def test_overlay_flops_are_rescaled_to_the_paper_or_left_out():
  paper = records.to_table(records.load(records.PAPER_TABLE1))
  paper_labels = labels_lib.describe(paper, "paper")
  # A real-data study at paper sizes: GLUE etc. instead of the proxies.
  real = study_records(sizes=("Tiny", "Small"))
  for r in real:
    r["metric"] = r["metric"].replace("_proxy", "")
  ours = _table(real)
  ours_labels = _labels(ours)
  # Our Transformer Tiny/Small FLOPs are 1.5e7 and 6e7; Table 1's 1.21, 3.70.
  scale = figures.overlay_scale(paper, fit.with_downstream(ours), False)
  assert scale == pytest.approx(np.median([1.21 / 1.5e7, 3.70 / 6e7]))
  drawn = figures.figure_tradeoff(paper, "glue", 8, (ours_labels, ours),
                                  paper_labels)
  flops_ax, params_ax, speed_ax = drawn.figure.axes
  [cross] = [c for c in flops_ax.collections if c.get_label() == "ours: ALBERT"]
  albert = ours[ours["model"] == "ALBERT"].sort_values("flops")
  np.testing.assert_allclose(cross.get_offsets()[:, 0], albert["flops"] * scale)
  np.testing.assert_allclose(cross.get_offsets()[:, 1], albert["glue"])
  assert any(c.get_label() == "ours: ALBERT" for c in params_ax.collections)
  # CPU steps/s are not drawn on Table 1's TPU speed axis.
  assert not any(
      c.get_label().startswith("ours:") for c in speed_ax.collections)
  footnote = drawn.figure.texts[-1].get_text()
  assert "overlay FLOPs x" in footnote and "overlay left out" in footnote
  figures.plt.close(drawn.figure)
  # Without a Transformer at a shared size, no FLOPs can be converted.
  micro = _table()
  drawn = figures.figure1(paper, (ours_labels, micro), paper_labels)
  assert not any(c.get_label().startswith("ours:")
                 for c in drawn.figure.axes[0].collections)
  figures.plt.close(drawn.figure)


@pytest.mark.parametrize("source", ["paper", "study"])
def test_no_figure_has_overlapping_tick_labels(source):
  if source == "paper":
    table = records.to_table(records.load(records.PAPER_TABLE1))
    labels = labels_lib.describe(table, "paper")
  else:
    table = _table()
    labels = _labels(table)
  drawn = [d for _, d in cli.draw(table, labels) if d.figure is not None]
  assert len(drawn) == 7  # Figures 1-3 and 6-9
  for d in drawn:
    _assert_no_overlapping_tick_labels(d.figure)
    figures.plt.close(d.figure)


def test_log_ticks_are_sparse_decade_multiples():
  from analysis import axes  # pylint: disable=g-import-not-at-top
  assert axes.log_ticks(1.36e7,
                        5.5e8) == pytest.approx([2e7, 5e7, 1e8, 2e8, 5e8])
  assert axes.log_ticks(0.9, 120) == pytest.approx([1, 10, 100])
  assert axes.log_ticks(1.4e7, 1.6e7) == pytest.approx([1.4e7, 1.6e7])  # ends
  assert [axes._tick_text(v) for v in (2e7, 2.9e9, 0.5, 1500)
         ] == ["20M", "2.9B", "0.5", "1.5K"]

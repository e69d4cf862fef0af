"""The benchmark's pure logic (bench/stats.py): no model runs, no timing."""

import pytest

from bench import stats


def test_parse_steps_keeps_one_entry_per_line():
  lines = [
      (1.0, "INFO:tensorflow:Saving checkpoints for 0"),
      (20.5, "step, tf_loss[9.06931686][1]"),
      (25.5, "step, tf_loss[7.49871254][2]"),
      (28.0, "I1128 tpu_estimator.py:2391] global_step/sec: 0.40"),
      (30.0, "step, tf_loss[nan][2]"),  # racy step number: still a step
      (31.0, "hf step, loss[10.250000][0]"),
  ]
  steps = stats.parse_steps(lines)
  assert [t for t, _, _ in steps] == [20.5, 25.5, 30.0, 31.0]
  assert [s for _, s, _ in steps] == [1, 2, 2, 0]
  assert round(steps[0][2], 3) == 9.069 and steps[1][2] == 7.49871254
  assert steps[2][2] != steps[2][2]  # nan loss parsed
  assert steps[3][2] == 10.25


def test_steady_rate_counts_lines_after_skip():
  # Two slow warm-up steps, then one line every 0.5 s with racy numbers.
  steps = [(10.0, 0, 1.0), (14.0, 1, 1.0)]
  steps += [(20.0 + 0.5 * i, n, 1.0) for i, n in enumerate([2, 4, 4, 5, 7])]
  assert stats.steady_rate(steps, skip=2) == pytest.approx(2.0)
  assert stats.steady_rate(steps, skip=0) < 1.0
  assert stats.steady_rate(steps[:3], skip=2) is None  # one kept line


def test_summarize_median_and_spread():
  s = stats.summarize([2.0, 1.0, None, 4.0])
  assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 4.0, 3)
  assert s["spread"] == pytest.approx(1.5)
  assert stats.summarize([None])["median"] is None


def test_paired_ratios_pair_runs_in_order():
  assert stats.paired_ratios([2.0, 3.0, None], [1.0, 2.0, 5.0]) == [2.0, 1.5]
  assert stats.paired_ratios([1.0], [0.0]) == []


def test_read_size_matches_the_gin_size_files():
  text = ("# Tiny\n# d_kv: Table 3 lists 32\nnum_layers = 4\nd_model = 256\n"
          "d_ff = 1024  # comment\nnum_heads = 4\nd_kv = 64\n")
  assert stats.read_size(text) == {
      "num_layers": 4,
      "d_model": 256,
      "d_ff": 1024,
      "num_heads": 4,
      "d_kv": 64
  }
  with pytest.raises(ValueError, match="d_kv"):
    stats.read_size("num_layers = 4\nd_model = 2\nd_ff = 1\nnum_heads = 1\n")


def test_markdown_table_shape():
  table = stats.markdown_table(["a", "b"], [[1, stats.fmt(None)], [2, "x"]])
  assert table.splitlines() == [
      "| a | b |", "|---|---|", "| 1 | - |", "| 2 | x |"
  ]


def test_read_size_reads_the_repository_size_file():
  from tests.conftest import REPO
  with open("%s/gin/size/small.gin" % REPO) as f:
    assert stats.read_size(f.read()) == {
        "num_layers": 6,
        "d_model": 512,
        "d_ff": 2048,
        "num_heads": 8,
        "d_kv": 64
    }


def test_loss_agreement_compares_dtypes_against_the_float32_yardstick():
  from bench import run

  def r(dtype, rep, losses, side="mtf"):
    return {
        "size": "tiny",
        "side": side,
        "dtype": dtype,
        "rep": rep,
        "losses": losses
    }

  runs = [
      r("float32", 0, [9.0, 8.0, 7.0, 6.0]),
      r("float32", 1, [9.0, 8.1, 7.0, 6.2]),
      r("bfloat16", 0, [9.1, 8.0, 7.5, 6.0]),
      r("float32", 0, [9.0, 8.0], side="hf"),  # no bfloat16 run: no row
  ]
  (row,) = run.loss_agreement(runs)
  assert (row["size"], row["side"], row["steps"]) == ("tiny", "mtf", 4)
  assert abs(row["max_step_gap"] - 0.5) < 1e-9
  assert abs(row["float32_repeat_gap"] - 0.2) < 1e-9
  assert abs(row["float32_tail_loss"] - 6.55) < 1e-9  # median of 6.5, 6.6
  assert abs(row["bfloat16_tail_loss"] - 6.75) < 1e-9


def test_peak_fractions_are_against_each_frameworks_own_kernel():
  """A run faster than numpy's matmul but slower than TensorFlow's is under
  100% of both its own (tensorflow) peak and the best: the denominator that
  once gave 102% (numpy's) is not the Mesh-TF CLI's."""
  from bench import peak
  peaks = {"numpy": 236e9, "tensorflow": 442e9, "torch": 195e9}
  mtf = peak.fractions(240e9, peaks, "tensorflow")
  assert mtf["of_own_peak"] == pytest.approx(240 / 442)
  assert mtf["of_best_peak"] == pytest.approx(240 / 442)
  hf = peak.fractions(150e9, peaks, "torch")
  assert hf["of_own_peak"] == pytest.approx(150 / 195)
  assert hf["of_best_peak"] == pytest.approx(150 / 442)
  assert peak.fractions(1e9, {"numpy": 1e9}, "torch")["of_own_peak"] is None


def test_numpy_peak_names_its_blas_kernel(monkeypatch):
  from bench import peak
  from bench import run
  monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
  rec = peak.measure("numpy", n=128, repeats=2, threads=1)
  assert rec["flops_per_s"] > 0 and rec["openblas_coretype"] == "Haswell"
  assert rec["blas"] and all(b["internal_api"] for b in rec["blas"])
  report = {
      "matmul": {
          "start": {
              "numpy": rec
          },
          "end": {
              "numpy": rec
          }
      },
      "matmul_peaks": {
          "numpy": rec["flops_per_s"]
      }
  }
  line = run.peak_line(report)
  assert "numpy ran %s" % rec["blas"][0]["internal_api"] in line
  assert "OPENBLAS_CORETYPE=Haswell" in line
  with pytest.raises(ValueError, match="use one of tensorflow"):
    peak.measure("jax", n=8)

"""FLOPs counted from the lowered graph, against closed forms; speed; configs.

The vanilla Transformer's matmul FLOPs must equal the closed form exactly
(both count 2 x multiply-adds of the same contractions at static shapes), and
the one-hot lookups Mesh-TF lowers to matmuls must be exactly the embedding
and relative-bias lookups.
"""

import numpy as np
import pytest

from mtf_arch import flops
from mtf_arch import graph
from mtf_arch import params
from mtf_arch import registry


def _macros():
  return {
      m: graph.query("%" + m)
      for m in ("num_layers", "d_model", "d_ff", "num_heads", "d_kv")
  }


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_transformer_flops_match_closed_form(size):
  files = ["arch/transformer.gin", "size/%s.gin" % size]
  num_params, count = flops.forward_count(files)
  with graph.config(files + flops.ONE_SLICE):
    m = _macros()
  assert num_params == params.transformer_params(
      vocab_size=graph.T5_VOCAB_SIZE, **m)
  assert count.matmul_flops == flops.transformer_forward_flops(
      vocab_size=graph.T5_VOCAB_SIZE, **m)
  # One-hot lookups: encoder and decoder token embeddings, and the shared
  # relative-position bias (32 buckets) looked up in every self-attention
  # layer (encoder-decoder attention has none).
  vocab = params.padded_vocab(graph.T5_VOCAB_SIZE)
  embed = 2 * (512 + 114) * vocab * m["d_model"]
  bias = m["num_layers"] * 2 * (512 * 512 + 114 * 114) * 32 * (m["num_heads"])
  assert count.one_hot_flops == embed + bias
  assert count.elementwise_einsum_flops == 0
  assert count.matmul_flops + count.one_hot_flops == (
      flops.transformer_lowered_flops(vocab_size=graph.T5_VOCAB_SIZE, **m))


def test_flops_are_linear_in_batch():
  files = ["arch/transformer.gin", "size/test.gin"]
  lengths = {"inputs": 16, "targets": 8}
  _, one = flops.forward_count(files, sequence_length=lengths)
  _, three = flops.forward_count(files, sequence_length=lengths, batch_size=3)
  assert three.matmul_flops == 3 * one.matmul_flops


def test_count_ops_on_a_hand_built_graph():
  import tensorflow.compat.v1 as tf
  g = tf.Graph()
  with g.as_default():
    a = tf.zeros([2, 3, 5])
    w = tf.zeros([5, 7])
    tf.einsum("abc,cd->abd", a, w)  # 2*2*3*5*7 = 420
    tf.matmul(tf.zeros([4, 6]), tf.zeros([6, 9]))  # 2*4*6*9 = 432
    tf.einsum("ab,ab->ab", tf.zeros([4, 5]), tf.zeros([4, 5]))  # 20, no sum
    ids = tf.zeros([3], tf.int32)
    tf.einsum("ab,bc->ac", tf.one_hot(ids, 10), tf.zeros([10, 4]))  # 240
  count = flops.count_ops(g)
  assert count.matmul_flops == 420 + 432
  assert count.num_matmuls == 2
  assert count.elementwise_einsum_flops == 20
  assert count.one_hot_flops == 2 * 3 * 10 * 4


def test_speed_is_measured_on_a_tiny_config():
  from mtf_arch import speed
  rate = speed.train_steps_per_second(["arch/transformer.gin", "size/test.gin"],
                                      batch_size=2,
                                      sequence_length={
                                          "inputs": 16,
                                          "targets": 8
                                      },
                                      steps=2)
  assert np.isfinite(rate) and rate > 0


def test_configs_report_rows_and_errors():
  from analysis import configs
  good = registry.architectures()["transformer"]
  bad = good._replace(name="nope", gin_file="arch/does_not_exist.gin")
  rows = [configs.measure(good, "Tiny"), configs.measure(bad, "Tiny")]
  import pandas as pd
  frame = configs.add_paper(
      pd.DataFrame(rows, columns=configs.COLUMNS), configs.paper_table())
  ok, failed = frame.iloc[0], frame.iloc[1]
  assert ok["params"] == params.transformer_params(4, 256, 1024, 4, 64,
                                                   graph.T5_VOCAB_SIZE)
  assert ok["paper_flops"] == 1.21
  # The vanilla Transformer is its own reference: ratio 1, gap 0, both ways.
  assert ok["flops_ratio"] == pytest.approx(1.0, rel=1e-12)
  assert ok["paper_flops_ratio"] == 1.0
  assert ok["flops_gap_pct"] == pytest.approx(0.0, abs=1e-9)
  assert ok["v3_32_days"] == pytest.approx((2**19 + 10**5) / 38.4 / 86400)
  assert isinstance(failed["error"],
                    str) and "does_not_exist" in (failed["error"])
  assert "Transformer" in configs.to_markdown(frame)

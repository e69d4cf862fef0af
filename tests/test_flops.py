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


@pytest.mark.parametrize("arch", sorted(registry.architectures()))
def test_graph_count_equals_lowered_count(arch):
  """The mtf-level count (`graph_count`, which the fidelity test uses) is the
  lowered graph's, arch by arch; short of it only where a layer runs matmuls
  inside mtf.slicewise (`flops.SLICEWISE_MATMUL_ARCHS`)."""
  files = ["arch/%s.gin" % arch, "size/test.gin"]
  lengths = {"inputs": 16, "targets": 8}
  n_lowered, count = flops.forward_count(files, sequence_length=lengths)
  n, whole = flops.graph_count(files, sequence_length=lengths)
  assert n == n_lowered
  lowered = count.matmul_flops + count.one_hot_flops
  if arch in flops.SLICEWISE_MATMUL_ARCHS:
    assert 0 < lowered - whole < 0.01 * lowered
  else:
    assert whole == lowered


def test_repeated_flops_on_a_hand_built_graph():
  """Contractions no model-split dimension reaches count once per slice."""
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  mesh_shape = mtf.convert_to_shape("batch:2,model:4")
  rules = mtf.convert_to_layout_rules("batch:batch,d_ff:model")
  g = mtf.Graph()
  mesh = mtf.Mesh(g, "m")
  length, d_model = mtf.Dimension("length", 3), mtf.Dimension("d_model", 5)
  d_ff, d_out = mtf.Dimension("d_ff", 12), mtf.Dimension("d_out", 5)
  with tf.Graph().as_default():
    x = mtf.zeros(mesh, [mtf.Dimension("batch", 8), length, d_model])
    # d_ff over `model`: 2*8*3*5*12 = 2880, repeated by no slice.
    h = mtf.einsum([x, mtf.zeros(mesh, [d_model, d_ff])], _minus_last(x, d_ff))
    # d_model x d_model: nothing over `model`, so its 4 slices each compute
    # 2*8*3*5*5 = 1200 (3 x 1200 repeated); `batch` splits, not counted.
    mtf.einsum([x, mtf.zeros(mesh, [d_model, d_out])], _minus_last(x, d_out))
    # No batch dimension, nothing over `model`: 2*3*5*5 = 150, 3 x 150 more.
    mtf.einsum(
        [mtf.zeros(mesh, [length, d_model]),
         mtf.zeros(mesh, [d_model, d_out])], [length, d_out])
    mtf.einsum([h, h], h.shape)  # elementwise: not counted
    mtf.reduce_sum(h, output_shape=[length])  # one input: not counted
  whole, repeated = flops.mesh_einsum_flops(g, mesh_shape, rules)
  assert whole == 2880 + 1200 + 150
  assert repeated == 3 * 1200 + 3 * 150


def _minus_last(x, new_dim):
  return x.shape - x.shape.dims[-1:] + [new_dim]

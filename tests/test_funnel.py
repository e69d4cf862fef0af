"""Funnel Transformer: the encoder output is pooled, and so are its masks."""

import mesh_tensorflow as mtf
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import funnel
from mtf_arch import graph
from tests import mtf_run

FILES = [
    "arch/funnel_transformer.gin", "size/test.gin", "mesh/cpu_1.gin",
    "run/pretrain.gin"
]
IN_LEN, OUT_LEN = 16, 8


@pytest.mark.parametrize("num_layers,blocks", [(12, [4, 4, 4]), (24, [8, 8, 8]),
                                               (4, [2, 1, 1]), (6, [2, 2, 2]),
                                               (2, [1, 1])])
def test_even_block_sizes(num_layers, blocks):
  assert funnel.even_block_sizes(num_layers, 3) == blocks


def _encoder_outputs(num_layers,
                     inputs,
                     segmentation,
                     position,
                     params=(),
                     pools=None):
  """Runs the funnel model; returns the encoder's pooled sequence ids,
  positions and output, the pooled length, and the values of `pools` (a list
  of mtf tensor pairs that graph building fills, see _record_pools)."""
  batch = inputs.shape[0]
  with graph.config(FILES,
                    ["dropout_rate = 0.0",
                     "num_layers = %d" % num_layers] + list(params)):
    g = graph.ModelGraph(300, batch, {"inputs": IN_LEN, "targets": OUT_LEN})
    context = g.model.encoder.layer_stack.context
    pooled = [t for pair in (pools or []) for t in pair]
    with g.tf_graph.as_default():
      lowering, _, _ = graph.lower(g, [""])
      fetch = [
          lowering.export_to_tf_tensor(t) for t in
          [context.sequence_id, context.position, context.layer_outputs[-1]] +
          pooled
      ]
      feed = {
          g.features["inputs"]:
              inputs,
          g.features["inputs_segmentation"]:
              segmentation,
          g.features["inputs_position"]:
              position,
          g.features["targets"]:
              np.ones((batch, OUT_LEN), np.int32),
          g.features["targets_segmentation"]:
              np.ones((batch, OUT_LEN), np.int32),
          g.features["targets_position"]:
              np.tile(np.arange(OUT_LEN), (batch, 1)),
      }
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(lowering.copy_masters_to_slices())
        seq, pos, out, *values = sess.run(fetch, feed)
  return seq, pos, out, context.length_dim.size, values


def _batch():
  """Row 0: 5 real tokens then padding; row 1: packed 6 + 6, then padding."""
  seg = np.array([[1] * 5 + [0] * 11, [1] * 6 + [2] * 6 + [0] * 4], np.int32)
  pos = np.array(
      [list(range(5)) + [0] * 11,
       list(range(6)) + list(range(6)) + [0] * 4], np.int32)
  inputs = np.where(seg > 0, 7 + np.arange(IN_LEN), 0).astype(np.int32)
  return inputs, seg, pos


@pytest.mark.parametrize("num_layers,pooled", [(2, IN_LEN // 2),
                                               (4, IN_LEN // 4)])
def test_encoder_output_is_pooled_and_padding_masks_survive(num_layers, pooled):
  inputs, seg, pos = _batch()
  seq, new_pos, out, length, _ = _encoder_outputs(num_layers, inputs, seg, pos)
  stride = IN_LEN // pooled
  assert length == pooled
  assert out.shape == (2, pooled, 64)  # [batch, pooled length, d_model]
  # A pooled position keeps its first source's id: padding exactly when its
  # first source is, so no real token's position is lost.
  np.testing.assert_array_equal(seq, seg[:, ::stride])
  real = seq > 0
  assert real[0].sum() == -(-5 // stride)  # ceil: the 5th token survives
  assert np.all(out[~real] == 0.0)  # padding stays zero after pooling
  assert np.all(np.abs(out[real]).sum(-1) > 0)
  # Index positions at the pooled resolution (what T5's relative attention
  # reads), one per pooled position.
  np.testing.assert_array_equal(new_pos, np.arange(pooled))


def _record_pools(monkeypatch):
  """Makes mtf.pool_tensor_1d (what the funnel stack pools with) record each
  call's (input, output) mtf tensors in the returned list."""
  pools, pool = [], mtf.pool_tensor_1d

  def recording(x, pool_dim, reduce_fn, pool_size):
    y = pool(x, pool_dim=pool_dim, reduce_fn=reduce_fn, pool_size=pool_size)
    pools.append((x, y))
    return y

  monkeypatch.setattr(mtf, "pool_tensor_1d", recording)
  return pools


@pytest.mark.parametrize("pooling_type,reduce", [("mean", np.mean),
                                                 ("max", np.max)])
def test_pooled_values_equal_a_numpy_pool_of_the_pre_pool_activations(
    monkeypatch, pooling_type, reduce):
  """Each pooling (4 layers: blocks [2, 1, 1], so twice) replaces windows of
  2 positions by their mean / max over all channels, padding included: the
  pooled mask keeps a window real if its first position is (above), and
  the window that straddles an example's end mixes its padding in."""
  pools = _record_pools(monkeypatch)
  inputs, seg, pos = _batch()
  *_, values = _encoder_outputs(
      4, inputs, seg, pos,
      ["EvenFunnelLayerStack.pooling_type = %r" % pooling_type], pools)
  assert len(pools) == 2
  for x_t, _ in pools:
    assert x_t.shape.dimension_names == ["batch", "length", "d_model"]
  for x, y in zip(values[::2], values[1::2]):
    b, length, d = x.shape  # [batch, length, d_model]
    ref = reduce(x.reshape(b, length // 2, 2, d), axis=2)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    assert np.abs(x).max() > 1e-3
  # First pooling, row 0: window (4, 5) holds the 5th token and a padding
  # position whose pre-pool activation is not zero, and it is pooled in.
  x, y = values[0], values[1]
  assert seg[0, 4] == 1 and seg[0, 5] == 0
  assert np.abs(x[0, 5]).max() > 1e-3
  np.testing.assert_allclose(y[0, 2], reduce(x[0, 4:6], axis=0), rtol=1e-6)


FUNNEL_RUN = [
    "arch/funnel_transformer.gin", "size/test.gin", "mesh/cpu_1.gin",
    "run/pretrain.gin", "run/cpu_quick.gin"
]


def test_training_rows_are_not_packed(offline_dir):
  """The arch file's mesh_train_dataset_fn.pack = False reaches the train
  path: rows come padded, without the segmentation and position features
  that packing adds (utils.run then takes the ids from inputs != 0, as
  evaluation does), while the same recipe under arch/transformer.gin packs.
  (The offline corpus's long documents fill a 128-token row by themselves,
  so its packed rows rarely hold a second example; C4's shorter ones do.)"""
  del offline_dir
  for row in mtf_run.train_rows(FUNNEL_RUN):
    assert sorted(row) == ["inputs", "targets"]
  packed = mtf_run.train_rows(["arch/transformer.gin"] + FUNNEL_RUN[1:])
  assert all("inputs_segmentation" in row for row in packed)

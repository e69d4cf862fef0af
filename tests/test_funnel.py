"""Funnel Transformer: the encoder output is pooled, and so are its masks."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import funnel
from mtf_arch import graph

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


def _encoder_outputs(num_layers, inputs, segmentation, position):
  """Runs the funnel model; returns the encoder's pooled sequence ids,
  positions and output, and the pooled length."""
  batch = inputs.shape[0]
  with graph.config(FILES,
                    ["dropout_rate = 0.0",
                     "num_layers = %d" % num_layers]):
    g = graph.ModelGraph(300, batch, {"inputs": IN_LEN, "targets": OUT_LEN})
    context = g.model.encoder.layer_stack.context
    with g.tf_graph.as_default():
      lowering, _, _ = graph.lower(g, [""])
      fetch = [
          lowering.export_to_tf_tensor(t)
          for t in (context.sequence_id, context.position,
                    context.layer_outputs[-1])
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
        seq, pos, out = sess.run(fetch, feed)
  return seq, pos, out, context.length_dim.size


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
  seq, new_pos, out, length = _encoder_outputs(num_layers, inputs, seg, pos)
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

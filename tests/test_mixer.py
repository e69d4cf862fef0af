"""MLP-Mixer token mixing (mtf_arch/mixer.py) and the mlp_mixer arch.

The token-mixing layer equals a NumPy reference, padding never reaches a
real token (changing padding values, or padding the sequence to a longer
length, leaves real-token outputs unchanged), a sequence longer than
max_length is a clear error, and the stock CLI trains the arch.
"""

import types

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import graph
from mtf_arch import mixer
from mtf_arch.errors import ConfigError
from tests import mtf_run

B, D, MAX, HIDDEN = 2, 4, 12, 6
F32 = mtf.VariableDType(tf.float32, tf.float32, tf.float32)


def _mix(xs, seg, max_length=MAX, autoregressive=False):
  """Token-mixes each x [B, L, D] with one set of weights (seeded).

  Returns:
    (outputs [len(xs), B, L, D], {name: [max_length, hidden] array}).
  """
  layer = mixer.MixerTokenMixing(max_length=max_length, hidden_size=HIDDEN)
  length_size = xs[0].shape[1]
  with tf.Graph().as_default():
    tf.set_random_seed(7)
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    batch, length = mtf.Dimension("batch",
                                  B), mtf.Dimension("length", length_size)
    model = types.SimpleNamespace(autoregressive=autoregressive)
    seg_t = mtf.import_tf_tensor(mesh, tf.constant(seg, tf.int32),
                                 mtf.Shape([batch, length]))
    outs = []
    with tf.variable_scope("mix", reuse=tf.AUTO_REUSE):
      for x in xs:
        ctx = transformer.Context(
            model=model,
            mesh=mesh,
            batch_dims=[batch],
            length_dim=length,
            variable_dtype=F32,
            mode="eval",
            sequence_id=seg_t)
        x_t = mtf.import_tf_tensor(
            mesh, tf.constant(x),
            mtf.Shape([batch, length,
                       mtf.Dimension("d_model", D)]))
        outs.append(layer.call(ctx, x_t))
    variables = mesh.graph.trainable_variables
    values = mtf_run.lower_and_run(mesh, outs + variables)
  weights = {
      v.name.split("/")[-1]: a for v, a in zip(variables, values[len(outs):])
  }
  return np.stack(values[:len(outs)]), weights


def _gelu(z):
  return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def _x(length, seed=0):
  return np.random.RandomState(seed).randn(B, length, D).astype(np.float32)


SEG = np.array([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 2, 2, 0, 0, 0]])


def test_token_mixing_equals_numpy_reference():
  (y,), w = _mix([_x(8)], SEG)
  x = _x(8) * (SEG != 0)[..., None]
  w_in, w_out = w["token_mixing_in"][:8], w["token_mixing_out"][:8]
  h = _gelu(np.einsum("bld,lf->bfd", x, w_in))  # [batch, hidden, d_model]
  ref = np.einsum("bfd,lf->bld", h, w_out) * (SEG != 0)[..., None]
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-6)
  assert np.abs(ref).max() > 1e-3


def test_padding_never_changes_real_tokens():
  x2 = _x(8).copy()
  x2[SEG == 0] = 100.0  # new values at every padding position
  (y1, y2), _ = _mix([_x(8), x2], SEG)
  real = SEG != 0
  np.testing.assert_array_equal(y1[real], y2[real])
  np.testing.assert_array_equal(y2[~real], 0.0)
  # Padding the same tokens out to a longer sequence changes nothing either.
  x_long = np.concatenate([_x(8), _x(4, seed=9)], axis=1)
  seg_long = np.concatenate([SEG, np.zeros((B, 4), int)], axis=1)
  (y_long,), _ = _mix([x_long], seg_long)
  np.testing.assert_allclose(y_long[:, :8][real], y1[real], rtol=1e-5)


def test_real_tokens_are_mixed():
  x2 = _x(8).copy()
  x2[0, 2] += 1.0  # a real token
  (y1, y2), _ = _mix([_x(8), x2], SEG)
  assert np.abs(y1[0, 5] - y2[0, 5]).max() > 1e-4  # another position sees it


def test_sequence_longer_than_max_length_is_a_clear_error():
  seg = np.ones((B, MAX + 1), int)
  with pytest.raises(ConfigError, match=r"exceeds MixerTokenMixing.max_length"):
    _mix([_x(MAX + 1)], seg)


def test_token_mixing_refuses_a_decoder():
  with pytest.raises(ConfigError, match="encoder only"):
    _mix([_x(8)], SEG, autoregressive=True)


def test_over_long_run_fails_when_the_graph_is_built():
  files = [
      "arch/mlp_mixer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin"
  ]
  with graph.config(files):
    with pytest.raises(ConfigError, match="max_length=512"):
      graph.ModelGraph(512, 1, {"inputs": 520, "targets": 8})


def test_model_padding_tokens_never_change_the_loss(batch_fn,
                                                    offline_vocab_size):
  """Whole model: new token ids at padding (segment 0) positions of the
  encoder input leave the loss unchanged (the decoder sees only the encoder
  output at real tokens)."""
  seq = {"inputs": 64, "targets": 14}
  batch = dict(batch_fn(1, 4, seq)[0])
  # Packing fills the rows: make the last 10 encoder positions padding.
  pad = np.zeros_like(batch["inputs"], bool)
  pad[:, -10:] = True
  batch["inputs"] = np.where(pad, 0, batch["inputs"])
  batch["inputs_segmentation"] = np.where(pad, 0, batch["inputs_segmentation"])
  changed = dict(batch)
  changed["inputs"] = np.where(pad, 77, batch["inputs"])
  files = [
      "arch/mlp_mixer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin", "run/cpu_quick.gin"
  ]
  with graph.config(files, ["dropout_rate = 0.0"]):
    g = graph.ModelGraph(offline_vocab_size, 4, seq, mode="eval")
    losses, _ = graph.train_losses(g, [batch, changed], learning_rate=0.0)
  # A leak of token 77 would move the loss by far more than float noise.
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)


def test_training_rows_are_not_packed(offline_dir):
  """The arch file's mesh_train_dataset_fn.pack = False reaches the train
  path (see tests/test_funnel.py for the packed contrast): rows hold one
  example, so token mixing sees each example from row position 0."""
  del offline_dir
  files = [
      "arch/mlp_mixer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin", "run/cpu_quick.gin"
  ]
  for row in mtf_run.train_rows(files):
    assert sorted(row) == ["inputs", "targets"]

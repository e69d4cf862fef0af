"""Lightweight and Dynamic Convolutions (mtf_arch/convolutions.py).

Each block is run alone on a tiny mesh and checked against a NumPy
reference (packed segments included), for causality, for incremental
decoding step by step (after a partial sequence) against the full pass, for
dynamic kernels that follow the current input, and for the number of
distinct kernels. The stock CLI runs each convolutional arch for two steps.
"""

import types

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import convolutions
from tests import mtf_run

B, L, D, H = 2, 9, 8, 2
KINDS = {
    "light": convolutions.LightweightConv,
    "dynamic": convolutions.DynamicConv
}
F32 = mtf.VariableDType(tf.float32, tf.float32, tf.float32)


def _context(layer, mesh, causal, length, mode="eval", **kwargs):
  model = types.SimpleNamespace(
      layer_stack=types.SimpleNamespace(layers=[layer]),
      fully_autoregressive=causal,
      autoregressive=causal,
      model_dim=mtf.Dimension("d_model", D))
  return transformer.Context(
      model=model,
      mesh=mesh,
      batch_dims=[mtf.Dimension("batch", B)],
      length_dim=length,
      variable_dtype=F32,
      mode=mode,
      **kwargs)


def _run(layer, xs, causal, seg=None, decode_from=None):
  """Runs `layer` on each x in `xs` ([B, L, D] arrays) with shared weights.

  Returns:
    (outputs [len(xs), B, L, D], weights {variable name: (dim names, array)},
     incremental outputs for xs[0] at positions decode_from.. or None).
  """
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(3)
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    batch, length = mtf.Dimension("batch", B), mtf.Dimension("length", L)
    shape = mtf.Shape([batch, length, mtf.Dimension("d_model", D)])
    seg_t = None
    if seg is not None:
      seg_t = mtf.import_tf_tensor(mesh, tf.constant(seg, tf.int32),
                                   mtf.Shape([batch, length]))
    outs, inc = [], []
    xs_t = [
        mtf.import_tf_tensor(mesh, tf.constant(x, tf.float32), shape)
        for x in xs
    ]
    with tf.variable_scope("block", reuse=tf.AUTO_REUSE):
      for x in xs_t:
        ctx = _context(layer, mesh, causal, length, sequence_id=seg_t)
        outs.append(layer.call(ctx, x))
      if decode_from is not None:
        first = _context(
            layer,
            mesh,
            causal,
            length,
            mode="first_part",
            new_states=[],
            initial_position=mtf.constant(
                mesh, decode_from, mtf.Shape([batch]), dtype=tf.int32))
        layer.call(first, xs_t[0])
        states = first.new_states
        for t in range(decode_from, L):
          step = _context(
              layer,
              mesh,
              causal,
              length,
              mode="incremental",
              states=states,
              new_states=[],
              position=mtf.constant(mesh, t, mtf.Shape([batch]), tf.int32))
          inc.append(layer.call(step, mtf.gather(xs_t[0], t, length)))
          states = step.new_states
    variables = mesh.graph.trainable_variables
    values = mtf_run.lower_and_run(mesh, outs + inc + variables)
  n = len(outs)
  # "block/glu_value/kernel" -> "glu_value"; "block/kernel" -> "kernel".
  weights = {
      v.name[len("block/"):].replace("/kernel",
                                     ""): ([d.name for d in v.shape.dims], a)
      for v, a in zip(variables, values[n + len(inc):])
  }
  inc_out = np.stack(values[n:n + len(inc)], 1) if inc else None
  return np.stack(values[:n]), weights, inc_out


def _named(weights, key, order):
  names, a = weights[key]
  return np.transpose(a, [names.index(n) for n in order])


def _softmax(z):
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def _reference(kind, x, weights, offsets, seg):
  """NumPy: GLU -> per-head softmax kernels -> masked shifts -> output."""
  val = np.einsum(
      "bld,dhc->blhc", x,
      _named(weights, "glu_value", ["d_model", "heads", "conv_channels"]))
  gate = np.einsum(
      "bld,dhc->blhc", x,
      _named(weights, "glu_gate", ["d_model", "heads", "conv_channels"]))
  u = val / (1 + np.exp(-gate))  # [batch, length, heads, conv_channels]
  if kind == "light":
    w = _softmax(_named(weights, "kernel", ["heads", "conv_taps"]))
    w = np.broadcast_to(w, (B, L) + w.shape)  # [batch, length, heads, taps]
  else:
    wq = _named(weights, "kernel_predictor",
                ["conv_heads_in", "conv_channels", "heads", "conv_taps"])
    w = _softmax(np.einsum("blhc,hcgk->blgk", u, wq))
  seg = np.ones((B, L), int) if seg is None else seg
  y = np.zeros_like(u)
  for b in range(B):
    for i in range(L):
      for k, off in enumerate(offsets):
        j = i + off
        if 0 <= j < L and seg[b, j] == seg[b, i] and seg[b, j] != 0:
          y[b, i] += w[b, i, :, k, None] * u[b, j]
  return np.einsum(
      "blhc,hcd->bld", y,
      _named(weights, "output", ["heads", "conv_channels", "d_model"]))


def _x(seed=0):
  return np.random.RandomState(seed).randn(B, L, D).astype(np.float32)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_block_equals_numpy_reference_with_packing(kind, causal):
  layer = KINDS[kind](num_heads=H, kernel_sizes=[4])
  seg = np.array([[1, 1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1]])
  (y,), weights, _ = _run(layer, [_x()], causal, seg=seg)
  offsets = [-3, -2, -1, 0] if causal else [-1, 0, 1, 2]
  ref = _reference(kind, _x(), weights, offsets, seg)
  real = seg != 0
  np.testing.assert_allclose(y[real], ref[real], rtol=1e-4, atol=1e-5)
  assert np.abs(ref[real]).max() > 1e-3  # the comparison is not vacuous


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_causal_block_never_reads_the_future(kind):
  layer = KINDS[kind](num_heads=H, kernel_sizes=[3])
  x2 = _x().copy()
  x2[:, 5] += 10.0
  (y1, y2), _, _ = _run(layer, [_x(), x2], causal=True)
  # x[5] moved by 10: a leak would move earlier outputs by O(1), not 1e-8.
  np.testing.assert_allclose(y1[:, :5], y2[:, :5], rtol=0, atol=1e-6)
  assert np.abs(y1[:, 5:7] - y2[:, 5:7]).min() > 0  # the window sees it
  # Centred (encoder) kernels do see the next position.
  (e1, e2), _, _ = _run(layer, [_x(), x2], causal=False)
  assert np.abs(e1[:, 4] - e2[:, 4]).min() > 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_incremental_steps_equal_full_pass_after_partial_sequence(kind):
  """first_part records the last K-1 inputs; each step then matches."""
  layer = KINDS[kind](num_heads=H, kernel_sizes=[4])
  (y,), _, inc = _run(layer, [_x()], causal=True, decode_from=2)
  np.testing.assert_allclose(inc, y[:, 2:], rtol=1e-5, atol=1e-6)


def _kernels(kind, u_np, num_heads=H, taps=3):
  """The block's normalised kernels for conv input u [B, L, heads, C], and
  its convolution's response to an impulse at position 4 on every channel.

  Returns:
    (kernels [batch, length, heads, taps],
     impulse response [batch, length, heads, C]).
  """
  layer = KINDS[kind](num_heads=num_heads, kernel_sizes=[taps])
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(4)  # the same weights on every call
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    names = ["batch", "length", "heads", "conv_channels"]
    dims = [mtf.Dimension(n, s) for n, s in zip(names, u_np.shape)]
    u = mtf.import_tf_tensor(mesh, tf.constant(u_np), mtf.Shape(dims))
    impulse = np.zeros_like(u_np)
    impulse[:, 4] = 1.0
    u_impulse = mtf.import_tf_tensor(mesh, tf.constant(impulse),
                                     mtf.Shape(dims))
    ctx = _context(layer, mesh, True, dims[1])
    taps_dim = mtf.Dimension("conv_taps", taps)
    w = layer.kernels(ctx, u, taps_dim)
    response = layer._convolve(ctx, u_impulse, w, taps_dim)  # pylint: disable=protected-access
    w = mtf.broadcast(w, mtf.Shape(dims[:3] + [taps_dim]))
    return mtf_run.lower_and_run(mesh, [w, response])


def test_dynamic_kernels_follow_the_current_input_only():
  u = np.random.RandomState(1).randn(B, L, H, D // H).astype(np.float32)
  u2 = u.copy()
  u2[:, 6] += 1.0
  w1, w2 = _kernels("dynamic", u)[0], _kernels("dynamic", u2)[0]
  changed = np.abs(w1 - w2).max(axis=(2, 3)) > 1e-6  # [batch, length]
  assert changed[:, 6].all() and not np.delete(changed, 6, axis=1).any()
  np.testing.assert_allclose(w1.sum(-1), 1.0, rtol=1e-5)  # softmax over taps
  assert np.abs(w1[:, 1:] - w1[:, :-1]).max() > 1e-3  # differs by position
  # Lightweight kernels are the same at every position, whatever the input.
  l1, l2 = _kernels("light", u)[0], _kernels("light", u2)[0]
  np.testing.assert_array_equal(l1, l2)
  np.testing.assert_array_equal(l1[0, 0], l1[1, 5])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_distinct_kernels_equal_num_heads(kind, num_heads):
  """Impulse responses of the d_model channels: num_heads distinct ones."""
  u = np.random.RandomState(5).randn(B, L, num_heads,
                                     D // num_heads).astype(np.float32)
  w, response = _kernels(kind, u, num_heads=num_heads)
  for b in range(B):
    # [length, d_model channels] -> one row per channel.
    rows = response[b].reshape(L, D).T.round(6)
    assert len(np.unique(rows, axis=0)) == num_heads
    # Causal taps -2, -1, 0: position 4 + t reads the impulse with tap 2 - t.
    for t in range(3):
      np.testing.assert_allclose(
          response[b, 4 + t, :, 0], w[b, 4 + t, :, 2 - t], rtol=1e-6)

"""The Evolved Transformer's decoder convolutions (mtf_arch/evolved.py).

The layer runs alone on a tiny mesh, as the decoder calls it: the full pass
with the shifted targets as `context.inputs` (0 at each sequence's first
position) and the targets' `sequence_id`, and incremental decoding step by
step after `first_part`. Incremental outputs must equal the full pass (they
did not with mesh_tensorflow's layer), packed segments must not see each
other, and the variables must be the stock layer's.
"""

import types

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import evolved_transformer
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import evolved
from tests import mtf_run

B, L, D = 2, 12, 8
F32 = mtf.VariableDType(tf.float32, tf.float32, tf.float32)
LAYERS = {
    "stock": evolved_transformer.DecoderConvolutionalLayer,
    "masked": evolved.DecoderConvolutionalLayer
}


def _context(mesh, length, mode="eval", **kwargs):
  model = types.SimpleNamespace(model_dim=mtf.Dimension("d_model", D))
  return transformer.Context(
      model=model,
      mesh=mesh,
      batch_dims=[mtf.Dimension("batch", B)],
      length_dim=length,
      variable_dtype=F32,
      mode=mode,
      **kwargs)


def _run(layer_cls, xs, ids, segs, decode_from=None):
  """Calls one layer (shared weights) on each (x, ids, seg) in a full pass.

  Args:
    layer_cls: the DecoderConvolutionalLayer class.
    xs: [B, L, D] float arrays, the layer inputs.
    ids: [B, L] int arrays, the shifted target ids (`context.inputs`).
    segs: [B, L] int arrays, the targets' sequence_id (0 = padding).
    decode_from: if set, also decode xs[0] incrementally from this position,
      after a first_part pass over the partial sequence ids[0] shifted left.

  Returns:
    (full-pass outputs [len(xs), B, L, D], incremental outputs
     [B, L - decode_from, D] or None, {variable name: shape}).
  """
  layer = layer_cls(d_model=D, dropout_rate=0.0)
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(5)
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    batch, length = mtf.Dimension("batch", B), mtf.Dimension("length", L)

    def imp(a, dims, dtype):
      return mtf.import_tf_tensor(mesh, tf.constant(a, dtype), mtf.Shape(dims))

    d_model = mtf.Dimension("d_model", D)
    xs_t = [imp(x, [batch, length, d_model], tf.float32) for x in xs]
    outs, inc = [], []
    with tf.variable_scope("layer", reuse=tf.AUTO_REUSE):
      for x, i, s in zip(xs_t, ids, segs):
        ctx = _context(
            mesh,
            length,
            inputs=imp(i, [batch, length], tf.int32),
            sequence_id=imp(s, [batch, length], tf.int32))
        outs.append(layer.call(ctx, x))  # [batch, length, d_model]
      if decode_from is not None:
        # As Unitransformer.sample_autoregressive: the unshifted partial
        # sequence as inputs, sequence_id 1, then one step per position.
        partial = np.roll(ids[0], -1, axis=1) * (np.arange(L) < decode_from)
        first = _context(
            mesh,
            length,
            mode="first_part",
            new_states=[],
            sequence_id=1,
            inputs=imp(partial, [batch, length], tf.int32),
            initial_position=mtf.constant(
                mesh, decode_from, mtf.Shape([batch]), dtype=tf.int32))
        layer.call(first, xs_t[0])
        states = first.new_states
        if decode_from == 0:  # sample_autoregressive without partial sequences
          states = [mtf.zeros_like(t) for t in states]
        for t in range(decode_from, L):
          step = _context(
              mesh,
              length,
              mode="incremental",
              states=states,
              new_states=[],
              sequence_id=1,
              inputs=mtf.gather(
                  imp(ids[0], [batch, length], tf.int32), t, length),
              position=mtf.constant(mesh, t, mtf.Shape([batch]), tf.int32))
          inc.append(layer.call(step, mtf.gather(xs_t[0], t, length)))
          states = step.new_states
    variables = {
        v.name: [d.size for d in v.shape.dims]
        for v in mesh.graph.trainable_variables
    }
    values = mtf_run.lower_and_run(mesh, outs + inc)
  n = len(outs)
  inc_out = np.stack(values[n:], 1) if inc else None
  return np.stack(values[:n]), inc_out, variables


def _x(seed=0):
  return np.random.RandomState(seed).randn(B, L, D).astype(np.float32)


def _shifted(targets, seg):
  """autoregressive_inputs: targets shifted right, 0 at each segment start."""
  ids = np.zeros_like(targets)
  ids[:, 1:] = targets[:, :-1]
  ids[:, 1:] *= seg[:, 1:] == seg[:, :-1]
  return ids


TARGETS = np.array([[5, 3, 9, 4, 7, 2, 8, 6, 3, 5, 1, 0],
                    [4, 4, 6, 2, 9, 3, 7, 5, 2, 8, 6, 1]])
SEG = np.minimum(TARGETS, 1)


@pytest.mark.parametrize("decode_from", [0, 3])
def test_incremental_steps_equal_full_pass(decode_from):
  """Step t of greedy decoding sees what the teacher-forced pass sees."""
  (y,), inc, _ = _run(evolved.DecoderConvolutionalLayer, [_x()],
                      [_shifted(TARGETS, SEG)], [SEG], decode_from)
  real = SEG[:, decode_from:] != 0
  np.testing.assert_allclose(
      inc[real], y[:, decode_from:][real], rtol=1e-5, atol=1e-5)
  assert np.abs(y).max() > 1e-2  # the comparison is not vacuous


def test_stock_layer_zeroes_the_bos_position_in_the_full_pass_only():
  """The bug this module fixes: mesh_tensorflow's layer masks by the shifted
  ids, so position 0 (BOS, id 0) is zeroed in the full pass alone; every
  position its 11-wide window reaches then differs."""
  (y,), inc, _ = _run(
      LAYERS["stock"], [_x()], [_shifted(TARGETS, SEG)], [SEG], decode_from=0)
  gap = np.abs(inc - y).max(axis=(0, 2))  # [length]
  assert gap[:11].min() > 1e-3, gap


def test_packed_segments_do_not_see_each_other():
  """A second packed example gives what it gives alone at position 0."""
  seg = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0]] * B)
  alone_seg = np.array([[1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]] * B)
  x = _x()
  x_alone = np.zeros_like(x)
  x_alone[:, :5] = x[:, 5:10]
  targets = TARGETS * (seg != 0)
  alone_targets = np.zeros_like(TARGETS)
  alone_targets[:, :5] = targets[:, 5:10]
  (packed, alone), _, _ = _run(
      evolved.DecoderConvolutionalLayer, [x, x_alone],
      [_shifted(targets, seg),
       _shifted(alone_targets, alone_seg)], [seg, alone_seg])
  np.testing.assert_allclose(
      packed[:, 5:10], alone[:, :5], rtol=1e-5, atol=1e-5)


def test_variables_are_the_stock_layers():
  """Same names and shapes: the parameter count and checkpoints carry over."""
  ids, seg = _shifted(TARGETS, SEG), SEG
  _, _, stock = _run(LAYERS["stock"], [_x()], [ids], [seg])
  _, _, masked = _run(LAYERS["masked"], [_x()], [ids], [seg])
  assert masked == stock
  # 11 + 7 + 7 per-tap depthwise weights, a depthwise bias, a pointwise
  # kernel and bias per convolution, the layer norm's scale and bias.
  assert len(stock) == 25 + 3 * 3 + 2, sorted(stock)


def _run_random_weights(layer_cls, x, ids, seg, seed=7):
  """One full pass with every variable (norm scale and bias too) random.

  Args:
    layer_cls: the DecoderConvolutionalLayer class.
    x: [B, L, D] float array, the layer input.
    ids: [B, L] int array, `context.inputs` (the shifted target ids).
    seg: [B, L] int array, `context.sequence_id` (0 = padding).
    seed: seed of the variable values.

  Returns:
    (output [B, L, D], {variable name without the "layer/" scope: value}).
  """
  layer = layer_cls(d_model=D, dropout_rate=0.0)
  graph = tf.Graph()
  with graph.as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    batch, length = mtf.Dimension("batch", B), mtf.Dimension("length", L)
    d_model = mtf.Dimension("d_model", D)

    def imp(a, dims, dtype):
      return mtf.import_tf_tensor(mesh, tf.constant(a, dtype), mtf.Shape(dims))

    ctx = _context(
        mesh,
        length,
        inputs=imp(ids, [batch, length], tf.int32),
        sequence_id=imp(seg, [batch, length], tf.int32))
    with tf.variable_scope("layer"):
      y = layer.call(ctx, imp(x, [batch, length, d_model], tf.float32))
    impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mtf.Shape([]), mtf.convert_to_layout_rules(""), [""])
    lowering = mtf.Lowering(mesh.graph, {mesh: impl})
    y_tf = lowering.export_to_tf_tensor(y)  # [batch, length, d_model]
    # The tf.Variable behind each mtf variable: {name: master}.
    # pylint: disable=protected-access
    masters = {
        v.name[len("layer/"):]: v._master
        for v in mesh.graph.trainable_variables
    }
    # pylint: enable=protected-access
    rng = np.random.RandomState(seed)
    assigns = []
    for m in masters.values():
      value = rng.randn(*m.shape.as_list()).astype(np.float32)
      assigns.append(tf.assign(m, value))
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(assigns)
      sess.run(lowering.copy_masters_to_slices())
      out, weights = sess.run([y_tf, masters])
  return out, weights


def _np_sep_conv(x, valid, w, scope, width, relu=False):
  """NumPy causal separable convolution: tap i reads x[t - (width-1) + i].

  Args:
    x: [B, L, C] array.
    valid: function (src, t) -> [B] bool, whether position t reads src.
    w: the variables, by name.
    scope: the convolution's variable scope, e.g. "sep_conv11x1".
    width: the filter size.
    relu: apply a ReLU to the output.

  Returns:
    [B, L, output_size] array.
  """
  pre = scope + "/separable_conv1d/"
  depthwise = np.zeros_like(x) + w[pre + "depthwise_conv_hack/"
                                   "depthwise_dense_0/bias"]  # [B, L, C]
  for i in range(width):
    tap = w[pre + "depthwise_conv_hack/depthwise_dense_%d/kernel" % i]  # [C]
    for t in range(x.shape[1]):
      src = t - (width - 1) + i
      if src >= 0:
        depthwise[:, t] += tap * x[:, src] * valid(src, t)[:, None]
  out = (depthwise @ w[pre + "pointwise_dense/kernel"] +
         w[pre + "pointwise_dense/bias"])  # [B, L, output_size]
  return np.maximum(out, 0) if relu else out


def _np_decoder_convolutions(x, valid, w):
  """So et al.'s Figure 4 decoder branches in NumPy, from the same weights.

  [11x1 sep conv 2d, ReLU | 7x1 sep conv d/2, zero-padded to 2d] -> sum
  -> layer norm (epsilon 1e-6) -> 7x1 sep conv d.
  """
  left = _np_sep_conv(x, valid, w, "sep_conv11x1", 11, relu=True)  # [B, L, 2D]
  right = _np_sep_conv(x, valid, w, "sep_conv7x1_1", 7)  # [B, L, D / 2]
  right = np.pad(right, [(0, 0), (0, 0), (0, 2 * D - D // 2)])  # [B, L, 2D]
  h = left + right
  mean = h.mean(-1, keepdims=True)
  var = ((h - mean)**2).mean(-1, keepdims=True)
  norm = "layer_prepostprocess/layer_norm/layer_norm_"
  h = ((h - mean) / np.sqrt(var + 1e-6) * w[norm + "scale"] + w[norm + "bias"])
  return _np_sep_conv(h, valid, w, "sep_conv7x1_2", 7)  # [B, L, D]


def test_masked_layer_equals_numpy_reference():
  """Both branches, the norm and the last convolution, on packed segments
  with padding: each tap reads its source only inside the segment."""
  seg = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0],
                  [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
  targets = TARGETS * (seg != 0)
  y, w = _run_random_weights(evolved.DecoderConvolutionalLayer, _x(),
                             _shifted(targets, seg), seg)

  def same_segment(src, t):
    return (seg[:, src] == seg[:, t]) & (seg[:, src] != 0)

  want = _np_decoder_convolutions(_x(), same_segment, w)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
  # Not vacuous: the weights are not the initial ones (norm scale 1, bias 0),
  # and the segment mask changes the answer.
  norm = "layer_prepostprocess/layer_norm/layer_norm_"
  assert np.abs(w[norm + "scale"] - 1).max() > 0.1
  assert np.abs(w[norm + "bias"]).max() > 0.1
  unmasked = _np_decoder_convolutions(_x(), lambda s, t: np.ones(B, bool), w)
  assert np.abs(unmasked - want)[0, 5:].max() > 1e-2


def test_stock_layer_equals_numpy_reference():
  """mesh_tensorflow's layer is the same math, with its own mask: a
  position whose `context.inputs` id is 0 is read as zeros."""
  ids = _shifted(TARGETS, SEG)
  y, w = _run_random_weights(LAYERS["stock"], _x(), ids, SEG)
  want = _np_decoder_convolutions(_x(), lambda src, t: ids[:, src] != 0, w)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)

"""Performer (ReLU kernels): linear attention == explicit kernel attention.

Checks mtf_arch.performer, for both kernels -- the deterministic ReLU
phi(x) = relu(x) + eps (`ReluKernel`, the default) and random-feature ReLU
phi(x) = relu(x W^T / sqrt(m)) + eps (`RandomReluKernel`) -- against a NumPy
quadratic computation of the same kernel attention, step-by-step incremental
decoding against the full causal pass, the feature dimension each gin file
builds, and that no tensor of the built model is [length, length].
"""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import graph
from mtf_arch import performer
from tests import mtf_run

B, L, H, D, M = 2, 7, 2, 4, 6
EPS = 1e-3
# Packed rows with padding (0): segments 1,2 then padding; one long segment.
SEQ_ID = np.array([[1, 1, 1, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 0]], np.int32)
# "relu": phi(x) = relu(x) + eps; "random": relu(x W^T / sqrt(M)) + eps.
KERNELS = ["relu", "random"]
QKV = ["batch", "length", "heads", "d_kv"]


def _phi(x, w, eps=EPS):
  """NumPy features of x [..., D]: deterministic if w is None, else random."""
  if w is None:
    return np.maximum(x, 0.0) + eps
  return np.maximum(x @ w.T / np.sqrt(w.shape[0]), 0.0) + eps


def _visible(seq_id, causal):
  """[B, L, L] bool: which keys each query sees."""
  visible = np.ones((B, L, L), bool)
  if seq_id is not None:
    visible &= seq_id[:, :, None] == seq_id[:, None, :]
  if causal:
    visible &= np.tril(np.ones((L, L), bool))[None]
  return visible


def _quadratic(q, k, v, w, seq_id, causal, eps=EPS):
  """Explicit [L, L] kernel attention. q, k, v: [B, L, H, D]."""
  qf, kf = _phi(q, w, eps), _phi(k, w, eps)  # [B, L, H, features]
  a = np.einsum("blhm,bshm->bhls", qf, kf)  # [B, H, L, L]
  a = a * _visible(seq_id, causal)[:, None]
  out = np.einsum("bhls,bshd->blhd", a, v)  # [B, L, H, D]
  return out / a.sum(-1).transpose(0, 2, 1)[..., None]


class _DecoderModel(object):
  """The parts of a Unitransformer that a decoder layer reads."""
  fully_autoregressive = True
  model_dim = mtf.Dimension("d_model", 8)
  ensemble_dim = None
  ensemble_dims = []


def _run_mtf(build, arrays, mesh_shape="all:1", layout=""):
  """Runs build(mesh, dims, tensors) -> mtf tensors on CPU (one slice unless
  `mesh_shape` and `layout` split it); `arrays`: {name: (dim names, value)},
  imported as `tensors` {name: mtf.Tensor}."""
  with tf.Graph().as_default():
    mtf_graph = mtf.Graph()
    mesh = mtf.Mesh(mtf_graph, "mesh")
    dims = {
        "batch": mtf.Dimension("batch", B),
        "length": mtf.Dimension("length", L),
        "heads": mtf.Dimension("heads", H),
        "d_kv": mtf.Dimension("d_kv", D),
        "features": mtf.Dimension(performer.FEATURES_DIM_NAME, M),
        "d_model": _DecoderModel.model_dim,
    }
    tensors = {}
    for name, (names, value) in arrays.items():
      shape = mtf.Shape([dims[n] for n in names])
      tensors[name] = mtf.import_fully_replicated(mesh, tf.constant(value),
                                                  shape)
    out = build(mesh, dims, tensors)
    return mtf_run.lower_and_run(mesh, out, mesh_shape, layout)


def _inputs(seed, packed, kernel):
  """Random q, k, v, w (None for the relu kernel) and the _run_mtf arrays
  (with w for the random kernel, SEQ_ID if packed)."""
  rng = np.random.RandomState(seed)
  q, k, v = (rng.randn(B, L, H, D).astype(np.float32) for _ in range(3))
  w = rng.randn(M, D).astype(np.float32) if kernel == "random" else None
  arrays = {"q": (QKV, q), "k": (QKV, k), "v": (QKV, v)}
  if w is not None:
    arrays["w"] = (["features", "d_kv"], w)
  if packed:
    arrays["seq"] = (["batch", "length"], SEQ_ID)
  return (q, k, v, w), arrays


def _mtf_attention(dims, t, causal, chunk_size):
  """linear_attention on the kernel features of t["q"], t["k"]."""
  if "w" in t:
    qf, kf = (performer.random_relu_features(t[x], t["w"], EPS) for x in "qk")
  else:
    qf, kf = (performer.relu_features(t[x], dims["d_kv"], EPS) for x in "qk")
  return performer.linear_attention(
      qf,
      kf,
      t["v"],
      dims["length"],
      dims["d_kv"],
      sequence_id=t.get("seq"),
      causal=causal,
      chunk_size=chunk_size)


# 64: one chunk; 4: two, the second padded; 3 and 2: segments and padding
# crossing chunk boundaries, a segment spanning three chunks.
@pytest.mark.parametrize("chunk_size", [64, 4, 3, 2])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_linear_attention_equals_quadratic_kernel_attention(
    kernel, causal, packed, chunk_size):
  (q, k, v, w), arrays = _inputs(0, packed, kernel)
  seq_id = SEQ_ID if packed else None

  def build(mesh, dims, t):
    del mesh
    return [_mtf_attention(dims, t, causal, chunk_size)]

  out, = _run_mtf(build, arrays)
  expected = _quadratic(q, k, v, w, seq_id, causal)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  # The reference itself distinguishes the cases (the test can fail).
  other = _quadratic(q, k, v, w, None if packed else SEQ_ID, not causal)
  assert not np.allclose(other, expected, atol=1e-3)


def test_relu_kernel_negative_controls():
  """The deterministic kernel's output is not that of the random-feature
  kernel, nor of another eps, nor of softmax attention: the reference in
  the test above tells these kernels apart."""
  (q, k, v, _), arrays = _inputs(0, True, "relu")

  def build(mesh, dims, t):
    del mesh
    return [_mtf_attention(dims, t, True, 3)]

  out, = _run_mtf(build, arrays)
  np.testing.assert_allclose(
      out, _quadratic(q, k, v, None, SEQ_ID, True), rtol=1e-4, atol=1e-5)
  w = np.random.RandomState(9).randn(M, D).astype(np.float32)
  assert not np.allclose(
      out, _quadratic(q, k, v, w, SEQ_ID, True), atol=1e-3)  # random features
  assert not np.allclose(
      out, _quadratic(q, k, v, None, SEQ_ID, True, eps=0.1), atol=1e-3)
  logits = np.einsum("blhd,bshd->bhls", q, k)
  logits = np.where(_visible(SEQ_ID, True)[:, None], logits, -1e9)
  a = np.exp(logits - logits.max(-1, keepdims=True))
  softmax = np.einsum("bhls,bshd->blhd", a / a.sum(-1, keepdims=True), v)
  assert not np.allclose(out, softmax, atol=1e-3)


@pytest.mark.parametrize("kernel", KERNELS)
def test_linear_attention_split_over_batch_and_heads(kernel):
  """Slice-wise on a 2 x 2 mesh (batch and heads split) == quadratic."""
  (q, k, v, w), arrays = _inputs(2, True, kernel)
  for causal in (False, True):

    def build(mesh, dims, t):
      del mesh
      return [_mtf_attention(dims, t, causal, 3)]

    out, = _run_mtf(build, arrays, "b1:2;b2:2", "batch:b1;heads:b2")
    np.testing.assert_allclose(
        out, _quadratic(q, k, v, w, SEQ_ID, causal), rtol=1e-4, atol=1e-5)


def _tf_quadratic_gradients(q, k, v, w, r, seq_id, causal):
  """d sum(out * r) / d(q, k, v) of explicit [L, L] attention in plain TF."""
  with tf.Graph().as_default(), tf.Session() as sess:
    q, k, v = (tf.constant(x) for x in (q, k, v))

    def phi(x):
      if w is None:
        return tf.nn.relu(x) + EPS
      return tf.nn.relu(tf.einsum("blhd,md->blhm", x, w) / np.sqrt(M)) + EPS

    a = tf.einsum("blhm,bshm->bhls", phi(q), phi(k))  # [B, H, L, L]
    a *= _visible(seq_id, causal)[:, None].astype(np.float32)
    out = tf.einsum("bhls,bshd->blhd", a, v) / tf.transpose(
        tf.reduce_sum(a, -1), [0, 2, 1])[..., None]  # [B, L, H, D]
    return sess.run(tf.gradients(tf.reduce_sum(out * r), [q, k, v]))


@pytest.mark.parametrize("chunk_size", [64, 3])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_linear_attention_gradients_equal_quadratic(kernel, causal, packed,
                                                    chunk_size):
  """Mesh-TF's gradients through the chunked path (training uses them)."""
  (q, k, v, w), arrays = _inputs(3, packed, kernel)
  r = np.random.RandomState(4).randn(B, L, H, D).astype(np.float32)
  arrays["r"] = (QKV, r)

  def build(mesh, dims, t):
    del mesh
    out = _mtf_attention(dims, t, causal, chunk_size)
    return mtf.gradients([mtf.reduce_sum(out * t["r"])],
                         [t["q"], t["k"], t["v"]])

  grads = _run_mtf(build, arrays)
  expected = _tf_quadratic_gradients(q, k, v, w, r, SEQ_ID if packed else None,
                                     causal)
  for got, want in zip(grads, expected):
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_random_features_orthogonal_and_redrawn_by_seed():
  with tf.Graph().as_default(), tf.Session() as sess:
    a, a2, b = sess.run([
        performer.orthogonal_gaussian_features(10, 4, [3, 0]),
        performer.orthogonal_gaussian_features(10, 4, [3, 0]),
        performer.orthogonal_gaussian_features(10, 4, [3, 1]),
    ])
  assert a.shape == (10, 4)
  np.testing.assert_array_equal(a, a2)  # stateless: same seed, same draw
  assert not np.allclose(a, b)  # another draw (redraw_interval) differs
  for block in (a[0:4], a[4:8]):
    gram = block @ block.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)


@pytest.mark.parametrize(
    "kernel",
    [performer.ReluKernel(),
     performer.RandomReluKernel(num_random_features=M)],
    ids=KERNELS)
def test_incremental_steps_reproduce_full_causal_pass(kernel):
  """first_part on a prefix, then one position at a time == full pass."""
  rng = np.random.RandomState(1)
  x_np = rng.randn(B, L, 8).astype(np.float32)
  prefix = 3

  def build(mesh, dims, t):
    layer = performer.PerformerSelfAttention(
        num_heads=H, key_value_size=D, kernel=kernel)
    x = t["x"]
    dtype = mtf.VariableDType(tf.float32)
    model = _DecoderModel()
    length_range = mtf.range(mesh, dims["length"], tf.int32)
    common = dict(
        model=model,
        mesh=mesh,
        batch_dims=[dims["batch"]],
        length_dim=dims["length"],
        variable_dtype=dtype)
    with tf.variable_scope("decoder/layer"):
      full = layer.call(
          transformer.Context(mode="eval", position=length_range, **common), x)
    first = transformer.Context(
        mode="first_part",
        position=length_range,
        new_states=[],
        initial_position=mtf.constant(mesh, prefix, dtype=tf.int32),
        **common)
    with tf.variable_scope("decoder/layer", reuse=True):
      layer.call(first, x)
    states = first.new_states
    steps = []
    for t in range(prefix, L):
      ctx = transformer.Context(
          mode="incremental",
          position=mtf.constant(mesh, t, dtype=tf.int32),
          states=states,
          new_states=[],
          **common)
      with tf.variable_scope("decoder/layer", reuse=True):
        steps.append(layer.call(ctx, mtf.gather(x, t, dims["length"])))
      states = ctx.new_states
    assert [s.shape.dims[-1].name for s in states
           ] == ["d_kv", "performer_features"]
    assert states[1].shape.dims[-1].size == kernel.features_dim(
        mtf.Dimension("d_kv", D)).size
    return [full] + steps

  full, *steps = _run_mtf(build, {"x": (["batch", "length", "d_model"], x_np)})
  for t, step in zip(range(prefix, L), steps):
    np.testing.assert_allclose(step, full[:, t], rtol=1e-4, atol=1e-5)
  # Not trivially equal: outputs change along the sequence.
  assert not np.allclose(full[:, prefix], full[:, L - 1], atol=1e-3)


def _model_graph(arch, inputs, targets):
  """The training graph of arch + size/test.gin (d_kv 16)."""
  files = [arch, "size/test.gin", "mesh/cpu_1.gin", "run/pretrain.gin"]
  with graph.config(files, ["dropout_rate = 0.0"]):
    return graph.ModelGraph(300, 2, {"inputs": inputs, "targets": targets})


def _feature_sizes(g):
  """Sizes of the performer_features dimension in a built graph, and whether
  a random projection is imported."""
  sizes, projection = set(), False
  for op in g.mtf_graph.operations:
    projection |= "performer_projection" in op.name
    for t in op.outputs:
      sizes.update(
          d.size for d in t.shape.dims if d.name == performer.FEATURES_DIM_NAME)
  return sizes, projection


def test_gin_files_build_their_kernel():
  """arch/performer.gin: relu(x) + eps over d_kv (16), no projection;
  arch/performer_favor.gin: 256 random features, projected."""
  relu = _model_graph("arch/performer.gin", 16, 8)
  assert _feature_sizes(relu) == ({16}, False)
  favor = _model_graph("arch/performer_favor.gin", 16, 8)
  assert _feature_sizes(favor) == ({256}, True)


SEQ_NAMES = ("length", "memory_length", "tmp_dim_cumsum")


def _quadratic_shapes(arch, inputs, targets):
  """Shapes in the built training graph with two sequence dims of one size."""
  g = _model_graph(arch, inputs, targets)
  bad = set()
  for op in g.mtf_graph.operations:
    for t in op.outputs:
      sizes = [d.size for d in t.shape.dims if d.name in SEQ_NAMES]
      if len(sizes) != len(set(sizes)):
        bad.add(str(t.shape))
  return bad


@pytest.mark.parametrize("arch",
                         ["arch/performer.gin", "arch/performer_favor.gin"])
def test_memory_is_not_quadratic_in_length(arch):
  """No [length, length] tensor anywhere in the Performer's graph (the
  vanilla Transformer's attention logits are found by the same check)."""
  assert _quadratic_shapes("arch/transformer.gin", 64, 24)
  assert not _quadratic_shapes(arch, 64, 24)
  assert not _quadratic_shapes(arch, 128, 48)

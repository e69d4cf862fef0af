"""Evolved, Universal, Switch, GLU and MoS Transformers: their own math.

The generic tests (tests/test_architectures.py, tests/test_gin_files.py)
build, train, decode and count every gin/arch/ file; these check what is
particular to each variant against NumPy references on small tensors.
"""

import numpy as np
import pytest

from mtf_arch import graph
from tests import mtf_run

SEQ = {"inputs": 32, "targets": 8}


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("mesh_shape,scaled", [("model:1", False),
                                               ("model:2", False),
                                               ("model:1", True)])
def test_mixture_of_softmaxes_matches_numpy(mesh_shape, scaled):
  """exp(logits) is the NumPy mixture sum_k pi_k softmax(E tanh(C_k h)), a
  proper distribution over the vocabulary (also with vocab split in two, and
  with the component logits scaled by d^-0.5)."""
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  from mtf_arch import mos
  batch, d, vocab, k = 3, 8, 16, 4
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    g = mtf.Graph()
    mesh = mtf.Mesh(g, "mesh")
    model_dim = mtf.Dimension("d_model", d)
    vocab_dim = mtf.Dimension("vocab", vocab)
    emb = mos.MixtureOfSoftmaxes(
        mesh,
        vocab_dim,
        model_dim,
        mtf.VariableDType(tf.float32),
        name="embedding",
        ensemble_dim=None,
        num_softmaxes=k,
        scale_component_logits=scaled)
    assert len(g.trainable_variables) == 1  # softmax weights come lazily
    h_np = np.random.RandomState(0).randn(batch, d).astype(np.float32)
    h = mtf.import_fully_replicated(
        mesh, tf.constant(h_np),
        mtf.Shape([mtf.Dimension("batch", batch), model_dim]))
    logits = emb.hidden_to_logits(h, context=None)  # [batch, vocab]
    assert len(g.trainable_variables) == 3
    e, w, c = (v.outputs[0] for v in g.trainable_variables)
    out, e, w, c = mtf_run.lower_and_run(mesh, [logits, e, w, c], mesh_shape,
                                         "vocab:model")
  # e: [vocab, d]; w: [k, d]; c: [k, d_copy, d]
  hs = h_np * d**-0.5
  prior = _softmax(hs @ w.T)  # [batch, k]
  contexts = np.tanh(np.einsum("bi,kij->bkj", hs, c))  # [batch, k, d]
  if scaled:
    contexts *= d**-0.5
  comps = _softmax(contexts @ e.T)  # [batch, k, vocab]
  expected = np.einsum("bk,bkv->bv", prior, comps)  # [batch, vocab]
  np.testing.assert_allclose(np.exp(out), expected, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-5)
  # A softmax of the logits (what the loss applies) gives back p itself.
  np.testing.assert_allclose(_softmax(out), expected, rtol=1e-4, atol=1e-7)
  assert not np.allclose(expected, comps[:, 0])  # components really mix


def _ut_vars(num_steps):
  files = [
      "arch/universal_transformer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin"
  ]
  with graph.config(files, ["num_layers = %d" % num_steps]):
    g = graph.ModelGraph(512, 2, SEQ)
    return g.params_by_name(), g


def test_universal_transformer_shares_one_layer_across_steps():
  """More steps add no weights except one step embedding row per step, and
  every step of a stack reads the same attention/FFN variables."""
  two, _ = _ut_vars(2)
  five, g5 = _ut_vars(5)
  d_model = 64
  assert set(two) == set(five)
  for name in two:
    if "layer_embedding" in name:
      assert five[name] - two[name] == 3 * d_model, name
    else:
      assert five[name] == two[name], name
  # One q/k/v/o and one FFN per stack, however many steps.
  names = list(five)
  assert sum(n.startswith("encoder/") and n.endswith("/q") for n in names) == 1
  assert sum(n.startswith("decoder/") and n.endswith("/q") for n in names) == 2
  assert sum(n.endswith("/wi/kernel") for n in names) == 2, names
  # ...and that one query matrix is read once per application: 5 steps and
  # the 2 + 2 mixing passes before and after them, which reuse it.
  q = [
      v for v in g5.mtf_graph.trainable_variables
      if v.name.startswith("encoder/") and v.name.endswith("/q")
  ][0]
  readers = [
      op for op in g5.mtf_graph.operations
      if any(t is q.outputs[0] for t in op.inputs)
  ]
  assert len(readers) == 5 + 4, readers


def _switch_gate(inputs_np, num_experts, capacity, mesh_shape="batch:1"):
  """Runs mesh_tensorflow's Switch gating (eval: argmax) on [group, d]."""
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  from mesh_tensorflow.transformer import moe
  group, d = inputs_np.shape
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    g = mtf.Graph()
    mesh = mtf.Mesh(g, "mesh")
    dims = [
        mtf.Dimension("outer_batch", 1),
        mtf.Dimension("batch", 1),
        mtf.Dimension("group", group),
        mtf.Dimension("d_model", d)
    ]
    x = mtf.import_fully_replicated(mesh, tf.constant(inputs_np[None, None]),
                                    mtf.Shape(dims))
    hparams = moe.HParams(
        moe_switch_policy_eval="argmax",
        moe_word_embed_mode=None,
        moe_use_second_place_expert_prob=None,
        moe_z_loss=None)
    dispatch, combine, _ = moe._switch_gating(  # pylint: disable=protected-access
        x,
        None,
        mtf.Dimension("expert_unsplit", num_experts),
        mtf.Dimension("expert_capacity", capacity),
        hparams,
        train=False,
        variable_dtype=mtf.VariableDType(tf.float32))
    router = g.trainable_variables[0].outputs[0]  # [d_model, experts]
    dispatch, combine, router = mtf_run.lower_and_run(
        mesh, [dispatch, combine, router], mesh_shape)
  # [group, experts, capacity]
  return dispatch[0, 0], combine[0, 0], router


def test_switch_routes_each_token_to_one_expert_within_capacity():
  """NumPy reference of Switch routing (Fedus et al. 2021, section 2.1): a
  token goes to its argmax expert, in the slot of its order of arrival, with
  weight = router probability; tokens past the expert's capacity are
  dropped (no expert), never sent to a second one."""
  group, d, experts, capacity = 24, 8, 4, 3
  x = np.random.RandomState(1).randn(group, d).astype(np.float32)
  dispatch, combine, router = _switch_gate(x, experts, capacity)
  probs = _softmax(x @ router)  # [group, experts]
  choice = probs.argmax(-1)
  expected_dispatch = np.zeros((group, experts, capacity), np.float32)
  expected_combine = np.zeros_like(expected_dispatch)
  filled = np.zeros(experts, int)
  for t in range(group):
    e = choice[t]
    if filled[e] < capacity:
      expected_dispatch[t, e, filled[e]] = 1.0
      expected_combine[t, e, filled[e]] = probs[t, e]
    filled[e] += 1
  assert filled.max() > capacity  # the case exercises dropping
  np.testing.assert_array_equal(dispatch, expected_dispatch)
  np.testing.assert_allclose(combine, expected_combine, rtol=1e-5)
  per_token = dispatch.sum(axis=(1, 2))
  assert set(per_token.tolist()) <= {0.0, 1.0}
  assert (per_token == 0).sum() == np.maximum(filled - capacity, 0).sum()
  assert (dispatch.sum(axis=0) <= 1).all()  # one token per expert slot


def _switch_layer_reference(x, nonpadding, router, wi, wo, capacity_factor,
                            group_size, min_capacity):
  """NumPy Switch layer at evaluation: groups, capacity, drops, outputs.

  Tokens in batch-major order form groups of `group_size`; in each, a token
  goes to its argmax expert in its order of arrival, kept while the expert
  has fewer than C = max(min_capacity, floor(group_size x capacity_factor /
  experts)) tokens; padding is never routed and takes no slot. A kept token's
  output is p_e relu(x wi_e) wo_e, a dropped one's 0 (Fedus et al. 2021,
  sections 2.1-2.2).

  Returns:
    (outputs like x, number of dropped non-padding tokens, C).
  """
  d = x.shape[-1]
  flat, keep = x.reshape(-1, d), nonpadding.reshape(-1)
  experts = router.shape[1]
  capacity = max(min_capacity,
                 min(group_size, int(group_size * capacity_factor / experts)))
  probs = _softmax(flat @ router)
  out = np.zeros_like(flat)
  dropped = 0
  for start in range(0, len(flat), group_size):
    filled = np.zeros(experts, int)
    for t in range(start, start + group_size):
      if keep[t] != 1.0:
        continue
      e = probs[t].argmax()
      if filled[e] < capacity:
        out[t] = probs[t, e] * (np.maximum(flat[t] @ wi[e], 0) @ wo[e])
      else:
        dropped += 1
      filled[e] += 1
  return out.reshape(x.shape), dropped, capacity


def test_switch_layer_as_configured_matches_numpy():
  """MoE1D with gin/arch/switch_transformer.gin's bindings (switch gating,
  eval capacity factor 1.2, groups of 1024, at least 4 a slot, argmax at
  evaluation) against a NumPy reference, on 2 groups of 1024 tokens where
  half the tokens share a direction, so that one expert overflows and drops
  tokens, and the last 64 of each row are padding. With mtf's default eval
  capacity factor (2.0: the binding lost) fewer tokens would drop."""
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  from mesh_tensorflow.transformer import moe
  b, length, d = 4, 512, 64
  with graph.config(["arch/switch_transformer.gin", "size/test.gin"]):
    layer = moe.MoE1D()  # as the arch file binds it
  rng = np.random.RandomState(0)
  x_np = rng.randn(b, length, d).astype(np.float32)
  x_np[:, ::2] += 3 * rng.randn(d).astype(np.float32)
  nonpadding = np.ones((b, length), np.float32)
  nonpadding[:, -64:] = 0
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    g = mtf.Graph()
    mesh = mtf.Mesh(g, "mesh")
    dims = mtf.Shape([
        mtf.Dimension("batch", b),
        mtf.Dimension("length", length),
        mtf.Dimension("d_model", d)
    ])
    x = mtf.import_fully_replicated(mesh, tf.constant(x_np), dims)
    pad = mtf.import_fully_replicated(mesh, tf.constant(nonpadding),
                                      mtf.Shape(dims.dims[:2]))
    y, _ = moe.transformer_moe_layer_v1(  # [batch, length, d_model]
        x,
        dims.dims[2],
        layer._hparams,  # pylint: disable=protected-access
        False,
        mtf.VariableDType(tf.float32),
        layout="",
        mesh_shape="",
        nonpadding=pad,
        activation=layer._activation)  # pylint: disable=protected-access
    names = [v.name for v in g.trainable_variables]
    assert names == ["switch_gating/kernel", "wi/kernel", "wo/kernel"], names
    # router [d_model, experts], wi [experts, d_model, expert_hidden],
    # wo [experts, expert_hidden, d_model]
    y, router, wi, wo = mtf_run.lower_and_run(mesh, [y] + g.trainable_variables)
  expected, dropped, capacity = _switch_layer_reference(x_np, nonpadding,
                                                        router, wi, wo, 1.2,
                                                        1024, 4)
  assert capacity == 307 and router.shape == (d, 4)  # int(1024 * 1.2 / 4)
  _, dropped_at_2, _ = _switch_layer_reference(x_np, nonpadding, router, wi, wo,
                                               2.0, 1024, 4)
  assert dropped > dropped_at_2, (dropped, dropped_at_2)
  zero_rows = (np.abs(y).sum(-1) == 0) & (nonpadding == 1)
  assert zero_rows.sum() == dropped > 0
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)


def test_switch_experts_split_over_two_devices(batch_fn, offline_vocab_size):
  """Experts laid out over `batch:2` (two real CPU devices, two experts on
  each) give the losses of the one-device run.

  Routing groups follow the batch split, so both runs use groups of 32
  tokens (the same groups in both layouts), and no router jitter (its noise
  is drawn per slice, so it differs between layouts by design)."""
  batches = batch_fn(3, 8, SEQ)
  files = [
      "arch/switch_transformer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin"
  ]
  params = [
      "dropout_rate = 0.0", "MoE1D.group_size = 32",
      "MoE1D.switch_policy_train = 'argmax'"
  ]
  with graph.config(files, params):
    g1 = graph.ModelGraph(offline_vocab_size, 8, SEQ)
    losses1, init = graph.train_losses(g1, batches)
  with graph.config(files, params):
    _, layout = graph.mesh_and_layout()
    import mesh_tensorflow as mtf
    shape = mtf.convert_to_shape("batch:2")
    assert layout.tensor_dimension_to_mesh_axis(
        mtf.Dimension("experts", 4), shape) == 0
    g2 = graph.ModelGraph(
        offline_vocab_size, 8, SEQ, mesh_shape=shape, layout_rules=layout)
    experts = [
        v for v in g2.mtf_graph.trainable_variables
        if "experts" in v.shape.dimension_names
    ]
    assert experts and all(
        v.shape.get_dim_by_name("experts").size == 4 for v in experts)
    losses2, _ = graph.train_losses(
        g2, batches, num_devices=2, init_values=init)
  np.testing.assert_allclose(losses2, losses1, rtol=1e-5)
  assert losses1[-1] < losses1[0]


def test_geglu_feed_forward_matches_numpy():
  """The GLU-Transformer's FFN (DenseReluDense with ["gelu", "linear"]):
  (GeLU(x W_0) * x W_1) W_o, with gin's 2/3-scaled d_ff."""
  import gin
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  from mesh_tensorflow.transformer import transformer_layers
  files = [
      "arch/glu_transformer.gin", "size/test.gin", "mesh/cpu_1.gin",
      "run/pretrain.gin"
  ]
  with graph.config(files, ["dropout_rate = 0.0"]):
    layer = transformer_layers.DenseReluDense()
    activation = gin.query_parameter("DenseReluDense.activation")
    assert layer.hidden_size == 88  # 128 * 2/3, to a multiple of 8
  d, n = 16, 5

  class _Model(object):
    ensemble_dims = []

  class _Context(object):
    train = False
    model = _Model()
    variable_dtype = mtf.VariableDType(tf.float32)

  layer = transformer_layers.DenseReluDense(
      hidden_size=12, activation=activation, dropout_rate=0.0)
  with tf.Graph().as_default():
    g = mtf.Graph()
    mesh = mtf.Mesh(g, "mesh")
    x_np = np.random.RandomState(2).randn(n, d).astype(np.float32)
    x = mtf.import_fully_replicated(
        mesh, tf.constant(x_np),
        mtf.Shape([mtf.Dimension("batch", n),
                   mtf.Dimension("d_model", d)]))
    y = layer.call(_Context(), x)  # [batch, d_model]
    kernels = [v.outputs[0] for v in g.trainable_variables]
    out, *weights = mtf_run.lower_and_run(mesh, [y] + kernels, "model:1")
  names = [v.name for v in g.trainable_variables]
  w0, w1, wo = (weights[i] for i in np.argsort(names))  # wi_0, wi_1, wo
  gelu = lambda z: 0.5 * z * (
      1 + np.tanh(  # noqa: E731 (mtf.gelu's form)
          np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
  expected = (gelu(x_np @ w0) * (x_np @ w1)) @ wo
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)

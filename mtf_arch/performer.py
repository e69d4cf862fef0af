"""Performer: linear-time attention with a ReLU kernel, in Mesh-TF einsums.

Choromanski et al. 2020, "Rethinking Attention with Performers",
https://arxiv.org/abs/2009.14794; Tay et al. 2022 "adopt the relu kernel
variant for our experiments" (https://arxiv.org/abs/2207.10551, section 3.1).

Attention softmax(q k^T) v is replaced by the kernel phi(q) phi(k)^T, with
phi one of two feature maps (the layer's `kernel`), applied per head:

  ReluKernel:        phi(x) = relu(x) + eps             (features: d_kv)
  RandomReluKernel:  phi(x) = relu(x W^T / sqrt(m)) + eps  (features: m)

The first is the "generalized attention" with the ReLU kernel and
deterministic features that google-research performer/fast_attention
defaults to (TensorFlow `Attention`: relu_kernel_transformation,
projection_matrix_type=None; JAX make_fast_generalized_attention:
features_type='deterministic', kernel_fn=relu, kernel_epsilon=0.001). The
second projects onto m orthogonal Gaussian random features W [m, d_kv] first
(their `create_projection_matrix` / GaussianOrthogonalRandomMatrix). Then

  out_t = phi(q_t) . S_t / phi(q_t) . z_t,
  S_t = sum_s phi(k_s) v_s^T,  z_t = sum_s phi(k_s),

summed over the keys that query t may see: its whole segment (encoder), or the
prefix of its segment (decoder). Unsegmented bidirectional sums are two
einsums; otherwise `linear_attention` goes in chunks of `chunk_size`
positions: kernel attention inside each chunk, (S, z) carried across chunks.
Nothing of shape [length, memory_length] (beyond one chunk) or [length,
features, d_kv] is ever built. In incremental decoding the state is (S, z) --
the running sums -- not the key/value history.

q, k, v and the output projection are Mesh-TF's ordinary attention
parameters (`attention_params`), so heads split over the `model` mesh
dimension exactly as in `SelfAttention`; neither kernel adds a parameter.
"""

import zlib

import gin
import mesh_tensorflow as mtf
import numpy as np
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf

FEATURES_DIM_NAME = "performer_features"
# Positions attended to quadratically at a time in causal or segmented
# attention (PerformerSelfAttention.chunk_size).
DEFAULT_CHUNK_SIZE = 64


def relu_features(x, kv_dim, numerical_stabilizer=1e-3):
  """phi(x) = relu(x) + eps, elementwise: the deterministic ReLU features.

  Args:
    x: an mtf.Tensor [..., d_kv] (queries or keys).
    kv_dim: x's d_kv dimension, renamed to the features dimension (same size).
    numerical_stabilizer: eps (google-research's default 1e-3).

  Returns:
    an mtf.Tensor [..., performer_features].
  """
  x = mtf.rename_dimension(x, kv_dim.name,
                           FEATURES_DIM_NAME)  # [..., features = d_kv]
  return mtf.relu(x) + numerical_stabilizer


def random_relu_features(x, projection, numerical_stabilizer=1e-3):
  """phi(x) = relu(x W^T / sqrt(m)) + eps, over the d_kv dimension of x.

  Args:
    x: an mtf.Tensor [..., d_kv] (queries or keys).
    projection: an mtf.Tensor [performer_features, d_kv].
    numerical_stabilizer: eps (google-research's default 1e-3).

  Returns:
    an mtf.Tensor [..., performer_features].
  """
  features_dim, kv_dim = projection.shape.dims
  out_shape = x.shape - kv_dim + features_dim
  x_dash = mtf.einsum([x, projection],
                      output_shape=out_shape)  # [..., heads, features]
  return mtf.relu(x_dash * features_dim.size**-0.5) + numerical_stabilizer


def orthogonal_gaussian_features(num_features, dim, seed):
  """A [num_features, dim] matrix of orthogonal Gaussian random features.

  Blocks of `dim` orthonormal rows (QR of a Gaussian matrix), each row
  rescaled by the norm of an independent Gaussian vector (google-research
  `create_projection_matrix(m, d, scaling=0)`). Stateless: the same `seed`
  gives the same matrix on every device and in every call.

  Args:
    num_features: m, the number of random features.
    dim: d_kv.
    seed: an int32 tf.Tensor or list of shape [2] (tf stateless seed).

  Returns:
    a float32 tf.Tensor [num_features, dim].
  """
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
  blocks = []
  num_blocks = -(-num_features // dim)
  for i in range(num_blocks):
    gaussian = tf.random.stateless_normal([dim, dim],
                                          seed + [0, 7919 * (i + 1)])
    q, _ = tf.linalg.qr(gaussian)
    blocks.append(tf.transpose(q))  # [dim, dim], orthonormal rows
  rows = tf.concat(blocks, 0)[:num_features]  # [num_features, dim]
  norms = tf.norm(
      tf.random.stateless_normal([num_features, dim], seed + [1, 0]),
      axis=1)  # [num_features]
  return rows * norms[:, None]  # [num_features, dim]


@gin.configurable
class ReluKernel(object):
  """Deterministic ReLU features phi(x) = relu(x) + eps, no projection.

  The feature dimension is d_kv itself. google-research's default Performer
  kernel in both its TensorFlow and JAX fast_attention.
  """

  def __init__(self, numerical_stabilizer=1e-3):
    """Records the hyperparameters.

    Args:
      numerical_stabilizer: eps added to the ReLU features.
    """
    self.numerical_stabilizer = numerical_stabilizer

  def features_dim(self, kv_dim):
    """The features dimension of phi(x) for x [..., kv_dim]."""
    return mtf.Dimension(FEATURES_DIM_NAME, kv_dim.size)

  def features(self, context, kv_dim, xs):
    """[phi(x) for x in xs]: each [..., d_kv] -> [..., performer_features]."""
    del context
    return [relu_features(x, kv_dim, self.numerical_stabilizer) for x in xs]


@gin.configurable
class RandomReluKernel(object):
  """Random-feature ReLU phi(x) = relu(x W^T / sqrt(m)) + eps (FAVOR+ style).

  W: m orthogonal Gaussian random features of d_kv, drawn per layer from a
  stateless seed (a hash of the layer's variable scope), optionally redrawn
  every `redraw_interval` steps; not a variable, so it adds no parameters.
  """

  def __init__(self,
               num_random_features=256,
               redraw_interval=0,
               numerical_stabilizer=1e-3,
               feature_seed=0):
    """Records the hyperparameters.

    Args:
      num_random_features: m, the number of random features per head.
      redraw_interval: draw new random features every this many training
        steps (keyed on the global step); 0 keeps one draw for the whole run.
      numerical_stabilizer: eps added to the ReLU features.
      feature_seed: added to the per-layer seed, to draw a different set of
        features.
    """
    self.num_random_features = num_random_features
    self.redraw_interval = redraw_interval
    self.numerical_stabilizer = numerical_stabilizer
    self.feature_seed = feature_seed

  def features_dim(self, kv_dim):
    del kv_dim
    return mtf.Dimension(FEATURES_DIM_NAME, self.num_random_features)

  def projection(self, context, kv_dim):
    """The layer's random features as an mtf.Tensor [features, d_kv].

    Computed in TensorFlow from a stateless seed and imported fully
    replicated, so every mesh slice (and every decoding step) sees the same
    matrix. Call it inside the layer's variable scope (its seed).
    """
    scope = tf.get_variable_scope().name
    layer_seed = zlib.crc32(scope.encode("utf-8")) + self.feature_seed
    layer_seed %= 2**31
    draw = tf.constant(0, tf.int32)
    if self.redraw_interval:
      step = tf.train.get_or_create_global_step()
      draw = tf.cast(step // self.redraw_interval, tf.int32)
    seed = tf.stack([tf.constant(layer_seed, tf.int32), draw])
    matrix = orthogonal_gaussian_features(self.num_random_features, kv_dim.size,
                                          seed)
    matrix = tf.cast(matrix, context.activation_dtype)
    return mtf.import_fully_replicated(
        context.mesh,
        matrix,
        mtf.Shape([self.features_dim(kv_dim), kv_dim]),
        name="performer_projection")

  def features(self, context, kv_dim, xs):
    """[phi(x) for x in xs], one draw of W for all of them."""
    projection = self.projection(context, kv_dim)
    return [
        random_relu_features(x, projection, self.numerical_stabilizer)
        for x in xs
    ]


def _chunking(length, chunk_size):
  """(number of chunks, chunk length <= chunk_size), least padding."""
  num_chunks = -(-length // chunk_size)
  return num_chunks, -(-length // num_chunks)


def _runs_tf(seg, batch, length, padded):
  """Run (segment occurrence) index of each position, int32 [B, padded].

  A run starts at position 0, wherever the segment id changes, and at each
  padding position appended beyond `length` (so padding sees nothing real).
  seg: int [B, length] or None (one segment).
  """
  if seg is None:
    change = tf.zeros([batch, length - 1], tf.bool)
  else:
    change = tf.not_equal(seg[:, 1:], seg[:, :-1])  # [B, L - 1]
  starts = tf.concat([
      tf.ones([batch, 1], tf.bool), change,
      tf.ones([batch, padded - length], tf.bool)
  ], 1)  # [B, padded]
  return tf.cumsum(tf.cast(starts, tf.int32), axis=1)  # [B, padded]


def _within_chunks(q, k, v, run, causal):
  """Sums over the visible keys of each query's own chunk.

  Args:
    q: float [B, H, n, C, F] query features, in n chunks of C positions.
    k: float [B, H, n, C, F] key features.
    v: float [B, H, n, C, E] values.
    run: int [B, 1, n, C] run indices.
    causal: only keys at positions <= the query's.

  Returns:
    float [B, H, n, C, E]: sum_s phi(q_t).phi(k_s) v_s over those keys.
  """
  visible = tf.equal(run[..., :, None], run[..., None, :])  # [B, 1, n, C, C]
  if causal:
    pos = tf.range(run.shape.as_list()[-1])
    visible = tf.logical_and(visible, pos[:, None] >= pos[None, :])
  scores = tf.matmul(q, k, transpose_b=True)  # [B, H, n, C, C]
  return tf.matmul(scores * tf.cast(visible, q.dtype), v)  # [B, H, n, C, E]


def _across_chunks(q, k, v, run, causal):
  """Sums over the keys in other chunks (earlier ones if causal) of each
  query's run.

  The state S_c (sum of phi(k_s) v_s^T over the positions before chunk c in
  the run open at its start) follows S_{c+1} = a_c S_c + U_c, with U_c the
  sum over chunk c's positions in the run open at its end and a_c = 1 iff no
  run starts in chunk c; a query in chunk c reads S_c iff it is in that run.
  Bidirectional attention adds the mirror image: the state of the run open
  at each chunk's end, over the positions after the chunk.
  Arguments as `_within_chunks`; returns float [B, H, n, C, E].
  """
  if run.shape.as_list()[2] == 1:
    return tf.zeros_like(v)
  first, last = run[..., 0], run[..., -1]  # [B, 1, n]: open at start, end
  none = tf.fill(tf.shape(first[..., :1]), -1)  # [B, 1, 1]
  before = tf.concat([none, last[..., :-1]], -1)  # [B, 1, n]: open before
  after = tf.concat([first[..., 1:], none], -1)  # [B, 1, n]: open after

  def same(a, b):
    return tf.cast(tf.equal(a, b), v.dtype)

  parts = [(
      same(run, last[..., None]),  # in U_c: the run open at the end
      same(last, before),  # a_c: no run starts in chunk c
      same(run, before[..., None]),  # reading S_c: in the run open before
  )]
  if not causal:  # the mirror image, from the last chunk back
    parts.append((
        same(run, first[..., None]),
        same(first, after),
        same(run, after[..., None]),
    ))
  columns = tf.concat([v * in_run[..., None] for in_run, _, _ in parts], -1)
  updates = tf.split(tf.matmul(k, columns, transpose_a=True), len(parts),
                     -1)  # len(parts) x [B, H, n, F, E]
  states = []
  for i, (_, keep, _) in enumerate(parts):  # S_0 = 0, S_c+1 = a_c S_c + U_c
    u = tf.unstack(updates[i], axis=2)  # n x [B, H, F, E]
    a = tf.unstack(keep[..., None, None], axis=2)  # n x [B, 1, 1, 1]
    order = list(range(len(u)))[::-1 if i else 1]  # mirror: last to first
    part = {order[0]: tf.zeros_like(u[0])}  # [B, H, F, E] each
    for prev, c in zip(order, order[1:]):
      part[c] = a[prev] * part[prev] + u[prev]
    states.append(tf.stack([part[c] for c in range(len(u))], 2))
  states = tf.concat(states, -1)  # [B, H, n, F, E * len(parts)]
  reads = tf.split(tf.matmul(q, states), len(parts),
                   -1)  # len(parts) x [B, H, n, C, E]
  return tf.add_n([
      r * sees[..., None] for r, (_, _, sees) in zip(reads, parts)
  ])  # [B, H, n, C, E]


def _chunked_attention_tf(q, k, v, seg, num_batch_axes, causal, chunk_size):
  """Exact kernel attention over segments, chunk by chunk, in TensorFlow.

  Memory O(length * chunk_size + length / chunk_size * features * d_kv)
  per head: never [length, features, d_kv], nor [length, length] for a
  length over chunk_size.

  Args:
    q: float [batch..., L, heads..., F] query features.
    k: float, q's shape: key features.
    v: float [batch..., L, heads..., D] values.
    seg: int [batch..., L] segment ids, or None (one segment).
    num_batch_axes: the number of leading batch axes.
    causal: a query sees keys at positions <= its own (else all its segment).
    chunk_size: the largest chunk.

  Returns:
    float, v's shape: the attention output.
  """
  out_shape = v.shape.as_list()
  shape = q.shape.as_list()
  batch = int(np.prod(shape[:num_batch_axes]))
  length = shape[num_batch_axes]
  heads = int(np.prod(shape[num_batch_axes + 1:-1]))
  num_chunks, chunk = _chunking(length, chunk_size)
  padded = num_chunks * chunk
  v = tf.reshape(v, [batch, length, heads, -1])  # [B, L, H, D]
  v = tf.concat([v, tf.ones_like(v[..., :1])], -1)  # [B, L, H, E = D + 1]

  def chunks(x):  # [B, L, H, X] -> [B, H, n, C, X], zero-padded
    x = tf.reshape(x, [batch, length, heads, -1])
    x = tf.pad(x, [[0, 0], [0, padded - length], [0, 0], [0, 0]])
    x = tf.reshape(x, [batch, num_chunks, chunk, heads, -1])
    return tf.transpose(x, [0, 3, 1, 2, 4])

  q, k, v = chunks(q), chunks(k), chunks(v)
  if seg is not None:
    seg = tf.reshape(seg, [batch, length])
  run = tf.reshape(
      _runs_tf(seg, batch, length, padded),
      [batch, 1, num_chunks, chunk])  # [B, 1, n, C]
  sums = (_within_chunks(q, k, v, run, causal) +
          _across_chunks(q, k, v, run, causal))  # [B, H, n, C, E]
  sums = tf.reshape(sums, [batch, heads, padded, -1])  # [B, H, Lp, E]
  if padded > length:
    sums = tf.split(sums, [length, padded - length], 2)[0]  # [B, H, L, E]
  numerator, denominator = tf.split(sums, [out_shape[-1], 1], -1)
  out = numerator / denominator  # [B, H, L, D]
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), out_shape)


def linear_attention(q_features,
                     k_features,
                     v,
                     length_dim,
                     kv_dim,
                     sequence_id=None,
                     causal=False,
                     chunk_size=DEFAULT_CHUNK_SIZE):
  """Kernel attention sum_s phi(q_t).phi(k_s) v_s / sum_s phi(q_t).phi(k_s).

  Bidirectional attention without segments takes two einsums over the whole
  sequence; causal or segmented attention goes chunk by chunk
  (`_chunked_attention_tf`, one slice-wise TensorFlow function whose
  gradient is TensorFlow's).

  Args:
    q_features: mtf.Tensor [batch..., length, heads..., performer_features].
    k_features: same shape as q_features.
    v: mtf.Tensor [batch..., length, heads..., d_kv].
    length_dim: the length dimension shared by all three (not split).
    kv_dim: the d_kv dimension of v.
    sequence_id: optional int mtf.Tensor [batch..., length]: a query sees
      only keys of its own segment (packing, padding).
    causal: a query sees only keys at positions <= its own.
    chunk_size: the largest chunk of positions attended to quadratically.

  Returns:
    an mtf.Tensor [batch..., length, heads..., d_kv].
  """
  features_dim = q_features.shape.dims[-1]
  out_shape = mtf.Shape(q_features.shape.dims[:-1] + [kv_dim])
  if sequence_id is None and not causal:
    kv = mtf.einsum([k_features, v],
                    output_shape=k_features.shape - length_dim +
                    kv_dim)  # [batch, heads, features, d_kv]
    k_sum = mtf.reduce_sum(
        k_features, reduced_dim=length_dim)  # [batch, heads, features]
    numerator = mtf.einsum(
        [q_features, kv],
        output_shape=out_shape)  # [batch, length, heads, d_kv]
    denominator = mtf.einsum([q_features, k_sum],
                             output_shape=q_features.shape -
                             features_dim)  # [batch, length, heads]
    return numerator / denominator
  if k_features.shape != q_features.shape:
    k_features = mtf.transpose(k_features, q_features.shape)
  if v.shape != out_shape:
    v = mtf.transpose(v, out_shape)  # [batch, length, heads, d_kv]
  axis = q_features.shape.dims.index(length_dim)
  inputs = [q_features, k_features, v]
  if sequence_id is not None:
    if sequence_id.shape.dims != q_features.shape.dims[:axis + 1]:
      raise ValueError("sequence_id %s must be the leading dims of %s" %
                       (sequence_id.shape, q_features.shape))
    inputs.append(sequence_id)

  def fn(q, k, v, seg=None):
    return _chunked_attention_tf(q, k, v, seg, axis, causal, chunk_size)

  return mtf.slicewise(
      fn,
      inputs,
      output_shape=out_shape,
      output_dtype=v.dtype,
      splittable_dims=[
          d for d in q_features.shape.dims[:-1] if d != length_dim
      ],
      name="performer_chunked_attention")


@gin.configurable
class PerformerSelfAttention(transformer_layers.SelfAttention):
  """Self-attention with the Performer's ReLU-kernel linear attention.

  Bidirectional in the encoder, causal (prefix sums) in a fully
  autoregressive decoder. Takes SelfAttention's `num_heads` and
  `key_value_size` (and its gin bindings); relative position biases do not
  apply (there is no attention matrix to add them to), so position comes
  from the model's absolute position embeddings. For the same reason
  SelfAttention's attention-weight `dropout_rate` has nothing to act on and
  is ignored (the residual dropout of the layer stack still applies).
  """

  def __init__(self, kernel=None, chunk_size=DEFAULT_CHUNK_SIZE, **kwargs):
    """Records the hyperparameters.

    Args:
      kernel: the feature map phi, an object with `features_dim(kv_dim)` and
        `features(context, kv_dim, xs)`: `ReluKernel()` (the default) or
        `RandomReluKernel()`.
      chunk_size: positions per chunk in causal or segmented attention
        (`linear_attention`); changes the speed, not the result.
      **kwargs: SelfAttention's arguments (num_heads, key_value_size, ...).
    """
    super().__init__(**kwargs)
    if self.relative_attention_type is not None:
      raise ValueError("PerformerSelfAttention has no attention matrix to add "
                       "relative position biases to; unset "
                       "relative_attention_type")
    self.kernel = ReluKernel() if kernel is None else kernel
    self.chunk_size = chunk_size

  @property
  def features_dim(self):
    return self.kernel.features_dim(self.kv_dim)

  def state_shapes(self, context, heads_dims):
    """Shapes of the incremental state (S, z)."""
    prefix = list(context.batch_dims) + list(heads_dims) + [self.features_dim]
    return mtf.Shape(prefix + [self.kv_dim]), mtf.Shape(prefix)

  def call(self, context, x, losses=None):
    """Applies the layer. x: [batch..., length, d_model] ([batch..., d_model]
    in incremental mode)."""
    del losses
    params = self.make_params(context)
    q = params.compute_q(x)  # [batch, length, heads, d_kv]
    k = params.compute_k(x)  # [batch, length, heads, d_kv]
    v = params.compute_v(x)  # [batch, length, heads, d_kv]
    q_features, k_features = self.kernel.features(
        context, self.kv_dim, [q, k])  # [batch, length, heads, features]
    kv_shape, k_sum_shape = self.state_shapes(context, params.query_heads_dims)
    if context.mode == "incremental":
      old_kv, old_k_sum = context.get_states(2)
      kv = old_kv + mtf.einsum([k_features, v],
                               output_shape=kv_shape)  # [batch, heads, f, d_kv]
      k_sum = old_k_sum + k_features  # [batch, heads, features]
      context.record_new_states([kv, k_sum])
      numerator = mtf.einsum([q_features, kv],
                             output_shape=v.shape)  # [batch, heads, d_kv]
      denominator = mtf.einsum([q_features, k_sum],
                               output_shape=v.shape -
                               self.kv_dim)  # [batch, heads]
      o = numerator / denominator
    else:
      causal = context.model.fully_autoregressive
      sequence_id = context.sequence_id
      if not (isinstance(sequence_id, mtf.Tensor) and
              context.length_dim in sequence_id.shape):
        sequence_id = None
      o = linear_attention(
          q_features,
          k_features,
          v,
          context.length_dim,
          self.kv_dim,
          sequence_id=sequence_id,
          causal=causal,
          chunk_size=self.chunk_size)
      if context.mode == "first_part":
        # The state after the given prefix: sums over positions before
        # initial_position (decoding then continues from there).
        before = mtf.cast(
            mtf.less(
                mtf.range(context.mesh, context.length_dim, tf.int32),
                context.initial_position),
            context.activation_dtype)  # [batch, length]
        k_prefix = k_features * before  # [batch, length, heads, features]
        context.record_new_states([
            mtf.einsum([k_prefix, v],
                       output_shape=kv_shape),  # [batch, heads, f, d_kv]
            mtf.reduce_sum(k_prefix,
                           output_shape=k_sum_shape)  # [batch, heads, f]
        ])
    return params.compute_output(
        o, output_shape=self.expected_attention_output_shape(x, params))

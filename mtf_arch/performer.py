"""Performer: linear-time attention with the ReLU kernel, in Mesh-TF einsums.

Choromanski et al. 2020, "Rethinking Attention with Performers",
https://arxiv.org/abs/2009.14794 (FAVOR); Tay et al. 2022 adopt "the relu
kernel variant" (https://arxiv.org/abs/2207.10551, section 3.1).

Attention softmax(q k^T) v is replaced by the kernel phi(q) phi(k)^T with

  phi(x) = relu(x W^T / sqrt(m)) + eps,

W an [m, d_kv] matrix of orthogonal Gaussian random features (as
google-research performer/fast_attention/tensorflow/fast_attention.py's
`relu_kernel_transformation` and `create_projection_matrix`), so that

  out_t = phi(q_t) . S_t / phi(q_t) . z_t,
  S_t = sum_s phi(k_s) v_s^T,  z_t = sum_s phi(k_s),

summed over the keys that query t may see: its whole segment (encoder), or the
prefix of its segment (decoder; prefix sums). Nothing of shape [length,
memory_length] is ever built. In incremental decoding the state is (S, z) --
the running sums -- not the key/value history.

q, k, v and the output projection are Mesh-TF's ordinary attention
parameters (`attention_params`), so heads split over the `model` mesh
dimension exactly as in `SelfAttention`.
"""

import zlib

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf

FEATURES_DIM_NAME = "performer_features"


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


def relu_features(x, projection, numerical_stabilizer=1e-3):
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


def _segment_bounds_tf(seg):
  """First and last index of each position's segment. seg: int [B, L]."""
  batch, length = seg.shape.as_list()
  new_run = tf.concat([
      tf.ones([batch, 1], tf.int32),
      tf.cast(tf.not_equal(seg[:, 1:], seg[:, :-1]), tf.int32)
  ],
                      axis=1)  # [B, L]
  run = tf.cumsum(new_run, axis=1) - 1  # [B, L], run index within the row
  flat_run = run + length * tf.range(batch)[:, None]  # [B, L]
  pos = tf.tile(tf.range(length)[None, :], [batch, 1])  # [B, L]
  first = tf.math.unsorted_segment_min(pos, flat_run, batch * length)
  last = tf.math.unsorted_segment_max(pos, flat_run, batch * length)
  return tf.gather(first, flat_run), tf.gather(last, flat_run)  # [B, L] each


def _segment_sums_tf(x, seg, num_batch_axes, causal):
  """Per-position sums of x over the position's segment (or its prefix).

  Args:
    x: float tf.Tensor [batch..., L, rest...].
    seg: int tf.Tensor [batch..., L] (contiguous segment ids; padding is one
      more segment, so it never mixes with real tokens).
    num_batch_axes: how many leading batch axes x and seg have.
    causal: sum over s <= t within the segment, else over the whole segment.

  Returns:
    a tf.Tensor shaped like x.
  """
  shape = x.shape.as_list()
  batch = 1
  for n in shape[:num_batch_axes]:
    batch *= n
  length = shape[num_batch_axes]
  x3 = tf.reshape(x, [batch, length, -1])  # [B, L, rest]
  start, end = _segment_bounds_tf(tf.reshape(seg, [batch, length]))
  inclusive = tf.cumsum(x3, axis=1)  # [B, L, rest]
  before_start = tf.gather(
      inclusive - x3, start, axis=1, batch_dims=1)  # [B, L, rest]
  upto = inclusive if causal else tf.gather(
      inclusive, end, axis=1, batch_dims=1)  # [B, L, rest]
  return tf.reshape(upto - before_start, shape)  # [batch..., L, rest...]


def prefix_or_segment_sums(x, length_dim, sequence_id=None, causal=True):
  """Sums over keys visible from each position, in O(length) memory.

  A slice-wise tf.cumsum (mtf.cumsum builds a [length, length] mask).

  Args:
    x: an mtf.Tensor whose dimensions start with the batch dimensions
      followed by `length_dim`.
    length_dim: the sequence mtf.Dimension (not split over the mesh).
    sequence_id: optional int mtf.Tensor [batch..., length] of segment ids.
    causal: prefix (s <= t) or whole-segment sums.

  Returns:
    an mtf.Tensor shaped like x.
  """
  axis = x.shape.dims.index(length_dim)
  splittable = [d for d in x.shape.dims if d != length_dim]
  if sequence_id is None:
    return mtf.slicewise(
        lambda t: tf.cumsum(t, axis=axis), [x],
        output_shape=x.shape,
        splittable_dims=splittable,
        name="performer_prefix_sum")
  if sequence_id.shape.dims != x.shape.dims[:axis + 1]:
    raise ValueError("sequence_id %s must be x's leading dims %s" %
                     (sequence_id.shape, x.shape))
  return mtf.slicewise(
      lambda t, s: _segment_sums_tf(t, s, axis, causal), [x, sequence_id],
      output_shape=x.shape,
      splittable_dims=splittable,
      name="performer_segment_sum")


def linear_attention(q_features,
                     k_features,
                     v,
                     length_dim,
                     kv_dim,
                     sequence_id=None,
                     causal=False):
  """Kernel attention sum_s phi(q_t).phi(k_s) v_s / sum_s phi(q_t).phi(k_s).

  Args:
    q_features: mtf.Tensor [batch..., length, heads, performer_features].
    k_features: same shape as q_features.
    v: mtf.Tensor [batch..., length, heads, d_kv].
    length_dim: the length dimension shared by all three.
    kv_dim: the d_kv dimension of v.
    sequence_id: optional int mtf.Tensor [batch..., length]: a query sees
      only keys of its own segment (packing, padding).
    causal: a query sees only keys at positions <= its own.

  Returns:
    an mtf.Tensor [batch..., length, heads, d_kv].
  """
  features_dim = q_features.shape.dims[-1]
  out_shape = v.shape
  if sequence_id is None and not causal:
    kv = mtf.einsum([k_features, v],
                    output_shape=k_features.shape - length_dim +
                    kv_dim)  # [batch, heads, features, d_kv]
    k_sum = mtf.reduce_sum(
        k_features, reduced_dim=length_dim)  # [batch, heads, features]
  else:
    kv = mtf.einsum([k_features, v], output_shape=k_features.shape +
                    kv_dim)  # [batch, length, heads, features, d_kv]
    kv = prefix_or_segment_sums(kv, length_dim, sequence_id, causal)
    k_sum = prefix_or_segment_sums(k_features, length_dim, sequence_id,
                                   causal)  # [batch, length, heads, features]
  numerator = mtf.einsum([q_features, kv],
                         output_shape=out_shape)  # [batch, length, heads, d_kv]
  denominator = mtf.einsum([q_features, k_sum],
                           output_shape=q_features.shape -
                           features_dim)  # [batch, length, heads]
  return numerator / denominator


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

  def __init__(self,
               num_random_features=256,
               redraw_interval=0,
               numerical_stabilizer=1e-3,
               feature_seed=0,
               **kwargs):
    """Records the hyperparameters.

    Args:
      num_random_features: m, the number of random features per head.
      redraw_interval: draw new random features every this many training
        steps (keyed on the global step); 0 keeps one draw for the whole run.
      numerical_stabilizer: eps added to the ReLU features.
      feature_seed: added to the per-layer seed (a hash of the layer's
        variable scope), to draw a different set of features.
      **kwargs: SelfAttention's arguments (num_heads, key_value_size, ...).
    """
    super().__init__(**kwargs)
    if self.relative_attention_type is not None:
      raise ValueError("PerformerSelfAttention has no attention matrix to add "
                       "relative position biases to; unset "
                       "relative_attention_type")
    self.num_random_features = num_random_features
    self.redraw_interval = redraw_interval
    self.numerical_stabilizer = numerical_stabilizer
    self.feature_seed = feature_seed

  @property
  def features_dim(self):
    return mtf.Dimension(FEATURES_DIM_NAME, self.num_random_features)

  def projection(self, context):
    """The layer's random features as an mtf.Tensor [features, d_kv].

    Computed in TensorFlow from a stateless seed and imported fully
    replicated, so every mesh slice (and every decoding step) sees the same
    matrix; not a variable, so it adds no parameters.
    """
    scope = tf.get_variable_scope().name
    layer_seed = zlib.crc32(scope.encode("utf-8")) + self.feature_seed
    layer_seed %= 2**31
    draw = tf.constant(0, tf.int32)
    if self.redraw_interval:
      step = tf.train.get_or_create_global_step()
      draw = tf.cast(step // self.redraw_interval, tf.int32)
    seed = tf.stack([tf.constant(layer_seed, tf.int32), draw])
    matrix = orthogonal_gaussian_features(self.num_random_features,
                                          self.key_value_size, seed)
    matrix = tf.cast(matrix, context.activation_dtype)
    return mtf.import_fully_replicated(
        context.mesh,
        matrix,
        mtf.Shape([self.features_dim, self.kv_dim]),
        name="performer_projection")

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
    projection = self.projection(context)
    q_features = relu_features(q, projection, self.numerical_stabilizer)
    k_features = relu_features(k, projection, self.numerical_stabilizer)
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
          causal=causal)
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

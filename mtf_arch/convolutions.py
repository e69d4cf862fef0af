"""Lightweight and Dynamic Convolutions (Wu et al. 2019) as Mesh-TF layers.

Paper: "Pay Less Attention with Lightweight and Dynamic Convolutions",
https://arxiv.org/abs/1901.10430 (section 3); used by Tay et al. 2022
(https://arxiv.org/abs/2207.10551) in place of self-attention.

A block replaces self-attention in the encoder and the decoder (Wu et al.,
Figure 2): a GLU input projection d_model -> d_model, a depthwise convolution
over the length dimension whose d_model channels are split into `num_heads`
groups that share one kernel (softmax-normalised over the kernel width), and
an output projection d_model -> d_model. Lightweight kernels are parameters;
dynamic kernels are predicted from the current position's input. In an
autoregressive stack (the decoder) the convolution is causal and supports
incremental decoding: its state is the last kernel_size-1 inputs.

These blocks are the published variant (gin/arch/lconv_wu.gin,
dconv_wu.gin). The default gin/arch/lconv.gin and dconv.gin use
mesh_tensorflow's `LocalConvAttnBlock` as Narang et al. 2021 configured it,
because Table 1's parameter and FLOPs columns follow that block; it differs
from Wu et al.: it never passes `num_unique_depth_filters` to its inner layer
(so every channel gets its own kernel, and a dynamic kernel is a d_model x
d_model map per tap), it has a fixed 9-tap window and no DropConnect, it
masks by the layer stack's own input ids (so packed examples bleed into
each other), and it adds a pointwise projection Wu et al. do not have.

Channels are laid out as [heads, conv_channels] so that the `heads` dimension
splits over the `model` mesh dimension, as attention heads do.
"""

import math

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import tensorflow.compat.v1 as tf

from mtf_arch.errors import ConfigError

_TAPS = "conv_taps"  # the kernel-width dimension (and the decoding window)


class ConvBlock(transformer.TransformerLayer):
  """GLU -> depthwise convolution with shared, normalised kernels -> output.

  Subclasses define `kernel_logits`, the unnormalised kernels.
  """

  def __init__(self,
               num_heads=8,
               kernel_sizes=(3, 7, 15, 31),
               dropout_rate=0.0):
    """Records the hyperparameters.

    Args:
      num_heads: H, the number of distinct kernels per position (Wu et al.'s
        weight sharing: d_model / H consecutive channels share one kernel).
      kernel_sizes: kernel width of each block of the stack, first layer
        first; deeper layers reuse the last entry.
      dropout_rate: DropConnect rate on the normalised kernels (Wu et al.'s
        weight dropout), in training only.
    """
    self.num_heads = num_heads
    self.kernel_sizes = tuple(kernel_sizes)
    self.dropout_rate = dropout_rate

  def kernel_logits(self, context, u, taps_dim):
    """Unnormalised kernels.

    Args:
      context: a transformer.Context.
      u: the convolution input, [batch, (length,) heads, conv_channels].
      taps_dim: the kernel-width Dimension.

    Returns:
      a Tensor whose dims include heads and taps_dim.
    """
    raise NotImplementedError

  def kernel_size(self, context):
    """The kernel width of this block: its index among the stack's blocks."""
    blocks = [
        layer for layer in context.model.layer_stack.layers
        if isinstance(layer, ConvBlock)
    ]
    index = [i for i, b in enumerate(blocks) if b is self][0]
    return self.kernel_sizes[min(index, len(self.kernel_sizes) - 1)]

  def offsets(self, context, kernel_size):
    """Relative source position of each tap (causal in a decoder).

    Non-causal kernels are centred, with the extra tap of an even width on
    the right, as fairseq's padding_l = (K - 1) // 2.
    """
    if context.model.fully_autoregressive:
      return list(range(-(kernel_size - 1), 1))
    left = (kernel_size - 1) // 2
    return list(range(-left, kernel_size - left))

  def kernels(self, context, u, taps_dim):
    """Softmax-normalised kernels (with weight dropout in training)."""
    w = mtf.softmax(self.kernel_logits(context, u, taps_dim), taps_dim)
    if context.train and self.dropout_rate > 0:
      w = mtf.dropout(w, context.train, keep_prob=1.0 - self.dropout_rate)
    return w

  def call(self, context, x, losses=None):
    """Applies the block to x [batch, (length,) d_model]."""
    model_dim = context.model.model_dim
    if model_dim.size % self.num_heads:
      raise ConfigError("d_model=%d is not divisible by the convolution's "
                        "num_heads=%d" % (model_dim.size, self.num_heads))
    heads = mtf.Dimension("heads", self.num_heads)
    channels = mtf.Dimension("conv_channels", model_dim.size // self.num_heads)
    dense = dict(
        reduced_dims=[model_dim],
        new_dims=[heads, channels],
        use_bias=False,
        variable_dtype=context.variable_dtype)
    # GLU input projection (Wu et al., section 3): value * sigmoid(gate).
    u = mtf.layers.dense(x, name="glu_value", **dense)  # [.., heads, channels]
    u *= mtf.sigmoid(mtf.layers.dense(x, name="glu_gate", **dense))
    k = self.kernel_size(context)
    taps = mtf.Dimension(_TAPS, k)
    w = self.kernels(context, u, taps)  # [(batch, length,) heads, taps]
    if context.mode == "incremental":
      y = self._incremental(context, u, w, taps)
    else:
      if context.mode == "first_part" and context.model.fully_autoregressive:
        self._record_first_part_state(context, u, k)
      y = self._convolve(context, u, w, taps)
    return mtf.layers.dense(
        y,
        reduced_dims=[heads, channels],
        new_dims=[model_dim],
        use_bias=False,
        variable_dtype=context.variable_dtype,
        name="output")  # [batch, (length,) d_model]

  def _convolve(self, context, u, w, taps):
    """Full-sequence convolution: one shift per tap, masked by segment.

    out[i] = sum_k w[i, k] * u[i + offset_k], where positions outside the
    sequence, padding and other packed segments contribute zero (fairseq
    zero-pads; the kernel is not renormalised).
    """
    length = context.length_dim
    seg = context.sequence_id
    seg = seg if isinstance(seg, mtf.Tensor) else None
    out = None
    for i, offset in enumerate(self.offsets(context, taps.size)):
      src = mtf.shift(u, -offset, length, wrap=False)  # u[i + offset]
      if seg is not None:
        src_seg = mtf.shift(seg, -offset, length, wrap=False)  # [batch, length]
        same = mtf.logical_and(
            mtf.equal(src_seg, seg), mtf.not_equal(src_seg, 0))
        src *= mtf.cast(same, u.dtype)
      w_i = mtf.gather(w, i, taps)  # [(batch, length,) heads]
      out = src * w_i if out is None else out + src * w_i
    return out  # [batch, length, heads, conv_channels]

  def _record_first_part_state(self, context, u, kernel_size):
    """State for incremental decoding: u at positions p-K+1 .. p-1.

    p is context.initial_position (the first position to decode);
    positions before the sequence start are zero.
    """
    window = mtf.Dimension(_TAPS, kernel_size - 1)
    length = context.length_dim
    shifted = mtf.shift(u, kernel_size - 1, length, wrap=False)  # u[j - K + 1]
    indices = context.initial_position + mtf.range(u.mesh, window, tf.int32)
    out_shape = mtf.Shape(u.shape.dims[:u.shape.dims.index(length)] + [window] +
                          u.shape.dims[u.shape.dims.index(length) + 1:])
    context.record_new_states([
        mtf.gather(shifted, indices, length, output_shape=out_shape)
    ])  # [batch, K-1, heads, conv_channels]

  def _incremental(self, context, u, w, taps):
    """One decoding step: u is [batch, heads, conv_channels]."""
    state, = context.get_states(1)  # [batch, K-1, heads, conv_channels]
    one = mtf.Dimension(_TAPS, 1)
    u1 = mtf.reshape(u, mtf.Shape(u.shape.dims[:-2] + [one] +
                                  u.shape.dims[-2:]))  # [batch, 1, heads, ch]
    window = mtf.concat([state, u1], _TAPS)  # [batch, K, heads, ch]
    context.record_new_states([mtf.slice(window, 1, taps.size - 1,
                                         _TAPS)])  # [batch, K-1, ..]
    return mtf.einsum([window, w],
                      output_shape=u.shape)  # [batch, heads, conv_channels]


@gin.configurable
class LightweightConv(ConvBlock):
  """Lightweight convolution: one learned kernel per head (Wu et al. eq. 3)."""

  def kernel_logits(self, context, u, taps_dim):
    heads = u.shape.get_dim_by_name("heads")
    # fairseq initialises the [H, 1, K] weight with Xavier uniform.
    limit = math.sqrt(6.0 / (taps_dim.size + heads.size * taps_dim.size))
    return mtf.get_variable(
        context.mesh,
        "kernel",
        mtf.Shape([heads, taps_dim]),
        initializer=tf.random_uniform_initializer(-limit, limit),
        dtype=context.variable_dtype)  # [heads, taps]


@gin.configurable
class DynamicConv(ConvBlock):
  """Dynamic convolution: kernels predicted from the current input (eq. 4).

  f(X_i) = W^Q X_i with W^Q in R^{H x K x d}, where X_i is the convolution's
  input at position i (the GLU output, as fairseq's DynamicConv1dTBC).
  """

  def kernel_logits(self, context, u, taps_dim):
    heads = u.shape.get_dim_by_name("heads")
    # The predictor reads all channels: gather the heads split over `model`.
    heads_in = mtf.Dimension("conv_heads_in", heads.size)
    u_all = mtf.rename_dimension(u, "heads", heads_in.name)
    return mtf.layers.dense(
        u_all,
        reduced_dims=u_all.shape.dims[-2:],
        new_dims=[heads, taps_dim],
        use_bias=False,
        variable_dtype=context.variable_dtype,
        name="kernel_predictor")  # [batch, (length,) heads, taps]

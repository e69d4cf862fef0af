"""The Evolved Transformer's decoder convolutions, masked by segment.

Paper: So et al. 2019, "The Evolved Transformer",
https://arxiv.org/abs/1901.11117 (Figure 4's decoder cell); used by Tay et
al. 2022 (https://arxiv.org/abs/2207.10551), section 3.1.

Why not mesh_tensorflow's `evolved_transformer.DecoderConvolutionalLayer` as
it is: its three `SeparableConv1DLayer`s zero every position whose
`context.inputs` id is 0 before convolving. In the decoder, `context.inputs`
are the *shifted* targets, which are 0 at the first position of every
sequence (the BOS input), so the full (teacher-forced) pass zeroes position
0, while incremental decoding zeroes nothing: the 11x1 and 7x1 convolutions
look back up to 10 positions, so every output in the first 10 positions
(and, through the stacked convolutions and attention, later ones) differs
between greedy decoding and the teacher-forced pass. The stock layer also
lets packed examples bleed into each other, which unpacked decoding never
sees, and, when decoding continues a partial sequence that ends less than
filter_size positions before the length, records zeros in place of its last
inputs (see `SegmentSeparableConv1D.record_states_first_part_mode`).

Here each tap of the depthwise convolution reads its source position only if
it lies in the same segment (`context.sequence_id`, whose zeros are the
targets' padding); the BOS position is an ordinary input. Incremental
decoding (one sequence, no padding) keeps, as the stock layer does, a state
of the last filter_size inputs, unmasked: exactly the values the full pass
reads. Variables have the stock names and shapes, so checkpoints carry over.
"""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import evolved_transformer
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf


@gin.configurable
class SegmentSeparableConv1D(transformer_layers.SeparableConv1DLayer):
  """1D separable convolution over length that stays inside each segment.

  Same hyperparameters and variables as mesh_tensorflow's
  `SeparableConv1DLayer` (a per-channel weight per tap, then a pointwise
  dense); only the masking differs: out[i] sums tap k over x[i + k] for
  which sequence_id[i + k] == sequence_id[i] != 0. Without a sequence_id
  tensor (e.g. while decoding) the whole length is one segment.
  """

  def call(self, context, x, losses=None, all_kernel_wts=None):
    """Applies the convolution.

    Args:
      context: a transformer.Context.
      x: a Tensor, [batch, length, channels], or [batch, channels] in
        incremental mode.
      losses: unused.
      all_kernel_wts: an optional list of per-tap weights (as the parent's).

    Returns:
      a Tensor, [batch, length, output_size] ([batch, output_size] in
      incremental mode).
    """
    del losses
    if context.mode == "incremental":
      # [batch, channels] -> the last filter_size inputs [batch, length, ch].
      window = self.record_states_incremental_mode(context, x, self.filter_size)
      length = window.shape.dims[-2]
      output = self._convolve(window, length, None, all_kernel_wts)
      # Only the window's last position is the current step: [batch, out].
      output = mtf.gather(output, self.filter_size - 1, length)
    else:
      if context.mode == "first_part":
        self.record_states_first_part_mode(context, x, self.filter_size)
      seg = context.sequence_id
      seg = seg if isinstance(seg, mtf.Tensor) else None  # [batch, length]
      output = self._convolve(x, context.length_dim, seg, all_kernel_wts)
    if self._activation != "linear":
      output = getattr(mtf, self._activation)(output)
    return output

  def record_states_first_part_mode(self,
                                    context,
                                    x,
                                    filter_size,
                                    length_dim_name="length"):
    """Records x at positions p-filter_size .. p-1 for incremental decoding.

    p is context.initial_position; positions before the sequence start are
    zero. The parent gathers entry k from x shifted right by filter_size, at
    position p + k, which is past the end of the length dimension (so reads
    zero instead of x[p - filter_size + k]) whenever p + k >= length: a
    partial sequence whose end is within filter_size of the length got a
    wrong state. This gathers x[p - filter_size + k] directly.

    Args:
      context: a transformer.Context.
      x: a Tensor, [batch, length, channels].
      filter_size: the window's size.
      length_dim_name: the window dimension's name in the recorded state.
    """
    length = x.shape.dims[-2]
    # A window dimension named apart from x's length while both are present.
    window = mtf.Dimension("conv_window", filter_size)
    # [batch, window]; negative indices gather zeros.
    indices = (
        context.initial_position - filter_size +
        mtf.range(x.mesh, window, tf.int32))
    state = mtf.gather(
        x,
        indices,
        length,
        output_shape=mtf.Shape(x.shape.dims[:-2] + [window] +
                               x.shape.dims[-1:]))  # [batch, window, ch]
    context.record_new_states([
        mtf.rename_dimension(state, window.name, length_dim_name)
    ])  # [batch, length=filter_size, channels]

  def _convolve(self, x, length, seg, all_kernel_wts):
    """mtf.layers.separable_conv1d with a per-tap segment mask.

    Args:
      x: a Tensor, [batch, length, channels].
      length: the length Dimension of x.
      seg: an optional int Tensor, [batch, length]: segment ids, 0 = padding.
      all_kernel_wts: an optional list of per-tap weights.

    Returns:
      a Tensor, [batch, length, output_size].
    """
    depth_dim = x.shape.dims[-1]
    output_dim = mtf.Dimension(depth_dim.name, self._output_size)
    # The scopes and names of mtf.layers.separable_conv1d and its
    # _depthwise_conv1d_hack, so that the variables are the stock ones.
    with tf.variable_scope("separable_conv1d"):
      depthwise = 0
      with tf.variable_scope("depthwise_conv_hack"):
        for i in range(self.filter_size):
          offset = self._min_relative_pos + i
          src = mtf.shift(x, -offset, length, wrap=False)  # x[i + offset]
          if seg is not None:
            src_seg = mtf.shift(seg, -offset, length, wrap=False)
            same = mtf.logical_and(
                mtf.equal(src_seg, seg), mtf.not_equal(src_seg, 0))
            src *= mtf.cast(same, x.dtype)  # [batch, length, channels]
          depthwise += mtf.layers.dense(
              src,
              new_dims=[],
              reduced_dims=[],
              expert_dims=[depth_dim],
              kernel_weights=all_kernel_wts[i] if all_kernel_wts else None,
              name="depthwise_dense_%d" % i,
              use_bias=i == 0,
              kernel_initializer=mtf.layers.VarianceScalingInitializer(
                  scale=self._depthwise_filter_initializer_scale /
                  self.filter_size))  # [batch, length, channels]
      return mtf.layers.dense(
          depthwise,
          new_dims=[output_dim],
          reduced_dims=[depth_dim],
          name="pointwise_dense",
          use_bias=True,
          kernel_initializer=mtf.layers.VarianceScalingInitializer(
              scale=self._pointwise_filter_initializer_scale)
      )  # [batch, length, output_size]


@gin.configurable
class DecoderConvolutionalLayer(evolved_transformer.DecoderConvolutionalLayer):
  """So et al.'s decoder convolutions with segment-masked separable convs.

  [11x1 sep conv 2d, ReLU | 7x1 sep conv d/2] -> layer norm -> 7x1 sep conv,
  as mesh_tensorflow's layer (whose `call` this inherits), with each
  separable convolution a `SegmentSeparableConv1D`.
  """

  def __init__(self,
               d_model,
               dropout_rate,
               initializer_scale=1.0,
               norm_epsilon=1e-6):
    """Records the hyperparameters.

    Args:
      d_model: the model dimension's size.
      dropout_rate: dropout on each branch's output, in training only.
      initializer_scale: the separable convolutions' initializer scale.
      norm_epsilon: the layer norm's epsilon.
    """
    super().__init__(d_model, dropout_rate, initializer_scale, norm_epsilon)
    scale = dict(
        depthwise_filter_initializer_scale=initializer_scale,
        pointwise_filter_initializer_scale=initializer_scale)
    # Causal windows: each output reads itself and the previous 10 or 6.
    self._sep_conv11x1 = SegmentSeparableConv1D(
        min_relative_pos=-10,
        max_relative_pos=0,
        output_size=2 * d_model,
        activation="relu",
        **scale)  # [batch, length, 2 d_model]
    self._sep_conv7x1_1 = SegmentSeparableConv1D(
        min_relative_pos=-6,
        max_relative_pos=0,
        output_size=d_model // 2,
        **scale)  # [batch, length, d_model / 2], zero-padded to 2 d_model
    self._sep_conv7x1_2 = SegmentSeparableConv1D(
        min_relative_pos=-6, max_relative_pos=0, output_size=d_model,
        **scale)  # [batch, length, d_model]

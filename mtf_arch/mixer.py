"""MLP-Mixer token mixing (Tolstikhin et al. 2021) as a Mesh-TF encoder layer.

Paper: "MLP-Mixer: An all-MLP Architecture for Vision",
https://arxiv.org/abs/2105.01601 (section 2); used by Tay et al. 2022
(https://arxiv.org/abs/2207.10551) as an encoder, with a vanilla Transformer
decoder ("Mixers have not been used in autoregressive decoding").

A Mixer layer is a token-mixing MLP, applied to each channel across the
sequence (weights shared by all channels), followed by a channel-mixing MLP
(mesh_tensorflow's DenseReluDense, configured in gin/arch/mlp_mixer.gin).

Sequence length. The token-mixing weights have one row per position, so they
are sized to a gin-settable `max_length` (the paper's 512 input tokens). A
run's encoder length is read from the input shape: a shorter length uses the
first `length` rows, which equals padding the sequence to `max_length` with
masked tokens; a longer one is a ConfigError when the graph is built.
Padding (sequence id 0) is zeroed before mixing and in the output, so padding
never changes a real token's output. Packed examples are mixed as one row of
`length` positions, as a fixed-length Mixer does (the paper's Mesh-TF
pipeline packs inputs); only padding is excluded.
"""

import math

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import tensorflow.compat.v1 as tf

from mtf_arch.errors import ConfigError


@gin.configurable
class MixerTokenMixing(transformer.TransformerLayer):
  """Token-mixing MLP: length -> hidden -> length, shared by all channels."""

  def __init__(self, max_length=512, hidden_size=2048, activation="gelu"):
    """Records the hyperparameters.

    Args:
      max_length: the longest encoder sequence the weights cover.
      hidden_size: the token-mixing MLP's hidden width (Tolstikhin et al.'s
        D_S). Named "d_ff" in the graph, so T5's layout splits it over the
        `model` mesh dimension.
      activation: name of an mtf activation function (Mixer uses GELU).
    """
    self.max_length = max_length
    self.hidden_size = hidden_size
    self.activation = activation

  def call(self, context, x, losses=None):
    """Mixes x [batch, length, d_model] across length."""
    if context.model.autoregressive:
      raise ConfigError("MixerTokenMixing is not causal: use it in the encoder "
                        "only (Tay et al. 2022 use a Transformer decoder)")
    length = context.length_dim
    if length.size > self.max_length:
      raise ConfigError(
          "the encoder sequence length %d exceeds MixerTokenMixing.max_length="
          "%d, the length its token-mixing weights cover; shorten "
          "utils.run.sequence_length['inputs'] or raise max_length" %
          (length.size, self.max_length))
    mask = self._nonpadding(context, x)
    if mask is not None:
      x *= mask
    rows = mtf.Dimension("mixer_length", self.max_length)
    hidden = mtf.Dimension("d_ff", self.hidden_size)
    w_in = self._weights(context, "token_mixing_in", rows, hidden,
                         self.max_length)  # [length, d_ff]
    w_out = self._weights(context, "token_mixing_out", rows, hidden,
                          self.hidden_size)  # [length, d_ff]
    h = mtf.einsum([x, w_in], reduced_dims=[length])  # [batch, d_ff, d_model]
    h = getattr(mtf, self.activation)(h)
    y = mtf.einsum([h, w_out], output_shape=x.shape)  # [batch, length, d_model]
    if mask is not None:
      y *= mask
    return y

  def _weights(self, context, name, rows, hidden, fan_in):
    """A [max_length, hidden] variable cut to this run's length."""
    w = mtf.get_variable(
        context.mesh,
        name,
        mtf.Shape([rows, hidden]),
        initializer=tf.random_normal_initializer(stddev=1.0 /
                                                 math.sqrt(fan_in)),
        dtype=context.variable_dtype)  # [mixer_length, d_ff]
    length = context.length_dim
    if length.size < rows.size:
      w = mtf.slice(w, 0, length.size, rows.name)  # [length rows, d_ff]
    return mtf.rename_dimension(w, rows.name, length.name)  # [length, d_ff]

  def _nonpadding(self, context, x):
    """[batch, length] ones at real tokens (sequence id != 0), or None."""
    ids = context.sequence_id
    if not isinstance(ids, mtf.Tensor):
      ids = context.inputs
    if not isinstance(ids, mtf.Tensor):
      return None
    return mtf.cast(mtf.not_equal(ids, 0), x.dtype)

"""Funnel Transformer encoder for the encoder-decoder, sized like T5.

Dai et al. 2020, "Funnel-Transformer: Filtering out Sequential Redundancy for
Efficient Language Processing", https://arxiv.org/abs/2006.03236. Tay et al.
2022 (https://arxiv.org/abs/2207.10551, section 3.1) use it "only in the
encoder and [revert] to vanilla Transformer in the decoder following Narang et
al. (2021)", i.e. mesh_tensorflow's `funnel_transformer` module
(`FunnelTransformerLayerStack` + `BitransformerFunnel`), which this module
reuses. It adds only what that module leaves to the caller:
`EvenFunnelLayerStack` derives the block sizes from the size file's
`num_layers` (mesh_tensorflow needs them as explicit lists, which would make
the architecture file size-dependent).

Where mesh_tensorflow pools (`FunnelTransformerLayerStack.call`): in every
block but the first, right after the first layer's self-attention sublayer
(norm, attention, dropout, residual add), so that attention runs over the
unpooled sequence and only its output is pooled (Mesh-TF's stand-in for Dai
et al.'s pooled-query attention); the layer's feed-forward and the rest of
the block run at the pooled length.

What it does with masks and positions, and we keep: pooling is
`mtf.pool_tensor_1d`, a plain mean (or max) over each window of every
channel, padding included; a pooled position takes the sequence id of its
first source position (so it is padding only if that source is), and
positions become 0..L/2-1 (with T5's relative attention, Mesh-TF uses index
positions, not positions within packed examples, so this is exact). A window
that straddles the end of an example mixes its padding (or, packed, the next
example) into one vector; gin/arch/funnel_transformer.gin turns packing off,
as Narang et al.'s funnel gin does.
"""

import gin
from mesh_tensorflow.transformer import funnel_transformer


def even_block_sizes(num_layers, n_blocks):
  """Splits `num_layers` into at most `n_blocks` blocks, earlier ones larger.

  Args:
    num_layers: layers of the encoder (one layer = its `n_submodules`).
    n_blocks: the wanted number of blocks.

  Returns:
    a list of block sizes, e.g. (12, 3) -> [4, 4, 4], (4, 3) -> [2, 1, 1],
    (2, 3) -> [1, 1].
  """
  n = min(n_blocks, num_layers)
  return [num_layers // n + (1 if i < num_layers % n else 0) for i in range(n)]


@gin.configurable
class EvenFunnelLayerStack(funnel_transformer.FunnelTransformerLayerStack):
  """mesh_tensorflow's Funnel encoder stack with blocks sized from the layers.

  Every block but the first pools the sequence (mean over `pooling_size`
  neighbours) after its first self-attention sublayer, so an encoder of n
  blocks returns length / pooling_size**(n-1) positions. Parameters are not shared between
  layers (block_repeat_size 1), so the parameter count equals the vanilla
  encoder's, as in Table 1.
  """

  def __init__(self,
               layers,
               n_blocks=3,
               pooling_size=2,
               pooling_type="mean",
               n_submodules=2,
               sublayers_initial=None,
               sublayers_per_layer=None,
               sublayers_final=None):
    """Records the layers and the block structure.

    Args:
      layers: the TransformerLayers from `make_layer_stack`, `n_submodules`
        per encoder layer.
      n_blocks: number of blocks (fewer if there are fewer layers).
      pooling_size: pooling window and stride.
      pooling_type: "mean", "max" or "min".
      n_submodules: layers per encoder layer (SelfAttention, DenseReluDense).
      sublayers_initial: sublayer functions before the first layer.
      sublayers_per_layer: sublayer functions around each layer.
      sublayers_final: sublayer functions after the last layer.
    """
    if len(layers) % n_submodules:
      raise ValueError("%d layers is not a multiple of n_submodules=%d" %
                       (len(layers), n_submodules))
    sizes = even_block_sizes(len(layers) // n_submodules, n_blocks)
    super().__init__(
        layers,
        n_blocks=len(sizes),
        block_param_size=sizes,
        block_repeat_size=[1] * len(sizes),
        pooling_size=pooling_size,
        sublayers_initial=sublayers_initial,
        sublayers_per_layer=sublayers_per_layer,
        sublayers_final=sublayers_final,
        pooling_type=pooling_type,
        n_submodules=n_submodules)

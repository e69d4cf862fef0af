"""ALBERT's cross-layer parameter sharing, for Mesh-TF layer stacks.

Lan et al. 2019, "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations", https://arxiv.org/abs/1909.11942: all layers of a stack
share one set of weights ("all-shared", section 3.1), and the vocabulary
embedding is factorized into V x E and E x H matrices (E = 128). Tay et al.
2022 (https://arxiv.org/abs/2207.10551, section 3.1) use a seq2seq ALBERT.

The factorized embedding and softmax are mesh_tensorflow's
`vocab_embeddings.FactorizedVocabEmbedding`; this module adds only the
sharing. Mesh-TF variables are identified by their full scope name
(`mtf.get_variable` returns the existing variable for a name it has seen), so
sharing is naming: `SharedLayerStack` gives the i-th layer of every block the
same scope, so each block reuses block 0's variables (layer norms included),
while each layer object still records its own incremental-decoding states.
"""

import gin
from mesh_tensorflow.transformer import transformer


@gin.configurable
class SharedLayerStack(transformer.LayerStack):
  """A LayerStack whose blocks all use the same variables.

  Built by `transformer.make_layer_stack` (block_scope=True), which names
  layers "block_<k>/<name>"; every block's "<name>" is renamed
  "<shared_scope>/<name>", so the parameter count does not depend on
  num_layers.
  """

  def __init__(self, layers, shared_scope="shared_block", **kwargs):
    """Renames the layers into one scope.

    Args:
      layers: TransformerLayers named "block_<k>/<name>" by make_layer_stack.
      shared_scope: the variable scope every block's layers share.
      **kwargs: LayerStack's arguments (sublayers, dropout_rate, ...).
    """
    for layer in layers:
      block, sep, name = (layer.name or "").partition("/")
      if not sep or not block.startswith("block_"):
        raise ValueError("SharedLayerStack needs layers named block_<k>/<name> "
                         "(make_layer_stack.block_scope = True), got %r" %
                         layer.name)
      layer.set_name("%s/%s" % (shared_scope, name))
    super().__init__(layers, **kwargs)

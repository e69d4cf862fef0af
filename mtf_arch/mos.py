"""Mixture of softmaxes at the output layer (Yang et al. 2017).

Paper: https://arxiv.org/abs/1711.03953 (Tay et al. 2022 follow Narang et al.
2021, https://arxiv.org/abs/2102.11972, "Mixture of Softmaxes").

    p(y | h) = sum_k pi_k(h) softmax(E tanh(C_k h))_y,   pi(h) = softmax(W h)

mesh_tensorflow's `vocab_embeddings.MixtureOfSoftmaxes` computes this, but
creates its mixture and context weights in its constructor. gin's
`get_vocab_embedding_cls` is not scoped (it is read while the model runs,
outside the "encoder"/"decoder" scopes), so the encoder builds one too, and
its mixture and context weights would be trainable variables that nothing
reads. This subclass creates them where they are used, in `hidden_to_logits`,
so only the decoder (which has a softmax) holds them.
"""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import vocab_embeddings


@gin.configurable
class MixtureOfSoftmaxes(vocab_embeddings.MixtureOfSoftmaxes):
  """Vocabulary embedding whose output distribution is a mixture of softmaxes.

  Same variables and math as mesh_tensorflow's MixtureOfSoftmaxes:
  `<name>_embedding_weights` [vocab, d_model] (input embedding and softmax
  matrix), `<name>_mixture_weights` [softmax_components, d_model] and
  `<name>_context_weights` [softmax_components, _d_model_copy, d_model].
  The last two are created on the first `hidden_to_logits` call.
  """

  def __init__(self,
               mesh,
               vocab_dim,
               output_dim,
               variable_dtype,
               name,
               ensemble_dim,
               num_softmaxes=gin.REQUIRED,
               scale_component_logits=False):
    """Creates the embedding; the softmax weights come with the first call.

    Args:
      mesh: the mtf.Mesh.
      vocab_dim: the vocabulary mtf.Dimension.
      output_dim: the model mtf.Dimension (d_model).
      variable_dtype: a mtf.VariableDType.
      name: prefix of the variable names.
      ensemble_dim: an optional ensemble mtf.Dimension.
      num_softmaxes: K, the number of mixture components.
      scale_component_logits: multiply tanh(C_k h) by d_model^-0.5 before
        the softmax matrix, as the ordinary softmax scales h. mesh_tensorflow
        does not, so at initialisation each component's logits have a
        standard deviation of ~0.7 sqrt(d_model) (loss ~16 at d_model 128
        against ln(vocab) = 8.3); False keeps mesh_tensorflow's math.
    """
    # pylint: disable=super-init-not-called
    self._mesh = mesh
    self._name = name
    self._variable_dtype = variable_dtype
    self._ensemble_dim = ensemble_dim
    self._vocab_dim = vocab_dim
    self._output_dim = output_dim
    self._copy_output_dim = mtf.Dimension("_{}_copy".format(output_dim.name),
                                          output_dim.size)
    self._components_dim = mtf.Dimension("softmax_components", num_softmaxes)
    # [vocab, d_model]
    self._embedding_weights = mtf.layers.embedding_weights(
        mesh=mesh,
        vocab_dim=vocab_dim,
        output_dim=output_dim,
        variable_dtype=variable_dtype,
        name="{}_embedding_weights".format(name),
        ensemble_dim=ensemble_dim)
    self._mixture_weights = None
    self._context_weights = None
    self._scale_component_logits = scale_component_logits

  def _create_softmax_weights(self):
    ensemble = [self._ensemble_dim] if self._ensemble_dim else []
    # [softmax_components, d_model]
    self._mixture_weights = mtf.layers.embedding_weights(
        mesh=self._mesh,
        vocab_dim=self._components_dim,
        output_dim=self._output_dim,
        variable_dtype=self._variable_dtype,
        name="{}_mixture_weights".format(self._name),
        ensemble_dim=self._ensemble_dim)
    # [softmax_components, _d_model_copy, d_model]
    self._context_weights = mtf.layers.embedding_weights(
        mesh=self._mesh,
        vocab_dim=self._copy_output_dim,
        output_dim=self._output_dim,
        variable_dtype=self._variable_dtype,
        name="{}_context_weights".format(self._name),
        ensemble_dim=ensemble + [self._components_dim])

  def hidden_to_logits(self, hidden, context):
    """Log-probabilities of the mixture, [<batch_dims>, (length,) vocab].

    Args:
      hidden: the decoder's final states, [<batch_dims>, (length,) d_model].
      context: the transformer.Context.

    Returns:
      log p(y | h), which a softmax maps back onto p (a proper distribution).
    """
    del context
    if self._mixture_weights is None:
      self._create_softmax_weights()
    d_model = self._output_dim
    hidden *= d_model.size**-0.5
    prior_logits = mtf.einsum(
        [hidden, self._mixture_weights],
        reduced_dims=[d_model])  # [batch, length, softmax_components]
    contexts = mtf.tanh(
        mtf.einsum([
            mtf.rename_dimension(hidden, d_model.name,
                                 self._copy_output_dim.name),
            self._context_weights
        ],
                   reduced_dims=[self._copy_output_dim
                                ]))  # [batch, length, components, d_model]
    if self._scale_component_logits:
      contexts *= d_model.size**-0.5
    component_logits = mtf.einsum(
        [contexts, self._embedding_weights],
        reduced_dims=[d_model])  # [batch, length, components, vocab]
    logits = (
        mtf.log_softmax(prior_logits, reduced_dim=self._components_dim) +
        mtf.log_softmax(component_logits, reduced_dim=self._vocab_dim))
    return mtf.reduce_logsumexp(
        logits, reduced_dim=self._components_dim)  # [batch, length, vocab]

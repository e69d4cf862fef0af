"""Closed-form parameter counts, to check the counts read from built graphs."""


def padded_vocab(vocab_size, divisor=128):
  """Mesh-TF pads embedding rows to a multiple of `divisor` (vocab_divisor)."""
  return -(-vocab_size // divisor) * divisor


def transformer_params(num_layers,
                       d_model,
                       d_ff,
                       num_heads,
                       d_kv,
                       vocab_size,
                       num_buckets=32):
  """Trainable parameters of the T5.1.0 encoder-decoder (gin/arch/transformer.gin).

  Args:
    num_layers: layers in each of encoder and decoder.
    d_model, d_ff, num_heads, d_kv: the size macros.
    vocab_size: vocabulary size before padding.
    num_buckets: relative-position buckets of the shared attention bias.

  Returns:
    the number of trainable parameters.
  """
  attention = 4 * d_model * num_heads * d_kv  # q, k, v, o
  ffn = 2 * d_model * d_ff  # wi, wo (ReLU, no biases)
  encoder_layer = attention + ffn + 2 * d_model  # + 2 RMS-norm scales
  decoder_layer = 2 * attention + ffn + 3 * d_model
  final_norms = 2 * d_model
  relative_bias = 2 * num_heads * num_buckets  # one table per stack
  embedding = padded_vocab(vocab_size) * d_model  # shared with the softmax
  return (num_layers * (encoder_layer + decoder_layer) + final_norms +
          relative_bias + embedding)

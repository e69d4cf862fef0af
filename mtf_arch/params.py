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


def albert_shared_params(d_model,
                         d_ff,
                         num_heads,
                         d_kv,
                         vocab_size,
                         embedding_size=128,
                         num_buckets=32):
  """Trainable parameters of gin/arch/albert_shared.gin, at any num_layers.

  One layer's weights serve every layer of both stacks: the decoder's
  self-attention, encoder-decoder attention and feed-forward, with their
  three norms; the encoder reuses the self-attention and feed-forward.

  Args:
    d_model, d_ff, num_heads, d_kv: the size macros.
    vocab_size: vocabulary size before padding.
    embedding_size: E of the factorized embedding (V x E, E x d_model).
    num_buckets: relative-position buckets of the one shared attention bias.

  Returns:
    the number of trainable parameters.
  """
  attention = 4 * d_model * num_heads * d_kv  # q, k, v, o
  ffn = 2 * d_model * d_ff  # wi, wo
  layer = 2 * attention + ffn + 3 * d_model  # self, enc-dec, ffn; 3 norms
  final_norm = d_model  # one "decoder/rms_norm", used by both stacks
  relative_bias = num_heads * num_buckets  # one table, both stacks
  embedding = (padded_vocab(vocab_size) + d_model) * embedding_size
  return layer + final_norm + relative_bias + embedding


def local_conv_block_params(d_model, taps, dynamic):
  """Parameters of one mtf `LocalConvAttnBlock` (gin/arch/lconv.gin, dconv.gin).

  GLU input projection (two d_model x d_model maps with biases), the kernels
  (lightweight: one d_model-vector per tap; dynamic: a d_model x d_model
  predictor with bias per tap), the depthwise bias, the pointwise map and
  the output projection (d_model x d_model with biases). The block drops
  `num_unique_depth_filters`, so every channel has its own kernel.

  Args:
    d_model: channels.
    taps: kernel width, max_relative_pos - min_relative_pos + 1.
    dynamic: attention_type "dynamic_conv" (else "lightweight_conv").

  Returns:
    4 d^2 + (taps + 5) d, plus taps d^2 if dynamic.
  """
  kernels = taps * (d_model * d_model + d_model) if dynamic else taps * d_model
  glu = 2 * (d_model * d_model + d_model)
  projections = 2 * (d_model * d_model + d_model)  # pointwise, output
  return glu + kernels + d_model + projections


def local_conv_params(num_layers,
                      d_model,
                      d_ff,
                      num_heads,
                      d_kv,
                      vocab_size,
                      dynamic,
                      encoder_taps=9,
                      decoder_taps=9):
  """Trainable parameters of gin/arch/lconv.gin (or dconv.gin if dynamic).

  transformer_params with each self-attention layer (and the relative bias
  tables it owned) replaced by a LocalConvAttnBlock.
  """
  attention = 4 * d_model * num_heads * d_kv
  relative_bias = 2 * num_heads * 32
  blocks = num_layers * (
      local_conv_block_params(d_model, encoder_taps, dynamic) +
      local_conv_block_params(d_model, decoder_taps, dynamic))
  return (transformer_params(num_layers, d_model, d_ff, num_heads, d_kv,
                             vocab_size) - 2 * num_layers * attention -
          relative_bias + blocks)


def universal_transformer_params(num_layers,
                                 d_model,
                                 d_ff,
                                 num_heads,
                                 d_kv,
                                 vocab_size,
                                 gated=True,
                                 num_buckets=32):
  """Trainable parameters of gin/arch/universal_transformer*.gin.

  mesh_tensorflow's UTLayerStack per stack: one shared layer (encoder:
  self-attention, FFN; decoder: + enc-dec attention), each sublayer with a
  layer norm (scale and bias) and, when gated, GRU gates (3 dense 2d -> d
  with biases, and their own layer norm); a learned step embedding per
  recurrent step; a final layer norm. The mixing passes before and after the
  recurrence reuse the shared layer's weights and add nothing. Untied softmax,
  input embedding shared by encoder and decoder.

  Args:
    num_layers: NR, the recurrent steps (Table 5).
    d_model, d_ff, num_heads, d_kv: the size macros.
    vocab_size: vocabulary size before padding.
    gated: GRU-gated residuals (Narang et al.) or plain ones (Dehghani et al.).
    num_buckets: relative-position buckets of the shared attention bias.

  Returns:
    the number of trainable parameters.
  """
  norm = 2 * d_model  # layer norm scale and bias
  gates = 3 * (2 * d_model * d_model + d_model) + norm if gated else 0
  attention = 4 * d_model * num_heads * d_kv + norm + gates
  ffn = 2 * d_model * d_ff + norm + gates
  layers = (attention + ffn) + (2 * attention + ffn)
  per_stack = norm + num_layers * d_model + num_heads * num_buckets
  embeddings = 2 * padded_vocab(vocab_size) * d_model  # input, softmax
  return layers + 2 * per_stack + embeddings

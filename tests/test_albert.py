"""ALBERT: one set of layer weights per stack (arch/albert.gin) or for both
stacks (arch/albert_shared.gin), shared factorized embedding and softmax."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import utils as mtf_utils
import pytest
import tensorflow.compat.v1 as tf

from mtf_arch import graph
from mtf_arch import params as params_lib

SEQ = {"inputs": 16, "targets": 8}
ALBERT, SHARED = "arch/albert.gin", "arch/albert_shared.gin"


def _files(arch):
  return [arch, "size/test.gin", "mesh/cpu_1.gin", "run/pretrain.gin"]


def _variables(arch, num_layers, params=()):
  with graph.config(
      _files(arch), ["num_layers = %d" % num_layers] + list(params)):
    g = graph.ModelGraph(300, 2, SEQ)
  return g.params_by_name()


@pytest.mark.parametrize("arch", [ALBERT, SHARED])
def test_variable_count_does_not_grow_with_layers(arch):
  two = _variables(arch, 2)
  five = _variables(arch, 5)
  assert two == five
  # The vanilla Transformer's would (so the check can fail).
  assert len(_variables("arch/transformer.gin",
                        5)) > len(_variables("arch/transformer.gin", 2))


def _ancestor_variables(tensor, stop=()):
  """Names of the mtf variables `tensor` is computed from."""
  seen, names, stack = set(), set(), [tensor.operation]
  while stack:
    op = stack.pop()
    if id(op) in seen:
      continue
    seen.add(id(op))
    if isinstance(op, mtf.Variable):
      names.add(op.name)
    stack.extend(t.operation for t in op.inputs if t not in stop)
  return names


def _encoder_and_decoder_variables(arch):
  """Variables the encoder's output and the decoder's logits (given any
  encoder output) are computed from."""
  with graph.config(_files(arch)):
    mesh_shape, layout_rules = graph.mesh_and_layout()
    with tf.Graph().as_default():
      mesh = mtf.Mesh(mtf.Graph(), "mesh")
      model = graph.build_model(300, mesh_shape, layout_rules)
      dtype = mtf_utils.get_variable_dtype()
      batch = mtf.Dimension("batch", 2)
      ids = {
          k:
              mtf.ones(mesh, mtf.Shape([batch,
                                        mtf.Dimension("length", n)]), tf.int32)
          for k, n in SEQ.items()
      }
      shared = model._shared_params(mesh, dtype)  # pylint: disable=protected-access
      encoder_output, _ = model.encoder.call_simple(
          ids["inputs"],
          None,
          False,
          mode="eval",
          variable_dtype=dtype,
          sequence_id=ids["inputs"],
          shared_params=shared)
      memory = mtf.layers.rename_length_to_memory_length(encoder_output)
      logits, _ = model.decoder.call_simple(
          ids["targets"],
          ids["targets"],
          False,
          mode="eval",
          variable_dtype=dtype,
          sequence_id=ids["targets"],
          encoder_output=memory,
          encoder_sequence_id=mtf.layers.rename_length_to_memory_length(
              ids["inputs"]),
          shared_params=shared)
      return (_ancestor_variables(encoder_output),
              _ancestor_variables(logits, stop=[memory]))


def test_encoder_and_decoder_share_the_factorized_embedding():
  """Table 1's counts: the encoder and decoder layers are separate; both
  stacks (and the softmax) use the one factorized embedding."""
  enc, dec = _encoder_and_decoder_variables(ALBERT)
  shared = enc & dec
  assert shared == {"shared/embedding1", "shared/embedding2"}, shared
  assert any("self_attention" in n for n in enc - dec)


def test_shared_variant_encoder_uses_only_decoder_variables():
  """arch/albert_shared.gin: every variable the encoder reads is one the
  decoder reads (attention, feed-forward, norms, relative bias)."""
  enc, dec = _encoder_and_decoder_variables(SHARED)
  assert enc <= dec, enc - dec
  assert any("self_attention" in n for n in enc)
  assert any("dense_relu_dense" in n for n in enc)


def test_shared_variant_has_one_layer_of_weights():
  """The shared model's variables are arch/albert.gin's without the
  encoder's: one self-attention (q, k, v, o, relative bias), one
  feed-forward, one encoder-decoder attention, all in the decoder's scope."""
  untied = _variables(ALBERT, 2)
  shared = _variables(SHARED, 2)
  assert any(n.startswith("encoder/") for n in untied)
  assert shared == {
      n: size for n, size in untied.items() if not n.startswith("encoder/")
  }
  assert sum("/SelfAttention/" in n for n in shared) == 5
  assert sum("/DenseReluDense/" in n for n in shared) == 2
  assert sum("/EncDecAttention/" in n for n in shared) == 4


@pytest.mark.parametrize("size,num_layers", [("size/test.gin", 2),
                                             ("size/test.gin", 5),
                                             ("size/small.gin", 6)])
def test_shared_variant_params_match_closed_form(size, num_layers):
  with graph.config([SHARED, size, "mesh/cpu_1.gin", "run/pretrain.gin"],
                    ["num_layers = %d" % num_layers]):
    dims = [
        graph.query(m) for m in ("%d_model", "%d_ff", "%num_heads", "%d_kv")
    ]
    g = graph.ModelGraph(graph.T5_VOCAB_SIZE, 1, SEQ)
  expected = params_lib.albert_shared_params(*dims, graph.T5_VOCAB_SIZE)
  assert g.num_params() == expected
  if size == "size/small.gin":
    assert expected == 8374528  # the header's Small row

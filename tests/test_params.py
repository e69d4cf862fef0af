"""Parameter counts of the vanilla Transformer against the paper's Table 1.

For every paper size the count is read from the built Mesh-TF graph (no
variables allocated), compared exactly with a closed form, and within 3% of
Table 1. The sizes' d_kv differs from the paper's Table 3 for Tiny and Small
(see gin/size/tiny.gin): with Table 3's d_kv = 32 these tests would fail
(14.0M vs 16M, 51.1M vs 60M).
"""

import pytest

from mtf_arch import graph
from mtf_arch import params
from mtf_arch import registry
from tests import paper

SIZES = ["tiny", "small", "base", "large", "xl"]
MESH = {
    "tiny": "tpu_v3_32_mp1",
    "small": "tpu_v3_32_mp1",
    "base": "tpu_v3_32_mp1",
    "large": "tpu_v3_32_mp2",
    "xl": "tpu_v3_32_mp8"
}
SEQ = {"inputs": 512, "targets": 114}


def _macros():
  return {
      m: graph.query("%" + m)
      for m in ("num_layers", "d_model", "d_ff", "num_heads", "d_kv")
  }


@pytest.mark.parametrize("size", SIZES)
def test_transformer_params_match_closed_form_and_table1(size):
  files = [
      "arch/transformer.gin",
      "size/%s.gin" % size,
      "mesh/%s.gin" % MESH[size], "run/pretrain.gin"
  ]
  with graph.config(files):
    g = graph.ModelGraph(graph.T5_VOCAB_SIZE, 128 if size != "xl" else 32, SEQ)
    counted = g.num_params()
    expected = params.transformer_params(
        vocab_size=graph.T5_VOCAB_SIZE, **_macros())
  assert counted == expected
  paper_count = paper.table1_params("Transformer")[size.capitalize() if size !=
                                                   "xl" else "XL"]
  assert abs(counted - paper_count) / paper_count < 0.03, (counted, paper_count)


def test_table3_dkv_would_miss_table1():
  """Documents the decision in gin/size/tiny.gin and small.gin."""
  for size, paper_count, d_model, d_ff, heads, layers in (("Tiny", 16e6, 256,
                                                           1024, 4, 4),
                                                          ("Small", 60e6, 512,
                                                           2048, 8, 6)):
    with_32 = params.transformer_params(layers, d_model, d_ff, heads, 32,
                                        graph.T5_VOCAB_SIZE)
    with_64 = params.transformer_params(layers, d_model, d_ff, heads, 64,
                                        graph.T5_VOCAB_SIZE)
    assert abs(with_32 - paper_count) / paper_count > 0.10, size
    assert abs(with_64 - paper_count) / paper_count < 0.03, size


def test_xl_lowers_graph_only_on_32_virtual_devices():
  """XL's widths under the paper's batch:4,model:8 layout, lowered onto 32
  device names with no session: variables are declared, never allocated.
  Each slice holds 1/8 of every heads, d_ff and vocab dimension. Two of
  XL's 24 layers: every layer is split alike, and lowering all 24 took 441 s
  of the suite (the full XL rows: tests/test_fidelity.py)."""
  import mesh_tensorflow as mtf
  import tensorflow.compat.v1 as tf
  files = [
      "arch/transformer.gin", "size/xl.gin", "mesh/tpu_v3_32_mp8.gin",
      "run/pretrain.gin"
  ]
  with graph.config(files, [
      "utils.get_variable_dtype.activation_dtype = 'float32'", "num_layers = 2"
  ]):
    g = graph.ModelGraph(graph.T5_VOCAB_SIZE, 4, {"inputs": 32, "targets": 8})
    assert g.mesh_shape == mtf.convert_to_shape("batch:4,model:8")
    lowering, _, _ = graph.lower(
        g, ["/cpu:%d" % i for i in range(32)], autostack=False)
  split = {"heads", "d_ff", "vocab"}
  total = 0
  for var in g.mtf_graph.trainable_variables:
    slices = lowering.variables[var].laid_out_tensor.all_slices
    assert len(slices) == 32
    expected = [
        d.size // 8 if d.name in split else d.size for d in var.shape.dims
    ]
    assert slices[0].shape.as_list() == expected, var.name
    total += var.shape.size
  assert total == g.num_params() == params.transformer_params(
      2, 1024, 16384, 32, 128, graph.T5_VOCAB_SIZE)
  with g.tf_graph.as_default():
    declared = sum(v.shape.num_elements()
                   for v in tf.global_variables()
                   if "slice" not in v.name)
  assert declared == total  # master copies declared; no session ever ran


@pytest.mark.parametrize("arch,dynamic", [("lconv", False), ("dconv", True)])
@pytest.mark.parametrize("size", ["test", "tiny"])
def test_local_conv_params_match_closed_form(arch, dynamic, size):
  """gin/arch/lconv.gin and dconv.gin (mtf LocalConvAttnBlock, 9 taps) against
  params.local_conv_params; a d_model x d_model predictor per tap shows that
  the block drops num_unique_depth_filters = 2."""
  files = [
      "arch/%s.gin" % arch,
      "size/%s.gin" % size, "mesh/cpu_1.gin", "run/pretrain.gin"
  ]
  with graph.config(files):
    counted = graph.ModelGraph(graph.T5_VOCAB_SIZE, 1, {
        "inputs": 16,
        "targets": 8
    }).num_params()
    expected = params.local_conv_params(
        vocab_size=graph.T5_VOCAB_SIZE, dynamic=dynamic, **_macros())
  assert counted == expected


@pytest.mark.parametrize("arch,gated",
                         [("universal_transformer", True),
                          ("universal_transformer_dehghani", False)])
@pytest.mark.parametrize("size", ["test", "tiny"])
def test_universal_transformer_params_match_closed_form(arch, gated, size):
  """UTLayerStack's count against params.universal_transformer_params: the
  mixing passes of arch/universal_transformer.gin share the layer's weights
  (the same closed form holds with and without them)."""
  size_file = ("size/test.gin" if size == "test" else registry.size_file(
      arch, size))
  files = [
      "arch/%s.gin" % arch, size_file, "mesh/cpu_1.gin", "run/pretrain.gin"
  ]
  with graph.config(files):
    counted = graph.ModelGraph(graph.T5_VOCAB_SIZE, 1, {
        "inputs": 16,
        "targets": 8
    }).num_params()
    expected = params.universal_transformer_params(
        vocab_size=graph.T5_VOCAB_SIZE, gated=gated, **_macros())
  assert counted == expected

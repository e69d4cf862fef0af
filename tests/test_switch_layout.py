"""Switch Transformer XL starts and fits on 16 TPU-v3 chips.

The paper's XL mesh (mesh/tpu_v3_32_mp8.gin, model:8) cannot split Switch
XL's 12 heads, so its size file names its own layout,
mesh/tpu_v3_32_switch.gin (batch:8,model:4; experts over `batch`, the
experts' hidden units over `model`). These tests take the exact gin files of
the XL pretraining command, run the package's mesh check, build the training
graph with the TPU mesh shape (graph only: nothing is lowered or allocated)
and slice every tensor as Mesh-TF's TPU mesh (`SimdMeshImpl`) slices it, so a
dimension that does not split evenly fails here as it would at start-up.
"""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import utils as mtf_utils
import numpy as np
import pytest

from mtf_arch import graph
from mtf_arch import registry
from mtf_arch.errors import ConfigError

ARCH = "switch_transformer"
MESH = "tpu_v3_32_switch"
# A TPU v3 core's high-bandwidth memory.
CORE_HBM_BYTES = 16 * 2**30
# Variables live on the cores as float32 slices (mtf's slice_dtype; the
# bfloat16 masters stay on the host).
SLICE_BYTES = 4


def _xl_files(mesh):
  return [
      "arch/%s.gin" % ARCH,
      registry.size_file(ARCH, "XL"),
      "mesh/%s.gin" % mesh, "run/pretrain.gin"
  ]


def test_xl_size_file_names_the_switch_mesh():
  assert registry.paper_mesh(ARCH, "XL") == MESH
  assert registry.paper_mesh(ARCH, "Large") == registry.TPU_MESH["large"]


def test_paper_xl_mesh_cannot_split_switch_xl_heads():
  with graph.config(_xl_files("tpu_v3_32_mp8")):
    with pytest.raises(ConfigError, match="num_heads=12"):
      graph.mesh_and_layout()


@pytest.fixture(scope="module")
def xl():
  """The XL training graph (one microbatch) under the Switch mesh, and
  Adafactor's slots.

  Returns:
    dict: batch_size, num_microbatches (of a training step), mesh_impl
    (SimdMeshImpl), variables (trainable mtf variables),
    slot_shapes (Adafactor's slot variable shapes), tensors (every op
    output of the microbatch's graph),
    num_experts, d_model, d_ff.
  """
  with graph.config(_xl_files(MESH)):
    mesh_shape, layout_rules = graph.mesh_and_layout()  # the package check
    length = graph.query("utils.run.sequence_length")
    batch_size = mtf_utils.compute_batch_size(
        length, mesh_shape, layout_rules, graph.query("utils.run.batch_size"))
    num_microbatches = mtf_utils.serialize_num_microbatches(
        mtf.Dimension("batch", batch_size), length, mesh_shape, layout_rules)
    # What a training step builds: the model on one microbatch (same
    # variables; its MoE groups are what must split over `batch`).
    g = graph.ModelGraph(graph.T5_VOCAB_SIZE, batch_size // num_microbatches,
                         length, "train", mesh_shape, layout_rules)
    optimizer = mtf.optimize.AdafactorOptimizer(learning_rate=0.01)
    slot_shapes = []
    for v in g.mtf_graph.trainable_variables:
      # The slots AdafactorOptimizer.apply_grad creates for `v`.
      factored = optimizer._factored_dims(v.shape)  # pylint: disable=protected-access
      if factored:
        slot_shapes += [v.shape - factored[0], v.shape - factored[1]]
      else:
        slot_shapes.append(v.shape)
      if optimizer._beta1:  # pylint: disable=protected-access
        slot_shapes.append(v.shape)
    out = dict(
        batch_size=batch_size,
        num_microbatches=num_microbatches,
        mesh_impl=mtf.simd_mesh_impl.SimdMeshImpl(mesh_shape, layout_rules),
        variables=list(g.mtf_graph.trainable_variables),
        slot_shapes=slot_shapes,
        tensors=[t for op in g.mtf_graph.operations for t in op.outputs],
        num_experts=gin.query_parameter("%num_experts"),
        d_model=gin.query_parameter("%d_model"),
        d_ff=gin.query_parameter("%d_ff"))
  return out


def _per_core_bytes(shapes, mesh_impl):
  # slice_shape raises ValueError for a dimension that does not split evenly.
  return sum(SLICE_BYTES *
             int(np.prod(mesh_impl.slice_shape(s), dtype=np.int64))
             for s in shapes)


def test_xl_step_runs_as_four_microbatches_of_four_sequences_per_core(xl):
  # The memory estimate in mesh/tpu_v3_32_switch.gin is for one microbatch.
  assert xl["batch_size"] == 128
  assert xl["num_microbatches"] == 4


def test_every_xl_tensor_splits_evenly(xl):
  for t in xl["tensors"]:
    xl["mesh_impl"].slice_shape(t.shape)


def test_xl_experts_split_over_all_32_cores(xl):
  experts = [v for v in xl["variables"] if "experts" in v.shape.dimension_names]
  # 24 Switch layers per stack, each with wi and wo.
  assert len(experts) == 2 * 2 * 24
  expert_params = sum(v.shape.size for v in experts)
  assert expert_params == 96 * xl["num_experts"] * xl["d_model"] * xl["d_ff"]
  per_core = _per_core_bytes([v.shape for v in experts], xl["mesh_impl"])
  assert per_core * 32 == SLICE_BYTES * expert_params


def test_xl_variables_and_slots_fit_a_v3_core(xl):
  weights = _per_core_bytes([v.shape for v in xl["variables"]], xl["mesh_impl"])
  slots = _per_core_bytes(xl["slot_shapes"], xl["mesh_impl"])
  assert 29.5e9 < sum(v.shape.size for v in xl["variables"]) < 29.7e9
  # 3.94 GiB of weights and 0.01 GiB of factored second moments per core:
  # the rest of the 16 GiB holds the gradient accumulators (1.97 GiB) and a
  # microbatch's activations (6.44 GiB; see mesh/tpu_v3_32_switch.gin).
  assert 3.9 * 2**30 < weights < 4.2 * 2**30, weights / 2**30
  assert slots < 0.1 * 2**30, slots / 2**30
  assert weights + slots < CORE_HBM_BYTES

"""Per-core memory of one training step under a mesh layout, graph only.

`estimate(gin_files)` builds the configured model as the trainer does (the
run's sequence lengths, mesh shape and layout rules; its batch split into
the microbatches `utils.run` serializes a step into -- mesh_tensorflow's
defaults.gin sets `tokens_per_microbatch_per_replica = 2048`, so a replica
holding 32 sequences of 512 tokens runs 8 microbatches of 4 and accumulates
their gradients; its optimizer's `apply_grads`, so Adafactor's slot
variables exist), lowers nothing and allocates nothing, and adds up, per
core:

* **variables**: every variable of the mtf graph (weights and optimizer
  slots) in its slice dtype (float32: what a core holds; the checkpoint
  keeps the master dtype), sliced by the layout rules over the mesh;
* **activations**: the peak, over the graph's operations in the order they
  were created (forward, then backward, then the update), of the op outputs
  alive at once: an output is allocated when its op runs and freed when its
  last consumer has run; the gradients (the microbatches' accumulators) are
  kept to the end. Sizes are those
  of the mtf tensors (their dtype is the run's activation dtype) sliced by
  the layout. Two figures: `activation_bytes_kept`, where every forward
  output a gradient needs stays in memory until the backward pass uses it,
  and `activation_bytes`, where the outputs of elementwise ops
  (`SlicewiseOperation`s: activations, casts, norms' pieces, softmax's exp)
  are freed after their last forward use and recomputed from their inputs
  when the backward pass needs them -- what XLA's TPU rematerialization
  does first when a program would not fit, since these cost no matmul. A
  row fits when variables + slots + `activation_bytes` <= 16 GiB.

This is the estimate of mesh_tensorflow's `auto_mtf` memory estimator
(`graph_interface.GraphInterface.compute_memory_contents_under_schedule` over
the naive schedule, with tensor sizes under a layout), computed here as a
running byte count: auto_mtf materializes the set of live tensor names at
every operation, quadratic in the graph's size, which is minutes for an XL
graph. Like auto_mtf's it ignores the temporaries of an op's lowering and
what XLA's fusion and rematerialization change; it is an estimate of scale,
not an allocator.

Every tensor dimension that the layout splits must divide by its mesh
dimension: `split_errors` reports each one that does not, which is what
would stop the run from starting.
"""

import collections

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import utils as mtf_utils

from mtf_arch import graph

GIB = 2.0**30
# A TPU v3 core's high-bandwidth memory.
V3_CORE_HBM_BYTES = 16 * GIB

Estimate = collections.namedtuple("Estimate", [
    "mesh_shape", "batch_size", "num_microbatches", "variable_bytes",
    "slot_bytes", "activation_bytes", "activation_bytes_kept", "split_errors"
])
# Op outputs rematerialized in the backward pass (see the module docstring).
_REMATERIALIZED = (mtf.SlicewiseOperation, mtf.ScalarMultiplyOperation)


def _per_core_entries(shape, mesh_shape, layout_rules, errors):
  """Entries of one slice of a tensor of `shape`; records bad splits."""
  layout = layout_rules.tensor_layout(shape, mesh_shape)
  entries = 1
  for dim, axis in zip(shape.dims, layout.tensor_axis_to_mesh_axis):
    split = 1 if axis is None else mesh_shape.dims[axis].size
    if dim.size % split:
      errors.add("%s:%d over %s:%d" %
                 (dim.name, dim.size, mesh_shape.dims[axis].name, split))
    entries *= -(-dim.size // split)
  return entries


def _bytes(tensor_or_var, dtype, mesh_shape, layout_rules, errors):
  return dtype.size * _per_core_entries(tensor_or_var.shape, mesh_shape,
                                        layout_rules, errors)


def activation_peak(mtf_graph,
                    mesh_shape,
                    layout_rules,
                    keep=(),
                    errors=None,
                    num_forward_ops=None):
  """Peak per-core bytes of live op outputs over the creation order.

  Args:
    mtf_graph: an mtf.Graph.
    mesh_shape: mtf.Shape of the mesh.
    layout_rules: mtf.LayoutRules.
    keep: tensors never freed (e.g. the gradients).
    errors: a set that collects dimensions that do not split evenly.
    num_forward_ops: with it, outputs of elementwise ops among the first
      `num_forward_ops` operations are freed after their last forward use
      (recomputed for the backward pass); None keeps every output until its
      last use.

  Returns:
    the peak, in bytes.
  """
  errors = set() if errors is None else errors
  uses = collections.Counter()
  ops = mtf_graph.operations
  for i, op in enumerate(ops):
    for t in op.inputs:
      # A backward use of an elementwise output recomputes it instead.
      remat = (
          num_forward_ops is not None and i >= num_forward_ops and
          isinstance(t.operation, _REMATERIALIZED))
      if not remat:
        uses[id(t)] += 1
  kept = {id(t) for t in keep}
  size = {}
  live = peak = 0
  for op in ops:
    if isinstance(op, mtf.Variable):
      continue  # a variable's value is counted with the variables
    for t in op.outputs:
      size[id(t)] = _bytes(t, t.dtype, mesh_shape, layout_rules, errors)
      live += size[id(t)]
    peak = max(peak, live)
    for t in op.outputs:
      if not uses[id(t)] and id(t) not in kept:
        live -= size[id(t)]
    for t in op.inputs:
      if id(t) not in size or not uses[id(t)]:
        continue  # a variable, or a recomputed elementwise output
      uses[id(t)] -= 1
      if not uses[id(t)] and id(t) not in kept:
        live -= size[id(t)]
  return peak


def estimate(gin_files, gin_params=(), vocab_size=graph.T5_VOCAB_SIZE):
  """Per-core memory of a training step of the configured run.

  Args:
    gin_files: the run's gin files (arch, size, mesh, run), as for the CLI.
    gin_params: extra bindings.
    vocab_size: vocabulary size before padding (T5's by default).

  Returns:
    an Estimate: mesh shape string, batch size in sequences, microbatches per
    step, bytes per core of model variables, of optimizer slots and of peak
    activations (rematerialized and kept), and the sorted list of dimensions
    the layout cannot split evenly.
  """
  with graph.config(gin_files, gin_params):
    g, batch_size, num_micro = _training_graph(vocab_size)
    mesh_shape, layout_rules = g.mesh_shape, g.layout_rules
    model_vars = list(g.mtf_graph.all_variables)
    num_forward_ops = len(g.mtf_graph.operations)
    with g.tf_graph.as_default():
      grads = mtf.gradients(
          [g.loss], [v.outputs[0] for v in g.mtf_graph.trainable_variables])
      # gin/run/pretrain.gin's optimizer (T5's): Adafactor, configured by gin.
      mtf.optimize.AdafactorOptimizer(learning_rate=0.01).apply_grads(
          grads, g.mtf_graph.trainable_variables)
  errors = set()
  model_ids = {id(v) for v in model_vars}
  variable_bytes = slot_bytes = 0
  for v in g.mtf_graph.all_variables:
    n = _bytes(v, v.slice_dtype, mesh_shape, layout_rules, errors)
    if id(v) in model_ids:
      variable_bytes += n
    else:
      slot_bytes += n
  grads = [x for x in grads if x is not None]
  kept = activation_peak(g.mtf_graph, mesh_shape, layout_rules, grads, errors)
  remat = activation_peak(g.mtf_graph, mesh_shape, layout_rules, grads, errors,
                          num_forward_ops)
  return Estimate(
      str(mesh_shape), batch_size, num_micro, variable_bytes, slot_bytes, remat,
      kept, sorted(errors))


def _training_graph(vocab_size):
  """(ModelGraph of one microbatch, batch size, microbatches) of the config."""
  mesh_shape, layout_rules = graph.mesh_and_layout()
  length = graph.query("utils.run.sequence_length")
  batch_size = mtf_utils.compute_batch_size(length, mesh_shape, layout_rules,
                                            graph.query("utils.run.batch_size"))
  num_micro = mtf_utils.serialize_num_microbatches(
      mtf.Dimension("batch", batch_size), length, mesh_shape, layout_rules)
  g = graph.ModelGraph(vocab_size, batch_size // num_micro, length, "train",
                       mesh_shape, layout_rules)
  return g, batch_size, num_micro


def total_bytes(est):
  return est.variable_bytes + est.slot_bytes + est.activation_bytes


def layout_errors(gin_files, gin_params=(), vocab_size=graph.T5_VOCAB_SIZE):
  """What stops a run from starting on its mesh, from the forward graph.

  Parses the files (the package's mesh check runs: a macro that does not
  split raises ConfigError), builds the model at the run's microbatch and
  lengths and lists every tensor dimension the layout splits unevenly.

  Args:
    gin_files: the run's gin files (arch, size, mesh, run).
    gin_params: extra bindings.
    vocab_size: vocabulary size before padding.

  Returns:
    sorted list of "dim:size over mesh_dim:size" strings; empty if it starts.
  """
  with graph.config(gin_files, gin_params):
    g, _, _ = _training_graph(vocab_size)
  mesh_shape, layout_rules = g.mesh_shape, g.layout_rules
  errors = set()
  for op in g.mtf_graph.operations:
    for t in op.outputs:
      _per_core_entries(t.shape, mesh_shape, layout_rules, errors)
  return sorted(errors)

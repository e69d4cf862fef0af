"""FLOPs of a forward pass, counted from the lowered Mesh-TF graph.

Our unit: **matmul FLOPs of one forward pass of one sequence** (batch 1,
512 input and 114 target tokens, the paper's span-corruption lengths), i.e.
2 x (multiply-adds) of every contraction in the graph. The model is built
with `graph.ModelGraph` in eval mode (no dropout), lowered onto one device
named "" (nothing is placed, no session runs, no variable is allocated), and
every `Einsum`, `MatMul` and `BatchMatMul*` op of the resulting tf.Graph is
counted from its static shapes: an einsum costs 2 x the product of the sizes
of all its distinct indices (each output element is a sum of products over
the contracted indices). Einsums that contract nothing (pure elementwise
products) and all other elementwise ops (softmax, norms, activations, the
loss) are not counted; `count_ops` reports them separately so the choice is
visible. Mesh-TF lowers embedding lookups and the relative-position bias
lookup to contractions with a one-hot matrix (`OneHot` op); those are
lookups, not arithmetic, and are reported apart as `one_hot_flops`, not in
`matmul_flops`. The tied softmax projection is a real contraction and counts.

Everything is linear in the batch, so batch 1 gives FLOPs per sequence; the
mesh is forced to one slice ("batch:1,model:1") so no op is split.

`transformer_forward_flops` is the closed form for the vanilla Transformer
(gin/arch/transformer.gin) that the counter is tested against.
"""

import collections
import re

import mesh_tensorflow as mtf
import numpy as np

from mtf_arch import graph

PAPER_SEQUENCE_LENGTH = {"inputs": 512, "targets": 114}
MATMUL_TYPES = ("Einsum", "MatMul", "BatchMatMul", "BatchMatMulV2",
                "BatchMatMulV3")
ONE_SLICE = ["mesh/cpu_1.gin"]
# Architectures whose layers run matmuls inside one `mtf.slicewise` op (the
# Performer's causal chunked prefix sums, mtf_arch/performer.py): only the
# lowered graph (`forward_count`) counts them, not `graph_count`.
SLICEWISE_MATMUL_ARCHS = ("performer", "performer_favor")

Count = collections.namedtuple("Count", [
    "matmul_flops", "one_hot_flops", "elementwise_einsum_flops", "num_matmuls"
])
_PASS_THROUGH = ("Cast", "Identity", "Reshape", "ExpandDims")


def _is_one_hot(tensor):
  """Whether a tensor is a one-hot matrix (through casts and reshapes)."""
  op = tensor.op
  while op.type in _PASS_THROUGH and op.inputs:
    op = op.inputs[0].op
  return op.type == "OneHot"


def _einsum_flops(op):
  """(flops, contracts) of one Einsum op from its equation and shapes."""
  equation = op.get_attr("equation").decode().replace(" ", "")
  lhs, out = equation.split("->")
  sizes = {}
  for term, tensor in zip(lhs.split(","), op.inputs):
    shape = tensor.shape.as_list()
    if "." in term or len(term) != len(shape) or None in shape:
      raise ValueError("cannot count einsum %s %r with shapes %s" %
                       (op.name, equation, [t.shape for t in op.inputs]))
    for letter, size in zip(term, shape):
      sizes[letter] = size
  contracted = set(sizes) - set(out)
  total = int(np.prod([sizes[k] for k in sizes], dtype=np.float64))
  return (2 * total if contracted else total), bool(contracted)


def _matmul_flops(op):
  """2*M*N*K of a MatMul/BatchMatMul from its output and reduced dims."""
  a = op.inputs[0].shape.as_list()
  out = op.outputs[0].shape.as_list()
  transpose_a = op.get_attr("adj_x" if "Batch" in op.type else "transpose_a")
  k = a[-2] if transpose_a else a[-1]
  return 2 * int(np.prod(out, dtype=np.float64)) * k


def count_ops(tf_graph):
  """Counts the matmul FLOPs in a tf.Graph.

  Args:
    tf_graph: a tf.Graph with static shapes.

  Returns:
    Count(matmul_flops, one_hot_flops, elementwise_einsum_flops, num_matmuls).
  """
  matmul, one_hot, elementwise, num = 0, 0, 0, 0
  for op in tf_graph.get_operations():
    if op.type not in MATMUL_TYPES:
      continue
    if any(_is_one_hot(t) for t in op.inputs):
      one_hot += _einsum_flops(op)[0] if op.type == "Einsum" else (
          _matmul_flops(op))
      continue
    if op.type == "Einsum":
      flops, contracts = _einsum_flops(op)
      if not contracts:
        elementwise += flops
        continue
    else:
      flops = _matmul_flops(op)
    matmul += flops
    num += 1
  return Count(matmul, one_hot, elementwise, num)


def forward_count(gin_files,
                  gin_params=(),
                  vocab_size=graph.T5_VOCAB_SIZE,
                  sequence_length=None,
                  batch_size=1):
  """Parameters and forward FLOPs of a configuration, graph only.

  The configuration's mesh is replaced by one CPU slice (`mesh/cpu_1.gin`,
  float32 activations), which changes neither parameters nor FLOPs.

  Args:
    gin_files: arch and size files (a mesh or run file is allowed; the mesh
      is overridden).
    gin_params: extra gin bindings.
    vocab_size: vocabulary size before padding.
    sequence_length: {"inputs": int, "targets": int}; the paper's by default.
    batch_size: sequences in the counted batch.

  Returns:
    (num_params, Count) with FLOPs for the whole batch.
  """
  files = [f for f in gin_files if not re.match(r"mesh/", f)] + ONE_SLICE
  with graph.config(files, gin_params):
    g = graph.ModelGraph(
        vocab_size,
        batch_size,
        sequence_length or PAPER_SEQUENCE_LENGTH,
        mode="eval")
    num_params = g.num_params()
    graph.lower(g, [""], autostack=False)
    return num_params, count_ops(g.tf_graph)


def graph_count(gin_files,
                gin_params=(),
                vocab_size=graph.T5_VOCAB_SIZE,
                sequence_length=None):
  """Parameters and forward FLOPs of one sequence, from the mtf graph alone.

  What `forward_count` counts (matmuls and one-hot lookups) without lowering
  the graph to TensorFlow, which is ~80% of its time at the paper's sizes
  (42 of 50 s for Switch XL). Equal to it for every architecture whose
  contractions are mtf einsums (tests/test_flops.py); short of it where a
  layer hides matmuls inside `mtf.slicewise` (the Performer's causal prefix
  sums: `SLICEWISE_MATMUL_ARCHS`), which only the lowered graph shows.

  Args:
    gin_files: arch and size files (a mesh or run file is allowed; the mesh
      is overridden by one CPU slice).
    gin_params: extra gin bindings.
    vocab_size: vocabulary size before padding.
    sequence_length: {"inputs": int, "targets": int}; the paper's by default.

  Returns:
    (num_params, FLOPs).
  """
  files = [f for f in gin_files if not re.match(r"mesh/", f)] + ONE_SLICE
  with graph.config(files, gin_params):
    mesh_shape, layout_rules = graph.mesh_and_layout()
    g = graph.ModelGraph(
        vocab_size, 1, sequence_length or PAPER_SEQUENCE_LENGTH, mode="eval")
  whole, _ = mesh_einsum_flops(g.mtf_graph, mesh_shape, layout_rules)
  return g.num_params(), whole


SlicedCount = collections.namedtuple(
    "SlicedCount", ["num_params", "flops", "repeated_flops", "mesh_shape"])


def data_axis(mesh_shape, layout_rules):
  """The mesh axis the `batch` dimension is laid out over, or None."""
  return layout_rules.tensor_layout(
      mtf.Shape([mtf.Dimension("batch", mesh_shape.size)]),
      mesh_shape).tensor_axis_to_mesh_axis[0]


def mesh_einsum_flops(mtf_graph, mesh_shape, layout_rules):
  """FLOPs of an mtf graph's contractions, and those the model slices repeat.

  The same contractions as `count_ops` on the lowered graph: every
  `mtf.EinsumOperation` that mtf lowers to a `tf.einsum` -- two or more
  inputs, something contracted, no input holding every dimension (those
  lower to a multiply and a reduce_sum, `ops._einsum_helper`) -- the one-hot
  lookups included, as in `lowered_gflops`. Each costs 2 x the product of
  the sizes of all its dimensions.

  Lowered, each core computes an einsum on its slices: a dimension that the
  layout splits over a mesh axis (in any input; layout rules go by
  dimension name) divides the core's share by that axis's size, and every
  core along an axis that splits none of its dimensions repeats the work.
  `repeated` is that extra work along the model-parallel axes (every axis
  but the one `batch` is laid out over): 0 when every contraction is split
  over them, f x (k - 1) for a contraction of f FLOPs that k model slices
  each compute whole (e.g. a d_model x d_model map: layout.gin splits heads,
  d_ff, vocab and experts, never d_model). Repetition along the data axis
  is not counted: per sequence it depends on the per-core batch.

  Args:
    mtf_graph: an mtf.Graph (forward only).
    mesh_shape: mtf.Shape of the mesh.
    layout_rules: mtf.LayoutRules.

  Returns:
    (whole_flops, repeated_flops).
  """
  batch_axis = data_axis(mesh_shape, layout_rules)
  model_axes = {i for i in range(mesh_shape.ndims) if i != batch_axis}
  whole = repeated = 0
  for op in mtf_graph.operations:
    if not isinstance(op, mtf.EinsumOperation) or len(op.inputs) < 2:
      continue  # one input: a reduction (mtf.reduce_sum), not a product
    sizes, axes = {}, set()
    for t in op.inputs:
      layout = layout_rules.tensor_layout(t.shape, mesh_shape)
      for dim, axis in zip(t.shape.dims, layout.tensor_axis_to_mesh_axis):
        # By name and size: mtf.layers.dense can map d_model to a d_model of
        # another size (the Evolved Transformer's 2 d_model convolution).
        sizes[dim] = dim.size
        if axis is not None:
          axes.add(axis)
    if set(sizes) <= set(op.outputs[0].shape.dims):
      continue  # contracts nothing: an elementwise product
    if any(len(t.shape.dims) == len(sizes) for t in op.inputs):
      continue  # a broadcast multiply and a reduce_sum once lowered
    flops = 2 * float(np.prod(list(sizes.values()), dtype=np.float64))
    copies = np.prod([mesh_shape.dims[a].size for a in model_axes - axes])
    whole += flops
    repeated += flops * (copies - 1)
  return whole, repeated


def sliced_count(gin_files, gin_params=(), vocab_size=graph.T5_VOCAB_SIZE):
  """Forward FLOPs of one sequence on the run's own mesh, with repetitions.

  Builds the configured model in eval mode at the paper's lengths and the
  data axis's size as batch, on the mesh and layout of its gin files (graph
  only: nothing lowered or allocated), and counts `mesh_einsum_flops` per
  sequence (a contraction with no batch dimension, the relative-bias
  lookup, counts 1/batch of its cost per sequence). `flops` is the lowered graph's count (one
  slice; `count_ops`), `repeated_flops` what the model-parallel slices
  compute more than once: Table 1's FLOPs at Large and XL fit this sum
  (see gin/arch/lconv.gin).

  Args:
    gin_files: arch, size and mesh files (a run file is allowed).
    gin_params: extra gin bindings.
    vocab_size: vocabulary size before padding.

  Returns:
    SlicedCount(num_params, flops, repeated_flops, mesh shape string).
  """
  with graph.config(gin_files, gin_params):
    mesh_shape, layout_rules = graph.mesh_and_layout()
    # The smallest batch the data axis splits (MoE1D splits its token groups
    # over it); per sequence below.
    axis = data_axis(mesh_shape, layout_rules)
    batch_size = 1 if axis is None else mesh_shape.dims[axis].size
    g = graph.ModelGraph(
        vocab_size,
        batch_size,
        PAPER_SEQUENCE_LENGTH,
        mode="eval",
        mesh_shape=mesh_shape,
        layout_rules=layout_rules)
  whole, repeated = mesh_einsum_flops(g.mtf_graph, mesh_shape, layout_rules)
  return SlicedCount(g.num_params(), whole / batch_size, repeated / batch_size,
                     str(mesh_shape))


def transformer_forward_flops(num_layers,
                              d_model,
                              d_ff,
                              num_heads,
                              d_kv,
                              vocab_size,
                              inputs_length=512,
                              targets_length=114):
  """Closed-form matmul FLOPs of one forward pass of one sequence.

  The T5.1.0 encoder-decoder of gin/arch/transformer.gin: full (not
  causal-halved) attention score and value products, as a dense masked
  implementation computes them; the tied softmax projection onto the padded
  vocabulary. No elementwise ops.

  Args:
    num_layers: layers in each of encoder and decoder.
    d_model, d_ff, num_heads, d_kv: the size macros.
    vocab_size: vocabulary size before padding.
    inputs_length, targets_length: encoder and decoder lengths.

  Returns:
    FLOPs (2 per multiply-add).
  """
  from mtf_arch import params  # pylint: disable=g-import-not-at-top
  e, d, hk = inputs_length, targets_length, num_heads * d_kv

  def attention(q_len, kv_len):
    projections = 2 * 2 * (q_len + kv_len) * d_model * hk  # q, o; k, v
    scores = 2 * 2 * q_len * kv_len * hk  # q.k, then weights.v
    return projections + scores

  def ffn(length):
    return 2 * 2 * length * d_model * d_ff

  encoder = num_layers * (attention(e, e) + ffn(e))
  decoder = num_layers * (attention(d, d) + attention(d, e) + ffn(d))
  logits = 2 * d * d_model * params.padded_vocab(vocab_size)
  return encoder + decoder + logits


def transformer_lowered_flops(num_layers,
                              d_model,
                              d_ff,
                              num_heads,
                              d_kv,
                              vocab_size,
                              inputs_length=512,
                              targets_length=114,
                              num_buckets=32):
  """Closed-form FLOPs with the lookups Mesh-TF lowers to one-hot matmuls.

  `transformer_forward_flops` plus the encoder and decoder token-embedding
  lookups and the relative-position bias looked up (over `num_buckets`
  buckets) in every self-attention layer: the `lowered_gflops` of
  gin/arch/transformer.gin, the denominator of every FLOPs ratio.

  Args:
    num_layers, d_model, d_ff, num_heads, d_kv: the size macros.
    vocab_size: vocabulary size before padding.
    inputs_length, targets_length: encoder and decoder lengths.
    num_buckets: relative-position buckets (T5's 32).

  Returns:
    FLOPs (2 per multiply-add).
  """
  from mtf_arch import params  # pylint: disable=g-import-not-at-top
  e, d = inputs_length, targets_length
  embed = 2 * (e + d) * params.padded_vocab(vocab_size) * d_model
  bias = num_layers * 2 * (e * e + d * d) * num_buckets * num_heads
  return transformer_forward_flops(num_layers, d_model, d_ff, num_heads, d_kv,
                                   vocab_size, e, d) + embed + bias

"""Builds Mesh-TF models from gin files, without the estimator.

Used wherever the package needs the model graph itself: parameter counts
(graph only, nothing allocated), FLOPs, and the CPU-mesh tests that step a
model in-process and compare mesh layouts. The model comes from the same gin
files and the same `mesh_tensorflow.transformer.utils.build_model` call that
`t5_mesh_transformer` uses, so what is counted or tested here is what runs.
"""

import contextlib
import random

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import utils as mtf_utils
import pkg_resources
import tensorflow.compat.v1 as tf

import mtf_arch  # noqa: F401  (gin search path, start-up hook)
from mtf_arch import mesh as mesh_lib

# T5's SentencePiece vocabulary: 32,000 pieces + 100 sentinels; Mesh-TF pads
# the embedding to a multiple of 128 (32,128 rows).
T5_VOCAB_SIZE = 32100


def parse_config(gin_files, gin_params=(), finalize=True):
  """Parses mesh_tensorflow's defaults, then `gin_files` and `gin_params`.

  This is what `t5_mesh_transformer` does before `utils.run`.

  Args:
    gin_files: paths relative to the package's gin folder (or absolute).
    gin_params: extra bindings, as with --gin_param.
    finalize: lock the config.
  """
  gin.clear_config(clear_constants=True)
  gin.parse_config_file(
      pkg_resources.resource_filename(mtf_utils.__name__, "gin/defaults.gin"))
  gin.parse_config_files_and_bindings(
      list(gin_files), list(gin_params), finalize_config=finalize)


def query(name, default=None):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


def mesh_and_layout():
  """The mesh shape (checked) and layout rules of the parsed config."""
  shape = mesh_lib.checked_mesh_shape()
  return mtf.convert_to_shape(shape), mtf.convert_to_layout_rules(
      gin.query_parameter("utils.run.layout_rules"))


def build_model(vocab_size, mesh_shape, layout_rules):
  """The configured Bitransformer/Unitransformer (utils.build_model)."""
  return mtf_utils.build_model(
      model_type=query("utils.run.model_type", "bitransformer"),
      input_vocab_size=vocab_size,
      output_vocab_size=vocab_size,
      layout_rules=layout_rules,
      mesh_shape=mesh_shape)


def _position_kwargs(model, feats):
  if isinstance(model, transformer.Bitransformer):
    return dict(
        encoder_sequence_id=feats.get("inputs_segmentation"),
        decoder_sequence_id=feats.get("targets_segmentation"),
        encoder_position=feats.get("inputs_position"),
        decoder_position=feats.get("targets_position"))
  return dict(
      sequence_id=feats.get("targets_segmentation"),
      position=feats.get("targets_position"))


class ModelGraph(object):
  """A Mesh-TF model built on a fresh tf.Graph.

  Attributes:
    tf_graph, mtf_graph, mesh, model, loss (mtf scalar), features (dict of
    tf placeholders [batch, length]), mesh_shape, layout_rules.
  """

  def __init__(self,
               vocab_size,
               batch_size,
               sequence_length,
               mode="train",
               mesh_shape=None,
               layout_rules=None,
               seed=1):
    """Builds the mtf graph (no lowering, no variables allocated).

    Args:
      vocab_size: input and output vocabulary size (before padding).
      batch_size: sequences per batch.
      sequence_length: {"inputs": int, "targets": int}.
      mode: tf.estimator mode key ("train" or "eval").
      mesh_shape: mtf.Shape; default: the config's checked mesh.
      layout_rules: mtf.LayoutRules; default: the config's.
      seed: the tf.Graph's random seed, set before any variable exists, so
        every graph built from the same config starts from the same weights.
    """
    if mesh_shape is None:
      mesh_shape, layout_rules = mesh_and_layout()
    self.mesh_shape, self.layout_rules = mesh_shape, layout_rules
    self.tf_graph = tf.Graph()
    self.sequence_length = dict(sequence_length)
    self.batch_size = batch_size
    with self.tf_graph.as_default():
      tf.set_random_seed(seed)
      self.mtf_graph = mtf.Graph()
      self.mesh = mtf.Mesh(self.mtf_graph, "my_mesh")
      self.model = build_model(vocab_size, mesh_shape, layout_rules)
      batch_dim = mtf.Dimension("batch", batch_size)
      keys = ["targets", "targets_segmentation", "targets_position"]
      if isinstance(self.model, transformer.Bitransformer):
        keys += ["inputs", "inputs_segmentation", "inputs_position"]
      self.features, feats = {}, {}
      for key in keys:
        length = sequence_length[key.split("_")[0]]
        shape = mtf.Shape([batch_dim, mtf.Dimension("length", length)])
        self.features[key] = tf.placeholder(
            tf.int32, [batch_size, length], name=key)
        feats[key] = mtf.import_fully_replicated(
            self.mesh, self.features[key], shape, name=key)
      inputs = (
          feats["inputs"]
          if "inputs" in feats else transformer.autoregressive_inputs(
              feats["targets"], sequence_id=feats["targets_segmentation"]))
      self.logits, self.loss = self.model.call_simple(
          inputs=inputs,
          targets=feats["targets"],
          compute_loss=True,
          mode=mode,
          variable_dtype=mtf_utils.get_variable_dtype(),
          **_position_kwargs(self.model, feats))

  def num_params(self):
    """Trainable parameters, read from the mtf graph's variables."""
    return sum(v.shape.size for v in self.mtf_graph.trainable_variables)

  def params_by_name(self):
    return {v.name: v.shape.size for v in self.mtf_graph.trainable_variables}


def lower(model_graph,
          devices,
          optimizer=None,
          learning_rate=0.01,
          autostack=True):
  """Adds (optionally) an optimizer step and lowers to `devices`.

  Args:
    model_graph: a ModelGraph.
    devices: one device string per mesh slice ("" places nothing).
    optimizer: an mtf optimizer class (e.g. mtf.optimize.AdafactorOptimizer),
      or None for a forward-only graph.
    learning_rate: constant learning rate for the optimizer.
    autostack: let Mesh-TF combine same-shaped variables (as the trainer
      does); this renames variables, so name-wise comparisons turn it off.

  Returns:
    (lowering, tf_loss, train_op or None)
  """
  g = model_graph
  with g.tf_graph.as_default():
    update_ops = []
    if optimizer is not None:
      global_step = tf.train.get_or_create_global_step()
      var_grads = mtf.gradients(
          [g.loss], [v.outputs[0] for v in g.mtf_graph.trainable_variables])
      update_ops = optimizer(learning_rate=learning_rate).apply_grads(
          var_grads, g.mtf_graph.trainable_variables)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        g.mesh_shape, g.layout_rules, devices)
    # PlacementMeshImpl draws each random op's seed from Python's `random`
    # while lowering (e.g. Switch's router jitter): seeded, the same graph
    # draws the same noise in every layout.
    random.seed(0)
    lowering = mtf.Lowering(
        g.mtf_graph, {g.mesh: mesh_impl}, autostack=autostack)
    tf_loss = tf.cast(lowering.export_to_tf_tensor(g.loss), tf.float32)
    train_op = None
    if optimizer is not None:
      ops = [lowering.lowered_operation(op) for op in update_ops]
      ops.append(tf.assign_add(global_step, 1))
      train_op = tf.group(ops)
  return lowering, tf_loss, train_op


def train_losses(model_graph,
                 batches,
                 num_devices=1,
                 init_values=None,
                 learning_rate=0.01,
                 score_batches=None):
  """Steps the model on `batches` and returns the loss before each step.

  Initial values are the graph's own initializers, except for trainable
  variables found in `init_values` (dict name -> array, e.g. from another
  layout's run). Slices are placed on `num_devices` real CPU devices.
  Lowered without autostacking, so variable names are the same in every
  layout.

  Args:
    model_graph: a ModelGraph.
    batches: list of dicts of numpy arrays keyed like model_graph.features.
    num_devices: CPU devices to create and spread the mesh slices over.
    init_values: optional dict of initial master values by mtf variable name.
    learning_rate: Adafactor's constant learning rate.
    score_batches: optional batches whose loss is computed, without a
      step, after the training.

  Returns:
    (losses, initial_values) where initial_values maps names to arrays;
    with `score_batches`, (losses, initial_values, scores), one loss a batch.
  """
  g = model_graph
  n_slices = g.mesh_shape.size
  devices = ["/cpu:%d" % (i % num_devices) for i in range(n_slices)]
  lowering, tf_loss, train_op = lower(
      g,
      devices,
      mtf.optimize.AdafactorOptimizer,
      learning_rate,
      autostack=False)
  config = tf.ConfigProto(
      device_count={"CPU": num_devices},
      allow_soft_placement=False,
      # One inter-op thread, so ops run in one order from run to run. With two,
      # the model:2 vs model:1 loss comparisons drifted past rtol 1e-5 (9e-5
      # by step 5) in a loaded full-suite run, though they passed alone.
      inter_op_parallelism_threads=1,
      intra_op_parallelism_threads=2)
  # One run for all assignments and one for all reads: a run per variable
  # costs an executor set-up each (4x the training time of a test size). The
  # ops are built before the session runs anything (TensorFlow warns when a
  # graph changes under a session that has run).
  feeds, assigns = {}, []
  with g.tf_graph.as_default():
    for var in g.mtf_graph.trainable_variables:
      if init_values is not None and var.name in init_values:
        value = tf.placeholder(var.master_dtype, init_values[var.name].shape)
        feeds[value] = init_values[var.name]
        assigns.append(var.assign_to_master(value))
    init_ops = [
        tf.global_variables_initializer(),
        tf.local_variables_initializer()
    ]
    copy_op = lowering.copy_masters_to_slices()
    masters = [v.get_master() for v in g.mtf_graph.trainable_variables]
  with g.tf_graph.as_default(), tf.Session(config=config) as sess:
    sess.run(init_ops)
    if assigns:
      sess.run(assigns, feeds)
    sess.run(copy_op)
    initial = dict(
        zip([v.name for v in g.mtf_graph.trainable_variables],
            sess.run(masters)))
    losses = []
    for batch in batches:
      feed = {g.features[k]: batch[k] for k in g.features}
      loss, _ = sess.run([tf_loss, train_op], feed)
      losses.append(float(loss))
    if score_batches is None:
      return losses, initial
    scores = [
        float(sess.run(tf_loss, {g.features[k]: b[k]
                                 for k in g.features}))
        for b in score_batches
    ]
  return losses, initial, scores


@contextlib.contextmanager
def config(gin_files, gin_params=()):
  """Parses a config for the duration of a `with` block, then clears it."""
  parse_config(gin_files, gin_params)
  try:
    yield
  finally:
    gin.clear_config(clear_constants=True)


def greedy_decode_and_rescore(vocab_size,
                              inputs,
                              decode_length,
                              seed=1,
                              train_batches=None,
                              learning_rate=0.01):
  """Greedy incremental decoding, and the full-pass argmax of its output.

  Builds one graph in which the configured Bitransformer decodes `inputs`
  greedily (Mesh-TF's incremental decoding: one position per step, layer
  states carried between steps), then runs the ordinary teacher-forced pass
  on the decoded sequence. With the same weights, every decoded token must be
  the argmax of the full pass at its position (ties aside): a layer whose
  incremental mode disagrees with its full mode breaks the equality.

  Args:
    vocab_size: vocabulary size.
    inputs: int array [batch, input_length].
    decode_length: number of target positions to decode.
    seed: graph-level random seed for the initial weights, so that a test
      decodes the same untrained model every run (an untrained model with a
      shared embedding and softmax often predicts its input, the padding id
      0, at the first position, which leaves nothing to compare).
    train_batches: optional list of training batches (dicts of arrays keyed
      like ModelGraph.features) to take Adafactor steps on first, so that
      the decoded model is past that degenerate start.
    learning_rate: Adafactor's constant learning rate for those steps.

  Returns:
    (decoded ids [batch, decode_length], full-pass logits [batch,
    decode_length, padded vocab]): each decoded id must be the argmax of its
    row of logits, up to float round-off between the two computations.
  """
  mesh_shape, layout_rules = mesh_and_layout()
  tf_graph = tf.Graph()
  batch, in_len = inputs.shape
  with tf_graph.as_default():
    tf.set_random_seed(seed)
    mtf_graph = mtf.Graph()
    mesh = mtf.Mesh(mtf_graph, "my_mesh")
    model = build_model(vocab_size, mesh_shape, layout_rules)
    batch_dim = mtf.Dimension("batch", batch)
    tf_inputs = tf.constant(inputs.astype("int32"))
    mtf_inputs = mtf.import_fully_replicated(
        mesh, tf_inputs, mtf.Shape([batch_dim,
                                    mtf.Dimension("length", in_len)]))
    dtype = mtf_utils.get_variable_dtype()
    decoded = model.decode(
        mtf_inputs,
        variable_dtype=dtype,
        beam_size=1,
        temperature=0.0,
        max_decode_length=decode_length)
    logits, _ = model.call_simple(
        inputs=mtf_inputs,
        targets=decoded,
        compute_loss=False,
        mode="eval",
        variable_dtype=dtype)
    rescored = mtf.cast(logits, tf.float32)
    update_ops, placeholders, tf_train = [], {}, []
    if train_batches:
      sequence_length = {
          k: v.shape[1] for k, v in train_batches[0].items() if "_" not in k
      }
      feats = {}
      for key, value in train_batches[0].items():
        placeholders[key] = tf.placeholder(tf.int32, value.shape, name=key)
        feats[key] = mtf.import_fully_replicated(
            mesh, placeholders[key],
            mtf.Shape([
                mtf.Dimension("batch", value.shape[0]),
                mtf.Dimension("length", sequence_length[key.split("_")[0]])
            ]))
      _, loss = model.call_simple(
          inputs=feats["inputs"],
          targets=feats["targets"],
          compute_loss=True,
          mode="train",
          variable_dtype=dtype,
          **_position_kwargs(model, feats))
      trainable = mtf_graph.trainable_variables
      grads = mtf.gradients([loss], [v.outputs[0] for v in trainable])
      update_ops = mtf.optimize.AdafactorOptimizer(
          learning_rate=learning_rate).apply_grads(grads, trainable)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mesh_shape, layout_rules, [""] * mesh_shape.size)
    lowering = mtf.Lowering(mtf_graph, {mesh: mesh_impl})
    out = [
        lowering.export_to_tf_tensor(decoded),
        lowering.export_to_tf_tensor(rescored)
    ]
    if update_ops:
      global_step = tf.train.get_or_create_global_step()
      tf_train = [lowering.lowered_operation(op) for op in update_ops]
      tf_train.append(tf.assign_add(global_step, 1))
    with tf.Session() as sess:
      sess.run(
          [tf.global_variables_initializer(),
           tf.local_variables_initializer()])
      sess.run(lowering.copy_masters_to_slices())
      for batch in train_batches or []:
        sess.run(tf_train, {placeholders[k]: v for k, v in batch.items()})
      return sess.run(out)

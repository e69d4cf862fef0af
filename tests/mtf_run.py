"""Lowers Mesh-TF outputs on a CPU placement mesh and runs them (tests)."""

import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf


def lower_and_run(mesh, outputs, mesh_shape="", layout=""):
  """Lowers `mesh`'s graph and returns the values of `outputs`.

  Args:
    mesh: the mtf.Mesh the outputs live on.
    outputs: mtf Tensors or Variables (a Variable gives its value).
    mesh_shape: e.g. "all:2"; "" is one slice.
    layout: layout rules, e.g. "heads:all".

  Returns:
    a list of NumPy arrays, one per output, after variable initialisation.
  """
  shape = mtf.convert_to_shape(mesh_shape)
  impl = mtf.placement_mesh_impl.PlacementMeshImpl(
      shape, mtf.convert_to_layout_rules(layout), [""] * shape.size)
  lowering = mtf.Lowering(mesh.graph, {mesh: impl})
  fetch = [
      lowering.export_to_tf_tensor(
          t.outputs[0] if isinstance(t, mtf.Variable) else t) for t in outputs
  ]
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(lowering.copy_masters_to_slices())
    return sess.run(fetch)


def train_rows(gin_files, num_rows=8, gin_params=()):
  """The first training rows `utils.run` would read under `gin_files`.

  Calls the configured `utils.run.train_dataset_fn` as utils.run does
  (sequence_length, vocabulary, dataset_split from the config), so the
  bindings of the arch file (e.g. `mesh_train_dataset_fn.pack`) apply.

  Args:
    gin_files: arch, size, mesh and run files (with run/cpu_quick.gin for
      the offline corpus, which the caller's `offline_dir` fixture builds).
    num_rows: rows to read.
    gin_params: extra bindings.

  Returns:
    a list of {feature: NumPy array} rows, unbatched.
  """
  import gin
  import tensorflow_datasets as tfds
  from mtf_arch import graph
  with graph.config(gin_files, gin_params):
    dataset_fn = gin.query_parameter("utils.run.train_dataset_fn")
    dataset_fn = dataset_fn.scoped_configurable_fn
    ds = dataset_fn(
        sequence_length=gin.query_parameter("utils.run.sequence_length"),
        vocabulary=None,
        dataset_split=gin.query_parameter("utils.run.dataset_split"))
    return list(tfds.as_numpy(ds.take(num_rows)))

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

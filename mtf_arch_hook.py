"""Start-up hook that lets mesh-tensorflow 0.1.21 import on TensorFlow 2.15.

mesh_tensorflow/tpu_variables.py calls
`tensorflow.python.framework.ops.register_tensor_conversion_function` at import
time; TensorFlow 2.13 moved that function to
`tensorflow.python.framework.tensor_conversion_registry`
(https://github.com/tensorflow/mesh/issues/392).

The stock `t5_mesh_transformer` console script imports mesh_tensorflow before
it imports `--module_import` modules, so the fix cannot live in `mtf_arch`
alone: the package installs `mtf_arch.pth`, which imports this module when the
interpreter starts. It only registers a meta-path finder (cheap: TensorFlow is
not imported here); the alias is supplied the first time anything imports
`mesh_tensorflow`. Nothing in site-packages is edited.
"""

import importlib.abc
import sys


def patch():
  """Supplies the moved TensorFlow name if it is missing. Idempotent."""
  from tensorflow.python.framework import ops  # pylint: disable=g-import-not-at-top
  if not hasattr(ops, "register_tensor_conversion_function"):
    from tensorflow.python.framework import tensor_conversion_registry  # pylint: disable=g-import-not-at-top
    ops.register_tensor_conversion_function = (
        tensor_conversion_registry.register_tensor_conversion_function)


class _MeshTensorflowFinder(importlib.abc.MetaPathFinder):
  """Patches TensorFlow just before `mesh_tensorflow` is first imported."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname == "mesh_tensorflow":
      uninstall()
      patch()
    return None  # Let the normal finders import the module.


def install():
  """Registers the finder once per interpreter."""
  if "mesh_tensorflow" in sys.modules:
    patch()
  elif not any(isinstance(f, _MeshTensorflowFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MeshTensorflowFinder())


def uninstall():
  sys.meta_path[:] = [
      f for f in sys.meta_path if not isinstance(f, _MeshTensorflowFinder)
  ]


install()

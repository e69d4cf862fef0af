"""Mesh shapes, devices and the checks that run before any graph is built.

`gin/mesh/*.gin` bind `utils.run.mesh_shape = @mtf_arch.mesh.checked_mesh_shape()`
and `utils.run.mesh_devices = @mtf_arch.mesh.mesh_devices()`. gin evaluates
these when `utils.run` starts, after all files and `--gin_param`s are final,
so a mismatch between the mesh, the devices and the model's dimensions ends
in one `ConfigError` naming the setting, rather than in a layout error from
inside the lowering.
"""

import gin
import mesh_tensorflow as mtf

from mtf_arch.errors import ConfigError

# Model dimensions that T5's layout rules split, and the gin macro that sets
# each (macros an architecture does not define are skipped).
_SPLIT_DIMS = (("heads", "num_heads"), ("d_ff", "d_ff"), ("experts",
                                                          "num_experts"))


def _query(name, default=None):
  try:
    return gin.query_parameter(name)
  except (ValueError, KeyError):
    return default


def _layout_rules():
  rules = _query("utils.run.layout_rules")
  return mtf.convert_to_layout_rules(rules) if rules else None


def check_mesh(shape,
               num_devices,
               dims=None,
               layout_rules=None,
               source="mesh_shape"):
  """Checks a mesh against its devices and the dimensions it will split.

  Args:
    shape: a mesh shape string such as "batch:16,model:2".
    num_devices: devices (TPU cores, CPU or GPU slices) the run provides.
    dims: dict of model dimension name -> (size, setting), e.g.
      {"heads": (12, "num_heads")}; setting names what to change.
    layout_rules: mtf.LayoutRules mapping dimension names to mesh dims.
    source: where the mesh came from, for messages.

  Returns:
    the mtf.Shape of the mesh.

  Raises:
    ConfigError: with what to change.
  """
  try:
    mesh = mtf.convert_to_shape(shape)
  except (ValueError, TypeError) as e:
    raise ConfigError("%s %r is not a mesh shape like 'batch:16,model:2' "
                      "(%s)" % (source, shape, e)) from None
  if num_devices is not None and mesh.size != num_devices:
    raise ConfigError(
        "mesh %r has %d slices but this mesh file provides %d devices; set "
        "checked_mesh_shape.shape to a mesh of %d slices, or use another "
        "gin/mesh/ file" % (shape, mesh.size, num_devices, num_devices))
  for dim_name, (size, setting) in sorted((dims or {}).items()):
    if layout_rules is None:
      continue
    mesh_dim = layout_rules.tensor_dimension_to_mesh_axis(
        mtf.Dimension(dim_name, size), mesh)
    if mesh_dim is None:
      continue
    split = mesh.dims[mesh_dim]
    if size % split.size:
      raise ConfigError(
          "%s=%d: the %r dimension cannot be split over mesh dimension %s:%d "
          "(layout rule %s:%s); set %s to a multiple of %d or use a mesh with "
          "a smaller %r dimension" %
          (setting, size, dim_name, split.name, split.size, dim_name,
           split.name, setting, split.size, split.name))
  return mesh


@gin.configurable
def checked_mesh_shape(shape=gin.REQUIRED, num_devices=None):
  """The mesh shape for `utils.run`, checked against devices and dimensions.

  Args:
    shape: mesh shape string, e.g. "batch:4,model:8".
    num_devices: the devices the mesh file provides (TPU cores for TPU
      layouts; CPU/GPU slices otherwise). None skips the device check.

  Returns:
    the shape string, unchanged.
  """
  dims = {}
  for dim_name, macro in _SPLIT_DIMS:
    value = _query("%" + macro)
    if isinstance(value, int):
      dims[dim_name] = (value, macro)
  check_mesh(
      shape,
      num_devices,
      dims,
      _layout_rules(),
      source="checked_mesh_shape.shape")
  return shape


@gin.configurable
def mesh_devices(device_type=gin.REQUIRED, num_devices=1):
  """Device strings for a placement mesh (CPU/GPU); None on TPU.

  On CPU, TF's estimator session has one CPU device, so two CPU slices are
  placed by soft placement on the same device: the graph is still split in
  two (each slice holds half of the heads/d_ff and an all-reduce joins them),
  which is what the `model:2` equality tests check. The unit tests build
  their own session with two real CPU devices.

  Args:
    device_type: "cpu", "gpu" or "tpu".
    num_devices: number of slices.

  Returns:
    a list of device strings, or None for TPU (SimdMeshImpl assigns cores).
  """
  if device_type == "tpu":
    return None
  if device_type not in ("cpu", "gpu"):
    raise ConfigError("mesh_devices.device_type must be cpu, gpu or tpu, not "
                      "%r" % (device_type,))
  return ["/%s:%d" % (device_type, i) for i in range(num_devices)]

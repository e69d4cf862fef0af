"""The architectures this package defines, read from `gin/arch/*.gin` headers.

Each architecture file names its Table 1 row and sizes in two header lines:

  # paper-model: Evolved Transformer
  # paper-sizes: Tiny Small Base Large XL

and documents each fidelity gap it cannot close, with the arithmetic:

  # param-gap Tiny: -12% (why)     parameters vs Table 1 (band: 5%)
  # flops-gap Tiny: +30% (why)     FLOPs / vanilla's vs Table 1's (band: 10%)

A published variant that Table 1 does not support is its own file, marked

  # variant-of: lconv

and is tested like every architecture but left out of studies with
`archs = "all"` unless it also says `# in-studies: yes`.

Sizes come from `gin/size/<arch>/<size>.gin` when the paper gives the
architecture its own table (Switch: Table 4, UT: Table 5), else from
`gin/size/<size>.gin`. The paper's v3-32 mesh for a size is `TPU_MESH`
unless the size file names its own with `# paper-mesh: <mesh>`. Nothing here
imports TensorFlow.
"""

import collections
import glob
import os
import re

from mtf_arch import paths

# Bands of the two fidelity measures (percent): beyond them an arch file
# must document the row's gap.
PARAM_BAND_PCT = 5.0
FLOPS_BAND_PCT = 10.0

# The paper's mesh per size on 16 TPU-v3 chips (Tay et al. 2022, 3.2: "All
# large models have a model parallelism of 2 and XL models ... 8").
TPU_MESH = {
    "tiny": "tpu_v3_32_mp1",
    "small": "tpu_v3_32_mp1",
    "base": "tpu_v3_32_mp1",
    "large": "tpu_v3_32_mp2",
    "xl": "tpu_v3_32_mp8"
}


class Arch(
    collections.namedtuple("Arch", [
        "name", "gin_file", "paper_model", "sizes", "param_gaps", "flops_gaps",
        "variant_of", "in_studies"
    ])):
  """One gin/arch/ file and what its header says."""

  @property
  def label(self):
    """The model's name in study records, tables and figures.

    Table 1's name; a variant adds its file's name ("ALBERT (albert_shared)"),
    so that two architectures of one Table 1 row never merge into one series.
    """
    if self.variant_of:
      return "%s (%s)" % (self.paper_model or self.variant_of, self.name)
    return self.paper_model or self.name


def _header(text, key):
  m = re.search(r"^#\s*%s:\s*(.+)$" % re.escape(key), text, re.M)
  return m.group(1).strip() if m else None


def _gaps(text, kind):
  return {
      m.group(1): (float(m.group(2)), m.group(3).strip()) for m in re.finditer(
          r"^#\s*%s-gap (\w+):\s*([-+]?[\d.]+)%%\s*(.*)$" % kind, text, re.M)
  }


def architectures():
  """All architectures, sorted by file name: {name: Arch}."""
  out = {}
  for path in sorted(glob.glob(os.path.join(paths.gin_dir(), "arch", "*.gin"))):
    name = os.path.basename(path)[:-4]
    with open(path) as f:
      text = f.read()
    sizes = (_header(text, "paper-sizes") or "").split()
    variant_of = _header(text, "variant-of")
    in_studies = variant_of is None or (_header(text, "in-studies") or
                                        "").lower() in ("yes", "true")
    out[name] = Arch(name, "arch/%s.gin" % name,
                     _header(text, "paper-model"), sizes, _gaps(text, "param"),
                     _gaps(text, "flops"), variant_of, in_studies)
  return out


def study_architectures():
  """The architectures a study with `archs = "all"` runs: {name: Arch}."""
  return {k: a for k, a in architectures().items() if a.in_studies}


def size_file(arch_name, size):
  """The size gin file for an architecture and a paper size ('Tiny'...).

  An architecture's own `gin/size/<arch>/` table, else the table of the
  architecture it is a `variant-of`, else the shared `gin/size/<size>.gin`.
  """
  size = size.lower()
  names = [arch_name]
  arch_path = os.path.join(paths.gin_dir(), "arch", arch_name + ".gin")
  if os.path.exists(arch_path):
    with open(arch_path) as f:
      names.append(_header(f.read(), "variant-of"))
  for name in filter(None, names):
    own = os.path.join("size", name, "%s.gin" % size)
    if os.path.exists(os.path.join(paths.gin_dir(), own)):
      return own
  return os.path.join("size", "%s.gin" % size)


def paper_mesh(arch_name, size):
  """The v3-32 mesh file (without `mesh/` and `.gin`) the paper grid uses.

  Args:
    arch_name: a gin/arch file name without `.gin`.
    size: a paper size ('Tiny' ... 'XL').

  Returns:
    The size file's `# paper-mesh:` header if it has one, else the paper's
    mesh for the size (`TPU_MESH`).
  """
  with open(os.path.join(paths.gin_dir(), size_file(arch_name, size))) as f:
    own = _header(f.read(), "paper-mesh")
  return own or TPU_MESH[size.lower()]

"""The architectures this package defines, read from `gin/arch/*.gin` headers.

Each architecture file names its Table 1 row and sizes in two header lines:

  # paper-model: Evolved Transformer
  # paper-sizes: Tiny Small Base Large XL

and may document a parameter-count gap it cannot close:

  # param-gap Tiny: -12% (why)

Sizes come from `gin/size/<arch>/<size>.gin` when the paper gives the
architecture its own table (Switch: Table 4, UT: Table 5), else from
`gin/size/<size>.gin`. Nothing here imports TensorFlow.
"""

import collections
import glob
import os
import re

from mtf_arch import paths

Arch = collections.namedtuple(
    "Arch", ["name", "gin_file", "paper_model", "sizes", "param_gaps"])


def _header(text, key):
  m = re.search(r"^#\s*%s:\s*(.+)$" % re.escape(key), text, re.M)
  return m.group(1).strip() if m else None


def architectures():
  """All architectures, sorted by file name: {name: Arch}."""
  out = {}
  for path in sorted(glob.glob(os.path.join(paths.gin_dir(), "arch", "*.gin"))):
    name = os.path.basename(path)[:-4]
    with open(path) as f:
      text = f.read()
    sizes = (_header(text, "paper-sizes") or "").split()
    gaps = {
        m.group(1): (float(m.group(2)), m.group(3).strip()) for m in re.finditer(
            r"^#\s*param-gap (\w+):\s*([-+]?[\d.]+)%\s*(.*)$", text, re.M)
    }
    out[name] = Arch(name, "arch/%s.gin" % name, _header(text, "paper-model"),
                     sizes, gaps)
  return out


def size_file(arch_name, size):
  """The size gin file for an architecture and a paper size ('Tiny'...)."""
  size = size.lower()
  own = os.path.join("size", arch_name, "%s.gin" % size)
  if os.path.exists(os.path.join(paths.gin_dir(), own)):
    return own
  return os.path.join("size", "%s.gin" % size)

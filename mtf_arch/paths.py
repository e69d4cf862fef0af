"""Where the package finds its gin files and its offline data."""

import os

OFFLINE_SUBDIR = "offline_v1"


def gin_dir():
  """The folder that holds `arch/`, `size/`, `mesh/` and `run/`.

  Installed wheels carry it as `mtf_arch/gin/`; a source checkout has it at
  the repository's top level.
  """
  here = os.path.dirname(os.path.abspath(__file__))
  for candidate in (os.path.join(here, "gin"),
                    os.path.join(os.path.dirname(here), "gin")):
    if os.path.isdir(os.path.join(candidate, "arch")):
      return candidate
  raise FileNotFoundError(
      "mtf_arch's gin/ folder is missing next to %s; reinstall the package "
      "(pip install --no-deps .)" % here)


def cache_dir():
  """Root of the package's local data: $MTF_ARCH_DATA_DIR or ~/.cache/mtf_arch."""
  return os.path.expanduser(
      os.environ.get("MTF_ARCH_DATA_DIR", os.path.join("~", ".cache",
                                                       "mtf_arch")))


def offline_data_dir():
  """Folder of the offline corpus and its SentencePiece model."""
  return os.path.join(cache_dir(), OFFLINE_SUBDIR)

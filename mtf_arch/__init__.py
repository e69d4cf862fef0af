"""mtf_arch: Tay et al. 2022, "Scaling Laws vs Model Architectures", in Mesh-TF.

Importing the package (e.g. `t5_mesh_transformer --module_import=mtf_arch`):
  * makes mesh-tensorflow 0.1.21 importable on TensorFlow 2.15 (see
    `mtf_arch_hook`);
  * registers the package's gin configurables and seqio tasks;
  * puts the package's gin folder on gin's search path, so
    `--gin_file=arch/transformer.gin --gin_file=size/base.gin` resolves from
    any working directory;
  * makes `mtf_arch.errors.ConfigError` (and a missing gin file) print as one
    clear line instead of a traceback, and drops gin's misleading
    "Path not found" errors for gin files that do load from that folder.

Paper: https://arxiv.org/abs/2207.10551
"""

import mtf_arch_hook

mtf_arch_hook.install()

# pylint: disable=g-import-not-at-top,wrong-import-position
import gin

from mtf_arch import errors
from mtf_arch import evaluation  # noqa: F401  (registers gin configurables)
from mtf_arch import glue  # noqa: F401  (the paper's finetuning mixture)
from mtf_arch import mesh  # noqa: F401  (registers gin configurables)
from mtf_arch import paths
from mtf_arch import proxy_tasks  # noqa: F401  (offline downstream proxies)
from mtf_arch import tasks  # noqa: F401  (registers seqio tasks)

__version__ = "0.1.0"

gin.add_config_file_search_path(paths.gin_dir())
errors.install_excepthook()
errors.quiet_gin_probes()

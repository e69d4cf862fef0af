"""mtf_arch: architectures x scaling laws (Tay et al.) on Mesh TensorFlow / T5.

Install with the pinned stack (see README):
  pip install --no-deps -r requirements.txt && pip install --no-deps .
"""

import os
import shutil

import setuptools
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithHookAndGin(build_py):
  """Also ships `mtf_arch.pth` (start-up hook) and the top-level `gin/` tree.

  The .pth file goes to the wheel root, i.e. site-packages, so the interpreter
  runs `import mtf_arch_hook` at start-up (needed by the stock
  `t5_mesh_transformer`, which imports mesh_tensorflow before our package).
  The gin files are copied into the package as `mtf_arch/gin/`.
  """

  def run(self):
    super().run()
    if self.dry_run:
      return
    shutil.copy(os.path.join(HERE, "mtf_arch.pth"), self.build_lib)
    target = os.path.join(self.build_lib, "mtf_arch", "gin")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        os.path.join(HERE, "gin"),
        target,
        ignore=shutil.ignore_patterns("__pycache__"))


setuptools.setup(
    name="mtf_arch",
    version="0.1.0",
    description=("Scaling laws vs model architectures (Tay et al. 2022) "
                 "reproduced in Mesh TensorFlow on the T5 codebase."),
    python_requires=">=3.9,<3.12",
    packages=setuptools.find_packages(include=[
        "mtf_arch", "mtf_arch.*", "analysis", "analysis.*", "launch", "launch.*"
    ]),
    py_modules=["mtf_arch_hook"],
    include_package_data=False,
    cmdclass={"build_py": BuildPyWithHookAndGin},
    # The exact, verified versions live in requirements.txt and are installed
    # with --no-deps (t5 and seqio declare nightly packages that conflict).
    install_requires=[],
    entry_points={
        "console_scripts": [
            "mtf_arch_corpus=mtf_arch.corpus:console_entry_point",
        ]
    },
)

"""mesh_tensorflow's own shipped tests still pass with the start-up hook."""

import glob
import os
import subprocess
import sys

import mesh_tensorflow


def test_mesh_tensorflow_own_tests_pass():
  root = os.path.dirname(mesh_tensorflow.__file__)
  files = [os.path.join(root, "ops_test.py")] + sorted(
      glob.glob(os.path.join(root, "transformer", "*_test.py")))
  proc = subprocess.run(
      [
          sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
          "ignore"
      ] + files,
      capture_output=True,
      text=True,
      cwd="/",
      timeout=900,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  summary = proc.stdout.strip().splitlines()[-1]
  assert proc.returncode == 0, proc.stdout[-3000:]
  assert " passed" in summary and "failed" not in summary, summary

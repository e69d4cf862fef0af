"""Runs a cell's chain of stock CLI runs in one process.

Each stage is `t5.models.mesh_transformer_main.main` -- the function behind
the `t5_mesh_transformer` command -- called with exactly the argv the stock
command gets (launch/study.py composes them; the TPU target prints them as
separate commands). Between stages the flags, the gin config and the default
graph are reset, so a stage sees what a fresh command would; what is shared
is the Python/TensorFlow import, ~5-7 s saved per stage.

Usage (the study runner calls it):
  python -m launch.cell CHAIN.json
where CHAIN.json is a list of [stage name, argv]. Prints
`[cell] stage done: <name> (<seconds> s)` after each stage, so the runner can record it.
"""

import json
import sys
import time

DONE_MARK = "[cell] stage done: "


def run_chain(chain):
  """Runs [(stage, argv), ...] in order; raises on the first failure."""
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from absl import logging
  import gin
  from t5.models import mesh_transformer_main
  import tensorflow.compat.v1 as tf
  # pylint: enable=g-import-not-at-top
  tf.disable_v2_behavior()
  tf.logging.set_verbosity(tf.logging.INFO)
  for stage, argv in chain:
    start = time.time()
    print("[cell] stage start: %s" % stage, flush=True)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(list(argv))
    logging.use_absl_handler()  # timestamped lines, as under absl.app.run
    sys.argv = list(argv)  # the CLI records sys.argv in model_dir/commands
    gin.clear_config()
    tf.reset_default_graph()
    mesh_transformer_main.main(None)
    print("%s%s (%.1f s)" % (DONE_MARK, stage, time.time() - start), flush=True)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 1:
    raise SystemExit("usage: python -m launch.cell CHAIN.json")
  with open(argv[0]) as f:
    run_chain(json.load(f))


if __name__ == "__main__":
  main()

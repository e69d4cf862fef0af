"""The embedded default: pretrain the vanilla T5 Transformer offline, then eval.

Runs two stock `t5_mesh_transformer` commands on CPU:
  1. span-corruption pretraining on the offline corpus (gin/run/cpu_quick.gin
     over the paper's gin/run/pretrain.gin),
  2. perplexity eval of every kept checkpoint on the validation split
     (gin/run/eval_perplexity.gin),
then writes `results.json` (negative log-perplexity per checkpoint) and
prints where the checkpoints and TensorBoard events are.

Rerunning continues from the last checkpoint (Mesh-TF's estimator restores
it); a finished run is only re-evaluated.

  python -m launch.default [--size tiny] [--steps 300] [--model_dir DIR]
"""

import argparse
import json
import os
import sys

from launch import cli
from mtf_arch import evaluation

TASK = "mtf_arch_offline_span_corruption"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", default=os.path.join("runs", "default"))
  parser.add_argument("--arch", default="transformer")
  parser.add_argument("--size", default="tiny")
  parser.add_argument("--mesh", default="cpu_1")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument(
      "--gin_param",
      action="append",
      default=[],
      help="extra gin bindings, as on the stock CLI")
  args = parser.parse_args(argv)
  model_dir = os.path.abspath(args.model_dir)
  files = [
      "arch/%s.gin" % args.arch,
      "size/%s.gin" % args.size,
      "mesh/%s.gin" % args.mesh, "run/pretrain.gin", "run/cpu_quick.gin"
  ]
  params = ["utils.run.train_steps = %d" % args.steps] + args.gin_param
  log = os.path.join(model_dir, "logs", "run.log")
  print(
      "[default] pretraining %s/%s on the offline corpus for %d steps; "
      "full log: %s" % (args.arch, args.size, args.steps, log),
      flush=True)

  code, _ = cli.run_with_progress(
      cli.t5_command(model_dir, files, params), log, "pretrain", args.steps)
  if code:
    sys.exit("[default] pretraining failed (exit %d); see %s" % (code, log))
  print("[default] perplexity eval of each kept checkpoint", flush=True)
  code, _ = cli.run_with_progress(
      cli.t5_command(model_dir, files + ["run/eval_perplexity.gin"], params),
      log, "eval")
  if code:
    sys.exit("[default] eval failed (exit %d); see %s" % (code, log))

  eval_dir = os.path.join(model_dir, "eval_%s_validation" % TASK)
  candidates = [d for d in os.listdir(model_dir) if d.startswith("eval_")]
  if not os.path.isdir(eval_dir) and candidates:
    eval_dir = os.path.join(model_dir, sorted(candidates)[0])
  nlp = {
      step: value
      for step, tag, value in evaluation.read_summaries(eval_dir)
      if tag == evaluation.UPSTREAM_METRIC
  }
  results = {
      "arch": args.arch,
      "size": args.size,
      "task": TASK,
      "split": "validation",
      "neg_log_perplexity": {
          str(k): v for k, v in sorted(nlp.items())
      }
  }
  tmp = os.path.join(model_dir, "results.json.tmp")
  with open(tmp, "w") as f:
    json.dump(results, f, indent=2)
  os.replace(tmp, os.path.join(model_dir, "results.json"))

  print("\n[default] validation negative log-perplexity by step:")
  for step, value in sorted(nlp.items()):
    print("  step %6d  %.3f" % (step, value))
  print("\n[default] checkpoints:        %s/model.ckpt-*" % model_dir)
  print("[default] TensorBoard events: %s (train), %s (eval)" %
        (model_dir, eval_dir))
  print("[default] results:            %s" %
        os.path.join(model_dir, "results.json"))
  print("[default] view with: tensorboard --logdir %s" % model_dir)


if __name__ == "__main__":
  main()

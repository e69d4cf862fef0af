"""Finetuning steps, eval records, and Table 1's downstream aggregation.

Records: Mesh-TF's `eval` mode writes each metric as a TensorBoard scalar
`eval/<task>/<metric>` at the checkpoint's step, and `perplexity_eval` writes
`neg_log_perplexity`. `collect_records` turns those structured summaries (not
logs) into one JSON record per (model, size, step, task, metric):

  {"model": "Transformer", "size": "Tiny", "step": 300,
   "task": "mtf_arch_proxy_qa", "metric": "em", "value": 41.3,
   "family": "squad", "proxy": true, "model_dir": "..."}

`family` is the Table 1 column a task feeds ("upstream", "glue",
"superglue", "squad"), or for the offline proxy tasks "glue_proxy",
"superglue_proxy", "squad_proxy": their scores are never GLUE scores and are
aggregated under those names; `proxy` marks them too.

Aggregation (`table1_scores`), following T5 (Raffel et al. 2019, sec. 2.7)
and the benchmarks' own leaderboards: a task with several metrics scores
their mean (MRPC/QQP: accuracy and F1; STS-B: Pearson and Spearman; CB:
accuracy and F1; MultiRC: F1a and exact match; ReCoRD: F1 and EM); MNLI
scores the mean of matched and mismatched accuracy; GLUE and SuperGLUE are
the unweighted means over their tasks (WNLI and the AX diagnostics are
excluded); SQuAD is exact match, because Table 1's values (e.g. 86.3 for
Base) sit near T5's SQuAD EM (85.4 for T5-Base) and far from its F1 (92.1).
"""

import glob
import json
import os
import re
import statistics

import gin

from mtf_arch.errors import ConfigError

UPSTREAM_METRIC = "neg_log_perplexity"
# Tasks evaluated but left out of the averages (diagnostics, WNLI-like).
EXCLUDED = re.compile(r"(glue_ax_|axb|axg|wnli|dpr_|wsc_v102_simple_train)")
# The metric Table 1 reports for SQuAD-like tasks.
SQUAD_METRIC = "em"


@gin.configurable
def finetune_train_steps(batch_size,
                         sequence_length,
                         init_checkpoint=gin.REQUIRED,
                         finetune_steps=100000):
  """`utils.run.train_steps` for finetuning: the checkpoint's step + N.

  Mesh-TF restores the global step with `utils.run.init_checkpoint`, and
  `train_steps` is the step to stop at, so finetuning for N steps means
  stopping at (pretrained step + N), as T5's README prescribes.

  Args:
    batch_size: unused (utils.run's callable signature).
    sequence_length: unused.
    init_checkpoint: path of the pretrained checkpoint, model.ckpt-<step>.
    finetune_steps: steps of finetuning (the paper: 100K).

  Returns:
    the global step at which finetuning stops.
  """
  del batch_size, sequence_length
  m = re.search(r"model\.ckpt-(\d+)", init_checkpoint or "")
  if not m:
    raise ConfigError(
        "PRETRAINED_CHECKPOINT (gin/run/finetune.gin) must name a checkpoint "
        "like .../model.ckpt-524288, not %r" % (init_checkpoint,))
  return int(m.group(1)) + finetune_steps


@gin.configurable
def scores_only(results, vocabulary):
  """`score_with_estimator`'s postprocess for `score_eval` off TPU.

  Mesh-TF's default (`save_scores`) re-tokenizes each scored target to write
  its text, but off TPU its model_fn has already detokenized the targets to
  strings (`_maybe_detokenize` with a seqio vocabulary), and `save_scores`
  fails on them ("'bytes' object has no attribute 'tolist'"). Rank
  classification needs the scores only; `eval_model` unpacks two values.

  Args:
    results: the estimator's predictions, dicts with `scores` and `targets`.
    vocabulary: unused.

  Returns:
    (scores, targets): one log-likelihood and one target string per example.
  """
  del vocabulary
  return [r["scores"] for r in results], [r["targets"] for r in results]


def read_summaries(event_dir):
  """[(step, tag, value)] of the scalar summaries in a folder."""
  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf
  from tensorflow.python.util import deprecation
  # pylint: enable=g-import-not-at-top
  out = []
  for path in sorted(
      glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
    with deprecation.silence():  # summary_iterator's notice, once per process
      events = list(tf.train.summary_iterator(path))
    for event in events:
      for value in event.summary.value:
        if value.HasField("simple_value"):
          out.append((int(event.step), value.tag, float(value.simple_value)))
  return out


def train_steps_per_second(model_dir):
  """Median training steps/s a run logged (the estimator's global_step/sec).

  Args:
    model_dir: a training run's folder.

  Returns:
    the median over the run's logged intervals, or None if it logged none.
  """
  rates = [
      v for _, tag, v in read_summaries(model_dir) if tag == "global_step/sec"
  ]
  return float(statistics.median(rates)) if rates else None


def _family(task):
  from mtf_arch import glue, proxy_tasks  # pylint: disable=g-import-not-at-top
  if task in proxy_tasks.FAMILY:
    return proxy_tasks.FAMILY[task], True
  if task.startswith("mtf_arch_proxy_"):
    # A classification proxy decoded rather than ranked: not a score.
    return "other", True
  base = task[len(glue.PREFIX):] if task.startswith(glue.PREFIX) else task
  return glue.FAMILY_OF.get(base, "other"), False


def collect_records(model_dir, model, size):
  """Records for every eval and perplexity-eval summary under `model_dir`."""
  records = []
  for eval_dir in sorted(glob.glob(os.path.join(model_dir, "*eval*"))):
    if not os.path.isdir(eval_dir):
      continue
    for step, tag, value in read_summaries(eval_dir):
      if tag == UPSTREAM_METRIC:
        m = re.match(r"eval_(.+)_(validation|test|train)",
                     os.path.basename(eval_dir))
        task = m.group(1) if m else os.path.basename(eval_dir)
        family, proxy = "upstream", False
        metric = UPSTREAM_METRIC
      elif tag.startswith("eval/"):
        _, task, metric = tag.split("/", 2)
        family, proxy = _family(task)
      else:
        continue
      records.append({
          "model": model,
          "size": size,
          "step": step,
          "task": task,
          "metric": metric,
          "value": value,
          "family": family,
          "proxy": proxy,
          "model_dir": model_dir
      })
  return records


def write_records(path, records):
  """Writes JSON lines atomically (a killed run leaves no partial file)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for r in records:
      f.write(json.dumps(r, sort_keys=True) + "\n")
  os.replace(tmp, path)


def _task_score(family, metrics):
  if family.startswith("squad"):
    return metrics.get(SQUAD_METRIC, metrics.get("exact_match"))
  values = [v for v in metrics.values() if v is not None]
  return sum(values) / len(values) if values else None


def table1_scores(records):
  """{(model, size, step): {"neg_log_ppl", "glue", "superglue", "squad"}}.

  (For proxy records the columns are "glue_proxy", "superglue_proxy" and
  "squad_proxy".)

  Upstream comes from perplexity-eval records; the downstream columns from
  eval records, aggregated as the module docstring says. A column without
  records is absent, never zero.
  """
  by_task = {}
  for r in records:
    key = (r["model"], r["size"], r["step"])
    by_task.setdefault(key, {}).setdefault((r["family"], r["task"]),
                                           {})[r["metric"]] = r["value"]
  out = {}
  for key, tasks_ in by_task.items():
    row, families = {}, {}
    mnli = []
    for (family, task), metrics in sorted(tasks_.items()):
      if family == "upstream":
        row["neg_log_ppl"] = metrics[UPSTREAM_METRIC]
        continue
      if EXCLUDED.search(task) or family == "other":
        continue
      score = _task_score(family, metrics)
      if score is None:
        continue
      if "mnli_matched" in task or "mnli_mismatched" in task:
        mnli.append(score)
        continue
      families.setdefault(family, []).append(score)
    if mnli:
      families.setdefault("glue", []).append(sum(mnli) / len(mnli))
    for family, scores in families.items():
      row[family] = sum(scores) / len(scores)
    out[key] = row
  return out


def main(argv=None):
  """`python -m mtf_arch.evaluation`: eval summaries -> records (JSON lines)."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument(
      "--model_dir",
      required=True,
      action="append",
      help="run folder(s) holding eval summaries")
  parser.add_argument(
      "--model", required=True, help="Table 1 model name, e.g. Transformer")
  parser.add_argument("--size", required=True, help="e.g. Tiny")
  parser.add_argument("--out", required=True, help="records.jsonl to write")
  args = parser.parse_args(argv)
  records = []
  for model_dir in args.model_dir:
    records += collect_records(model_dir, args.model, args.size)
  write_records(args.out, records)
  for key, row in sorted(table1_scores(records).items()):
    print(key, {k: round(v, 3) for k, v in sorted(row.items())})
  print("wrote %d records to %s" % (len(records), args.out))


if __name__ == "__main__":
  main()

"""The paper's finetuning mixture on mock data, the offline proxies, records."""

import collections
import contextlib
import json
import os
import re

import gin
import numpy as np
import pytest
import seqio
import tensorflow.compat.v1 as tf
import tensorflow_datasets as tfds
from t5.evaluation import qa_utils
from t5.models import mesh_transformer

from mtf_arch import evaluation
from mtf_arch import glue
from mtf_arch import paths
from mtf_arch import proxy_tasks
from mtf_arch import registry
from mtf_arch import seeds
from mtf_arch import tasks
from tests.conftest import run_cli


def test_mixture_has_the_17_tasks():
  mixture = seqio.get_mixture_or_task(glue.MIXTURE)
  trained = {t.name for t in mixture.tasks if mixture.get_rate(t) > 0}
  scored = {
      t.name
      for t in mixture.tasks
      if not evaluation.EXCLUDED.search(t.name) and "mnli_m" not in t.name
  }
  # 8 GLUE (no WNLI) + 8 SuperGLUE (WSC in T5's simple form) + SQuAD.
  assert len(scored) == 17, sorted(scored)
  assert not any("wnli" in t for t in trained)
  assert "mtf_arch_glue_ax_v002" not in trained
  assert "mtf_arch_squad_v010_allanswers" in trained


@pytest.fixture
def offline_vocab_for_c4(offline_dir):
  """Points the C4/GLUE vocabulary at the offline model (no gs:// here)."""
  gin.bind_parameter("c4_vocabulary_path.path",
                     os.path.join(offline_dir, "spm.model"))
  yield
  gin.clear_config()


# T5's WSC and DPR preprocessors check that a span's text is the word at its
# index, which random fake text cannot satisfy: those two builders get one
# consistent hand-written example (in TFDS's feature format) instead.
_SENTENCE = "The cat chased the dog because it was hungry ."
_CONSISTENT = {
    "definite_pronoun_resolution": {
        "sentence": _SENTENCE,
        "pronoun": "it",
        "candidates": ["The cat", "the dog"],
        "label": 0
    },
    "super_glue": {
        "text": _SENTENCE,
        "span1_index": 1,
        "span1_text": "cat",
        "span2_index": 6,
        "span2_text": "it",
        "idx": 0,
        "label": 1
    },
}
_NEEDS_CONSISTENT = re.compile(r"wsc|dpr")


def _consistent_as_dataset(self,
                           split,
                           decoders=None,
                           read_config=None,
                           **kwargs):
  del split, decoders, read_config, kwargs
  example = _CONSISTENT[self.name]
  dtypes = {k: self.info.features[k].dtype for k in example}
  return tf.data.Dataset.from_tensors({
      k: tf.constant(v, dtype=dtypes[k]) for k, v in example.items()
  }).repeat(4)


def _check_tasks(task_list, seq):
  """Each task's first 8 examples (mock data) through its metrics."""
  for task in task_list:
    split = "validation" if "validation" in task.splits else task.splits[0]
    examples = list(task.get_dataset(seq, split=split, shuffle=False).take(8))
    assert examples, task.name
    for ex in examples:
      assert ex["targets"].shape[0] <= seq["targets"]
    # As Mesh-TF's eval_model: postprocess targets with the example, and
    # predictions (here: the target text itself) without.
    texts = [
        tf.compat.as_text(ex["targets_pretokenized"].numpy()) for ex in examples
    ]
    targets = [
        task.postprocess_fn(t, example=tfds.as_numpy(ex), is_target=True)
        for t, ex in zip(texts, examples)
    ]
    predictions = [
        task.postprocess_fn(t, example=tfds.as_numpy(ex))
        for t, ex in zip(texts, examples)
    ]
    # Predictions equal to the targets reach each metric's maximum (100);
    # where the targets differ, each prediction moved to the next example
    # scores below it on some metric.
    rolled = predictions[1:] + predictions[:1]
    varied = len(set(map(str, targets))) > 1
    below = []
    for metric_fn in task.metric_fns:
      result = metric_fn(targets, predictions)
      assert isinstance(result, dict) and result, task.name
      for key, value in result.items():
        assert value == pytest.approx(100.0), (task.name, key, value)
      if varied:
        below += [v < 99.0 for v in metric_fn(targets, rolled).values()]
    assert not (varied and task.metric_fns) or any(below), task.name


def test_real_mixture_data_path_on_mock_data(offline_vocab_for_c4):
  """Same preprocessors, lengths, postprocessors and metrics as real data."""
  del offline_vocab_for_c4
  seq = {"inputs": 512, "targets": 97}
  mixture = seqio.get_mixture_or_task(glue.MIXTURE)
  plain = [t for t in mixture.tasks if not _NEEDS_CONSISTENT.search(t.name)]
  special = [t for t in mixture.tasks if _NEEDS_CONSISTENT.search(t.name)]
  assert len(special) == 3  # dpr_v001_simple and WSC simple train/eval
  with tfds.testing.mock_data(num_examples=8):
    _check_tasks(plain, seq)
  with tfds.testing.mock_data(as_dataset_fn=_consistent_as_dataset):
    _check_tasks(special, seq)
    # The whole mixture, as finetuning reads it.
  with tfds.testing.mock_data(num_examples=4):
    mixed = seqio.get_mixture_or_task(glue.MIXTURE)
    names = [t.name for t in plain if mixed.get_rate(t) > 0]
    assert len(names) == 16  # 8 GLUE + 7 SuperGLUE (no WSC) + SQuAD
    sub = seqio.Mixture("mtf_arch_test_plain_mix", [(n, 1.0) for n in names])
    batch = next(iter(sub.get_dataset(seq, split="train", shuffle=False)))
    assert batch["inputs"].shape[0] <= 512


def test_proxies_are_deterministic_and_disjoint(offline_dir):
  del offline_dir
  for task in (proxy_tasks.PAIR, proxy_tasks.RTE, proxy_tasks.QA):
    train = proxy_tasks.examples(task, "train")
    valid = proxy_tasks.examples(task, "validation")
    assert len(train) > 200 and len(valid) > 40, (task, len(train), len(valid))
    assert proxy_tasks.examples(task, "train") == train
    assert not {e["inputs"] for e in train} & {e["inputs"] for e in valid}
  qa = proxy_tasks.examples(proxy_tasks.QA, "validation")
  for ex in qa:
    assert ex["targets"] in ex["inputs"].split("context: ", 1)[1]
    # SQuAD's metric would count any article predicted as this answer.
    assert qa_utils.normalize_squad(ex["targets"]), ex
  common = collections.Counter(e["targets"] for e in qa).most_common(1)[0][1]
  assert proxy_tasks.chance()["squad_proxy"] == pytest.approx(100.0 * common /
                                                              len(qa))
  for task, label in ((proxy_tasks.PAIR, "equivalent"), (proxy_tasks.RTE,
                                                         "true")):
    labels = [e["targets"] for e in proxy_tasks.examples(task, "train")]
    assert 0.35 < labels.count(label) / len(labels) < 0.65, task
  for ex in proxy_tasks.examples(proxy_tasks.PAIR, "validation"):
    first, second = re.fullmatch(r"pair sentence1: (.*) sentence2: (.*)",
                                 ex["inputs"]).groups()
    if ex["targets"] == "equivalent":  # a rewrite: only sentence1's words
      assert set(second.split()) <= set(first.split()), ex
  for ex in proxy_tasks.examples(proxy_tasks.RTE, "validation"):
    premise, hypothesis = re.fullmatch(r"rte premise: (.*) hypothesis: (.*)",
                                       ex["inputs"]).groups()
    # The same words but for one "not", exactly where it is not entailed.
    diff = collections.Counter(premise.split())
    diff.subtract(collections.Counter(hypothesis.split()))
    changed = {w: n for w, n in diff.items() if n}
    assert changed == ({} if ex["targets"] == "true" else {
        "not": 1 if "not" in premise.split() else -1
    }), ex


def test_rank_classification_expands_every_candidate(offline_dir):
  """Each example becomes one per candidate label, exactly one of them the
  target, scored as T5 does (the likeliest candidate is the prediction)."""
  del offline_dir
  task = seqio.get_mixture_or_task(proxy_tasks.RANK[proxy_tasks.PAIR])
  rows = proxy_tasks.examples(proxy_tasks.PAIR, "validation")
  ds = task.get_dataset(
      proxy_tasks.SEQUENCE_LENGTH, split="validation", shuffle=False)
  expanded = list(ds.as_numpy_iterator())
  assert len(expanded) == 2 * len(rows)
  vocab = proxy_tasks.tasks.OFFLINE_VOCABULARY
  for i, row in enumerate(rows[:20]):
    pair = expanded[2 * i:2 * i + 2]
    assert [list(e["idx"]) for e in pair] == [[i, 0], [i, 1]]
    assert [vocab.decode(e["targets"].tolist()) for e in pair
           ] == list(proxy_tasks.PAIR_LABELS)
    assert [bool(e["is_correct"]) for e in pair
           ] == [c == row["targets"] for c in proxy_tasks.PAIR_LABELS]
  # The metric: per example, the candidate with the higher score wins.
  targets = [
      (tuple(e["idx"]), bool(e["is_correct"]), 1.0, 1) for e in expanded[:8]
  ]
  scores = [0.0, -1.0, -1.0, 0.0, -2.0, -0.5, -0.1, -3.0]
  right = 0
  for i in range(4):
    best = 2 * i + (0 if scores[2 * i] > scores[2 * i + 1] else 1)
    right += targets[best][1]
  got = proxy_tasks.metrics.rank_classification(targets, scores)
  assert got["accuracy"] == pytest.approx(100.0 * right / 4)


def _rec(task, metric, value, family, step=10, model="M", size="Tiny"):
  return {
      "model": model,
      "size": size,
      "step": step,
      "task": task,
      "metric": metric,
      "value": value,
      "family": family,
      "proxy": False
  }


def test_aggregation_on_hand_made_records():
  p = "mtf_arch_"
  records = [
      _rec("c4", "neg_log_perplexity", -2.5, "upstream"),
      _rec(p + "glue_cola_v002", "matthews_corrcoef", 40.0, "glue"),
      _rec(p + "glue_mrpc_v002", "accuracy", 80.0, "glue"),
      _rec(p + "glue_mrpc_v002", "f1", 90.0, "glue"),  # task = 85
      _rec(p + "glue_mnli_matched_v002", "accuracy", 70.0, "glue"),
      _rec(p + "glue_mnli_mismatched_v002", "accuracy", 72.0, "glue"),  # 71
      _rec(p + "glue_ax_v002", "matthews_corrcoef", 1.0, "glue"),  # excluded
      _rec(p + "super_glue_cb_v102", "accuracy", 60.0, "superglue"),
      _rec(p + "super_glue_cb_v102", "mean_3class_f1", 50.0, "superglue"),
      _rec(p + "super_glue_boolq_v102", "accuracy", 75.0, "superglue"),
      _rec(p + "squad_v010_allanswers", "em", 80.0, "squad"),
      _rec(p + "squad_v010_allanswers", "f1", 88.0, "squad"),
  ]
  scores = evaluation.table1_scores(records)[("M", "Tiny", 10)]
  assert scores["neg_log_ppl"] == -2.5
  assert scores["glue"] == pytest.approx((40.0 + 85.0 + 71.0) / 3)
  assert scores["superglue"] == pytest.approx((55.0 + 75.0) / 2)
  assert scores["squad"] == 80.0  # exact match, not F1


def test_finetune_steps_from_checkpoint():
  assert evaluation.finetune_train_steps(None, None, "/m/model.ckpt-524288",
                                         100000) == 624288
  with pytest.raises(evaluation.ConfigError, match="model.ckpt-"):
    evaluation.finetune_train_steps(None, None, "/m/latest", 10)


BASE = [
    "--module_import=mtf_arch", "--gin_file=arch/transformer.gin",
    "--gin_file=size/test.gin", "--gin_file=mesh/cpu_1.gin",
    "--gin_file=run/pretrain.gin", "--gin_file=run/cpu_quick.gin"
]


def test_pretrain_finetune_evaluate_offline_from_cli(tmp_path, offline_dir):
  """Tiny vanilla model: pretrain -> upstream eval -> finetune -> eval."""
  del offline_dir
  pre, fine = str(tmp_path / "pre"), str(tmp_path / "fine")
  steps = ["--gin_param=utils.run.train_steps=6"]
  for extra in ([], ["--gin_file=run/eval_perplexity.gin"]):
    proc = run_cli(["--model_dir=" + pre] + BASE + steps + extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
  finetune = BASE + [
      "--gin_file=run/finetune.gin", "--gin_file=run/finetune_proxy.gin",
      "--gin_param=PRETRAINED_CHECKPOINT='%s/model.ckpt-6'" % pre,
      "--gin_param=finetune_train_steps.finetune_steps=4"
  ]
  # As a study cell runs it: finetune, decode the QA proxy, rank the others.
  for extra in ([], ["--gin_file=run/eval_proxy.gin"],
                ["--gin_file=run/eval_proxy_rank.gin"]):
    proc = run_cli(["--model_dir=" + fine] + finetune + extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(fine, "model.ckpt-10.index"))
  records = (
      evaluation.collect_records(pre, "Transformer", "test") +
      evaluation.collect_records(fine, "Transformer", "test"))
  path = str(tmp_path / "records.jsonl")
  evaluation.write_records(path, records)
  with open(path) as f:
    loaded = [json.loads(l) for l in f]
  upstream = [r for r in loaded if r["family"] == "upstream"]
  assert upstream and all(r["value"] < 0 for r in upstream)
  tasks = {(r["task"], r["metric"]) for r in loaded if r["step"] == 10}
  rank = proxy_tasks.RANK
  assert {(rank[proxy_tasks.PAIR], "accuracy"),
          (rank[proxy_tasks.RTE], "accuracy"),
          (proxy_tasks.QA, "em")} <= tasks, tasks
  # Rank accuracy counts whole examples: accuracy x N is a whole number.
  for task in (proxy_tasks.PAIR, proxy_tasks.RTE):
    n = len(proxy_tasks.examples(task, "validation"))
    value, = [
        r["value"]
        for r in loaded
        if r["task"] == rank[task] and r["step"] == 10
    ]
    assert value * n / 100.0 == pytest.approx(round(value * n / 100.0)), value
  assert all(
      r["proxy"] for r in loaded if r["task"].startswith("mtf_arch_proxy"))
  scores = evaluation.table1_scores(loaded)
  columns = set(scores[("Transformer", "test", 10)])
  assert {"glue_proxy", "superglue_proxy", "squad_proxy"} <= columns
  assert not {"glue", "superglue", "squad"} & columns  # proxies, never GLUE


@pytest.mark.parametrize("arch", sorted(registry.architectures()))
def test_every_architecture_evaluates_from_cli(arch, tmp_path, offline_dir):
  """Train 2 steps on the proxy mixture, then decode-based eval (stock CLI)."""
  del offline_dir
  model_dir = str(tmp_path / arch)
  args = [
      "--module_import=mtf_arch", "--model_dir=" + model_dir,
      "--gin_file=arch/%s.gin" % arch, "--gin_file=size/test.gin",
      "--gin_file=mesh/cpu_1.gin", "--gin_file=run/pretrain.gin",
      "--gin_file=run/cpu_quick.gin", "--gin_file=run/finetune_proxy.gin",
      "--gin_param=utils.run.train_steps = 2",
      "--gin_param=utils.run.batch_size = 4"
  ]
  for extra in ([], ["--gin_file=run/eval.gin"]):
    proc = run_cli(args + extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
  # The CLI run used what the arch file says (its bindings are operative).
  with open(os.path.join(model_dir, "operative_config.gin")) as f:
    operative = f.read()
  with open(os.path.join(paths.gin_dir(), "arch", arch + ".gin")) as f:
    bound = re.findall(r"^(?:\w+/)*(?:[\w]+\.)*(\w+\.\w+)\s*=", f.read(), re.M)
  for name in bound:
    if not name.startswith("run."):
      assert name in operative, (arch, name)
  records = evaluation.collect_records(model_dir, arch, "test")
  metrics = {(r["task"], r["metric"]) for r in records if r["step"] == 2}
  assert {(proxy_tasks.PAIR, "accuracy"), (proxy_tasks.QA, "f1")} <= metrics


def _train_batches(name, seq, autograph, pack=True, num_batches=3):
  """The first batches the run files' training input_fn yields for `name`."""
  with contextlib.nullcontext() if autograph else seeds.autograph_off():
    dataset = mesh_transformer.mesh_train_dataset_fn(
        name, seq, seed=0, pack=pack)
  it = iter(dataset.batch(4))
  batches = [next(it) for _ in range(num_batches)]
  return [{k: v.numpy() for k, v in b.items()} for b in batches]


def _assert_same_batches(a, b, name):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y), name
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=name + ":" + key)


def test_train_pipelines_are_the_same_without_autograph(offline_vocab_for_c4):
  """seeded_train_dataset_fn builds without AutoGraph: same batches, bit for bit.

  Covers every training mixture a run file names: offline span corruption
  (packed, and unpacked as Funnel and MLP-Mixer train), the proxy mixture and
  the finetuning mixture (GLUE, SuperGLUE, SQuAD; mock data, as above).
  """
  del offline_vocab_for_c4
  quick = dict(inputs=128, targets=29)  # run/cpu_quick.gin's lengths
  proxy = dict(inputs=64, targets=8)
  for name, seq, pack in [(tasks.OFFLINE_TASK, quick, True),
                          (tasks.OFFLINE_TASK, quick, False),
                          (proxy_tasks.MIXTURE, proxy, True)]:
    _assert_same_batches(
        _train_batches(name, seq, True, pack),
        _train_batches(name, seq, False, pack), name)
  mixture = seqio.get_mixture_or_task(glue.MIXTURE)
  with tfds.testing.mock_data(num_examples=4):
    names = [
        t.name
        for t in mixture.tasks
        if not _NEEDS_CONSISTENT.search(t.name) and mixture.get_rate(t) > 0
    ]
    sub = "mtf_arch_test_autograph_mix"
    if sub not in seqio.MixtureRegistry.names():
      seqio.MixtureRegistry.add(sub, [(n, 1.0) for n in names])
    seq = {"inputs": 512, "targets": 97}
    _assert_same_batches(
        _train_batches(sub, seq, True), _train_batches(sub, seq, False), sub)

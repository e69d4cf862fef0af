"""Offline downstream proxies: small tasks in the shape of GLUE, SuperGLUE, SQuAD.

GLUE, SuperGLUE and SQuAD cannot be downloaded here, so the embedded default
and the tests finetune on three tasks generated deterministically from the
offline corpus's held-out text (`validation.txt`, never seen in
pretraining). They are PROXIES: they test the finetune -> decode -> metric
pipeline and rank models coarsely; their scores are not GLUE scores.

* `mtf_arch_proxy_pair` (paraphrase detection, MRPC's shape): is sentence2
  a light rewrite of sentence1 ("equivalent") or of a sentence from another
  paragraph, cut to sentence1's length ("different")? Metric: accuracy.
* `mtf_arch_proxy_rte` (entailment, RTE's shape, a SuperGLUE task): is the
  hypothesis, the premise with two words swapped, also negated by adding or
  removing one "not" ("false") or not ("true")? Metric: accuracy.
* `mtf_arch_proxy_qa` (extractive QA, like SQuAD): a paragraph and the
  question which word follows a quoted three-word span in it; the answer is
  a word of the paragraph, never an article (SQuAD's normalization empties
  those, so any article predicted matched them at F1 0: a model answering
  "the" scored 7.3 EM). Metric: SQuAD exact match and F1; guessing the most
  common answer scores `chance()`.

Why these designs (measured: the quick recipe's Transformer at micro_3, 100
pretraining steps, finetuned on the mixture, classification proxies ranked):
earlier designs could not be learned at this scale or were solved by a
prior. Consecutive vs unrelated sentences scored 46.4 after 100 finetuning
steps. A cloze with a random other word as the distractor scored 65, but
choosing the more frequent candidate scores 68.8 on it; with a distractor as
frequent as the answer it scored 36.6 and 42.0 after 100 and 300 steps
(frequency alone: 40.2). A passage-contains-this-fragment task (BoolQ's
shape) stayed at 51.5-55.7 after 100-400 steps. The paraphrase proxy scores
47.4 after 100 steps and, in a mixture with that BoolQ-shaped task, 59.7
and 64.0 after 200 and 400. The entailment proxy scores 90.9 after 100
steps; the word "not" in the hypothesis alone would give 85.2, so part of it
is that cue, as in real NLI data.

Mixture `mtf_arch_proxy_mixture` mixes them equally (rate 1.0 each).
Paragraphs go to train (4 in 5) or validation (1 in 5) by hash.

The two classification proxies are scored by rank classification, as T5
scores its classification tasks by likelihood (t5.data.preprocessors.
rank_classification, t5.evaluation.metrics.rank_classification): each
validation example becomes one example per candidate label, Mesh-TF's
`score_eval` mode scores the log-likelihood of each (gin/run/
eval_proxy_rank.gin), and the likeliest candidate is the prediction, so every
answer is a valid label and a model that learned nothing scores chance
(`chance`), never zero. Tasks `<task>_rank`, mixture
`mtf_arch_proxy_rank_mixture`. The QA proxy is extractive, as SQuAD, and
stays decoded (gin/run/eval_proxy.gin).
"""

import functools
import hashlib
import os
import random
import re

import seqio
from t5.data import postprocessors as t5_postprocessors
from t5.data import preprocessors as t5_preprocessors
from t5.evaluation import metrics
from t5.evaluation import qa_utils
import tensorflow.compat.v2 as tf

from mtf_arch import tasks

PAIR, RTE, QA = ("mtf_arch_proxy_pair", "mtf_arch_proxy_rte",
                 "mtf_arch_proxy_qa")
MIXTURE = "mtf_arch_proxy_mixture"
RANK = {PAIR: PAIR + "_rank", RTE: RTE + "_rank"}
RANK_MIXTURE = "mtf_arch_proxy_rank_mixture"
# One token each in the offline vocabulary, so neither candidate is favoured
# by its length under rank classification.
PAIR_LABELS = ("equivalent", "different")
RTE_LABELS = ("true", "false")  # entailed or not; one token each
# The benchmark family each scored proxy stands in for, named as a proxy in
# every record and report (never "glue" itself). The classification proxies
# count by their rank-classification scores only.
FAMILY = {
    RANK[PAIR]: "glue_proxy",
    RANK[RTE]: "superglue_proxy",
    QA: "squad_proxy"
}
# What guessing scores on each family's metric: the two balanced candidates
# of a ranked proxy; for QA, always answering the validation set's most
# common answer (`chance`).
RANKED_CHANCE = 50.0
SEQUENCE_LENGTH = {"inputs": 128, "targets": 8}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _split_of(paragraph):
  # Salted: the corpus already chose these paragraphs by an unsalted hash.
  h = int(
      hashlib.md5(("proxy:" + paragraph).encode("utf-8")).hexdigest()[:8], 16)
  return "validation" if h % 5 == 0 else "train"


def _paragraphs(split):
  path = os.path.join(tasks.offline_corpus_dir(), "validation.txt")
  tasks.check_readable(path, "offline corpus file", tasks.offline_help())
  with open(path, encoding="utf-8") as f:
    paras = [l.strip() for l in f if l.strip()]
  return [p for p in paras if _split_of(p) == split]


def _short(text, max_words):
  return " ".join(text.split()[:max_words])


def _paraphrase(sentence, rng):
  """A light rewrite: about one word in five dropped, one adjacent pair swapped."""
  words = [w for w in sentence.split() if rng.random() >= 0.2
          ] or sentence.split()
  if len(words) > 2:
    k = rng.randrange(len(words) - 1)
    words[k], words[k + 1] = words[k + 1], words[k]
  return " ".join(words)


def pair_examples(paragraphs, seed=0):
  """Paraphrase or not (MRPC's shape), balanced.

  sentence2 is a light rewrite (`_paraphrase`) of sentence1 ("equivalent")
  or of a sentence from another paragraph ("different"); both get the
  same rewrite, so the edits themselves carry no label.
  """
  rng = random.Random(seed)
  sents = [
      [s for s in _SENTENCE.split(p) if len(s.split()) >= 6] for p in paragraphs
  ]
  out = []
  for i, ss in enumerate(sents):
    others = [j for j in range(len(sents)) if j != i and sents[j]]
    if not others:
      break
    for first in ss:
      if rng.random() < 0.5:
        second, label = first, PAIR_LABELS[0]
      else:
        second, label = rng.choice(sents[rng.choice(others)]), PAIR_LABELS[1]
      # As many words as sentence1, so length says nothing of the label.
      n = min(len(first.split()), len(second.split()), 30)
      out.append({
          "inputs":
              "pair sentence1: %s sentence2: %s" %
              (_short(first, n), _paraphrase(_short(second, n), rng)),
          "targets":
              label,
          "choices":
              list(PAIR_LABELS)
      })
  return out


_AUXILIARY = ("is", "are", "was", "were", "can", "will", "does", "do", "should",
              "must", "may", "could", "would", "has", "have")


def _negate(words):
  """`words` with its first "not" removed, or "not" after its first auxiliary.

  Returns:
    the negated word list, or None when the sentence has neither.
  """
  if "not" in words:
    k = words.index("not")
    return words[:k] + words[k + 1:]
  for k, w in enumerate(words):
    if w in _AUXILIARY:
      return words[:k + 1] + ["not"] + words[k + 1:]
  return None


def rte_examples(paragraphs, seed=0):
  """Entailment or contradiction (RTE's shape), balanced.

  The premise is a sentence; the hypothesis is the premise with one adjacent
  pair of words swapped ("true": entailed) or, as well, negated by adding or
  removing one "not" ("false"). Where the premise holds a "not" the negation
  removes it, so a "not" in the hypothesis is a cue (it gives 85% of the
  validation labels), not the rule.
  """
  rng = random.Random(seed)
  out = []
  for p in paragraphs:
    for sentence in _SENTENCE.split(p):
      words = sentence.split()[:30]
      negated = _negate(words)
      if len(words) < 6 or negated is None:
        continue
      label = RTE_LABELS[rng.random() < 0.5]
      hypothesis = list(negated if label == RTE_LABELS[1] else words)
      k = rng.randrange(len(hypothesis) - 1)
      hypothesis[k], hypothesis[k + 1] = hypothesis[k + 1], hypothesis[k]
      out.append({
          "inputs":
              "rte premise: %s hypothesis: %s" %
              (" ".join(words), " ".join(hypothesis)),
          "targets":
              label,
          "choices":
              list(RTE_LABELS)
      })
  return out


def qa_examples(paragraphs, seed=0):
  """Which word follows a quoted span of the context?"""
  rng = random.Random(seed)
  out = []
  for p in paragraphs:
    context = p.split()[:80]
    if len(context) < 8:
      continue
    k = rng.randrange(3, len(context))
    span = " ".join(context[k - 3:k])
    answer = context[k].strip(".,;:!?()\"'")
    # An answer SQuAD's normalization empties (an article) would count as
    # exact match for any article predicted, at F1 0.
    if not qa_utils.normalize_squad(answer) or (" %s " % span) in (
        " %s " % " ".join(context[k - 2:])[1:]):
      continue  # ambiguous: the span occurs again later
    out.append({
        "inputs":
            "question: which word follows \"%s\"? context: %s" %
            (span, " ".join(context)),
        "targets":
            answer,
        "answers": [answer]
    })
  return out


_GENERATORS = {PAIR: pair_examples, RTE: rte_examples, QA: qa_examples}


def examples(task, split):
  """The examples of a proxy task split, as a list of dicts of strings."""
  return _GENERATORS[task](_paragraphs(split))


def _dataset_fn(split, shuffle_files, seed=None, task=None):
  """The task's examples; `choices` (the candidate labels) only for ranking."""
  del shuffle_files, seed
  rank = task in RANK.values()
  rows = examples(task[:-len("_rank")] if rank else task, split)
  keys = [k for k in sorted(rows[0]) if rank or k != "choices"]
  if "answers" in keys:
    return tf.data.Dataset.from_tensor_slices({
        "inputs": [r["inputs"] for r in rows],
        "targets": [r["targets"] for r in rows],
        "answers": tf.ragged.constant([r["answers"] for r in rows])
    }).map(lambda ex: dict(ex, answers=ex["answers"]))
  return tf.data.Dataset.from_tensor_slices(
      {k: [r[k] for r in rows] for k in keys})


def expand_candidates(ds):
  """One example per candidate label (`choices`), marked `is_correct`.

  T5's rank_classification preprocessor in its eval mode: every candidate,
  with `idx` = [example, candidate] for the metric to group by.

  Args:
    ds: examples with string `inputs`, `targets` and `choices` [2].

  Returns:
    the expanded dataset: `idx`, `inputs`, `targets` (a candidate),
    `is_correct`.
  """
  return t5_preprocessors.rank_classification(
      ds,
      inputs_fn=lambda ex: tf.fill(tf.shape(ex["choices"]), ex["inputs"]),
      targets_fn=lambda ex: ex["choices"],
      is_correct_fn=lambda ex: tf.equal(ex["choices"], ex["targets"]),
      mode="eval")


@functools.lru_cache(maxsize=None)
def _qa_chance():
  answers = [e["targets"] for e in examples(QA, "validation")]
  return 100.0 * max(answers.count(a) for a in set(answers)) / len(answers)


def chance():
  """{family: the score of guessing}: 50 for the ranked proxies; for the QA
  proxy the exact match of always giving its most common validation answer."""
  return {
      "glue_proxy": RANKED_CHANCE,
      "superglue_proxy": RANKED_CHANCE,
      "squad_proxy": _qa_chance()
  }


def _qa_postprocess(answer, example=None, is_target=False):
  if is_target:
    return [tf.compat.as_text(a) for a in example["answers"]]
  return answer


def register():
  """Registers the proxies, their mixtures and rank tasks (idempotent)."""
  features = tasks.output_features(tasks.OFFLINE_VOCABULARY)
  tokenize = [
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim,
  ]
  specs = {
      PAIR: (None, [metrics.accuracy], []),
      RTE: (None, [metrics.accuracy], []),
      QA: (_qa_postprocess, [metrics.squad], []),
      RANK[PAIR]: (t5_postprocessors.rank_classification,
                   [metrics.rank_classification], [expand_candidates]),
      RANK[RTE]: (t5_postprocessors.rank_classification,
                  [metrics.rank_classification], [expand_candidates]),
  }
  for name, (postprocess, metric_fns, expand) in specs.items():
    if name in seqio.TaskRegistry.names():
      continue
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            functools.partial(_dataset_fn, task=name),
            splits=("train", "validation")),
        preprocessors=expand + tokenize,
        output_features=features,
        postprocess_fn=postprocess,
        metric_fns=metric_fns)
  if MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(MIXTURE, [(PAIR, 1.0), (RTE, 1.0), (QA, 1.0)])
  if RANK_MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(RANK_MIXTURE, [(RANK[PAIR], 1.0),
                                             (RANK[RTE], 1.0)])


register()

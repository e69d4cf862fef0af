"""Offline downstream proxies: small tasks in the shape of GLUE, SuperGLUE, SQuAD.

GLUE, SuperGLUE and SQuAD cannot be downloaded here, so the embedded default
and the tests finetune on three tasks generated deterministically from the
offline corpus's held-out text (`validation.txt`, never seen in
pretraining). They are PROXIES: they test the finetune -> decode -> metric
pipeline and rank models coarsely; their scores are not GLUE scores.

* `mtf_arch_proxy_pair` (sentence-pair classification, like MRPC/RTE): are
  two sentences consecutive in one paragraph ("consecutive") or drawn from
  two paragraphs ("unrelated")? Metric: accuracy.
* `mtf_arch_proxy_choice` (multiple choice, like COPA/WSC): a sentence with
  one word blanked and two candidates; the target is the right word.
  Metric: accuracy.
* `mtf_arch_proxy_qa` (extractive QA, like SQuAD): a paragraph and the
  question which word follows a quoted three-word span in it; the answer is
  a word of the paragraph. Metric: SQuAD exact match and F1.

Mixture `mtf_arch_proxy_mixture` mixes them in proportion to their sizes.
Paragraphs go to train (4 in 5) or validation (1 in 5) by hash.
"""

import functools
import hashlib
import os
import random
import re

import seqio
from t5.evaluation import metrics
import tensorflow.compat.v2 as tf

from mtf_arch import tasks

PAIR, CHOICE, QA = ("mtf_arch_proxy_pair", "mtf_arch_proxy_choice",
                    "mtf_arch_proxy_qa")
MIXTURE = "mtf_arch_proxy_mixture"
# The benchmark family each proxy stands in for, named as a proxy in every
# record and report (never "glue" itself).
FAMILY = {PAIR: "glue_proxy", CHOICE: "superglue_proxy", QA: "squad_proxy"}
SEQUENCE_LENGTH = {"inputs": 128, "targets": 8}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"^[A-Za-z]{5,}$")


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


def pair_examples(paragraphs, seed=0):
  """Consecutive vs unrelated sentence pairs, balanced."""
  rng = random.Random(seed)
  sents = [_SENTENCE.split(p) for p in paragraphs]
  out = []
  for i, ss in enumerate(sents):
    if len(sents) < 2:
      break
    for k in range(len(ss) - 1):  # one example per adjacent sentence pair
      if rng.random() < 0.5:
        first, second, label = ss[k], ss[k + 1], "consecutive"
      else:
        j = rng.choice([j for j in range(len(sents)) if j != i])
        first, second, label = ss[k], rng.choice(sents[j]), "unrelated"
      out.append({
          "inputs":
              "pair sentence1: %s sentence2: %s" %
              (_short(first, 40), _short(second, 40)),
          "targets":
              label
      })
  return out


def choice_examples(paragraphs, seed=0):
  """Fill-the-blank with the right word of two."""
  rng = random.Random(seed)
  words = [[w for w in p.split() if _WORD.match(w)] for p in paragraphs]
  out = []
  for i, p in enumerate(paragraphs):
    sentence = _SENTENCE.split(p)[0].split()[:40]
    candidates = [k for k, w in enumerate(sentence) if _WORD.match(w)]
    others = [
        w for j in rng.sample(range(len(words)), min(5, len(words))) if j != i
        for w in words[j]
    ]
    if not candidates or not others:
      continue
    k = rng.choice(candidates)
    answer = sentence[k]
    distractor = rng.choice([w for w in others if w != answer] or ["other"])
    choices = [answer, distractor]
    rng.shuffle(choices)
    blanked = " ".join(sentence[:k] + ["___"] + sentence[k + 1:])
    out.append({
        "inputs":
            "choice premise: %s choice1: %s choice2: %s" %
            (blanked, choices[0], choices[1]),
        "targets":
            answer
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
    if not answer or (" %s " % span) in (" %s " %
                                         " ".join(context[k - 2:])[1:]):
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


_GENERATORS = {PAIR: pair_examples, CHOICE: choice_examples, QA: qa_examples}


def examples(task, split):
  """The examples of a proxy task split, as a list of dicts of strings."""
  return _GENERATORS[task](_paragraphs(split))


def _dataset_fn(split, shuffle_files, seed=None, task=None):
  del shuffle_files, seed
  rows = examples(task, split)
  keys = sorted(rows[0])
  if "answers" in keys:
    return tf.data.Dataset.from_tensor_slices({
        "inputs": [r["inputs"] for r in rows],
        "targets": [r["targets"] for r in rows],
        "answers": tf.ragged.constant([r["answers"] for r in rows])
    }).map(lambda ex: dict(ex, answers=ex["answers"]))
  return tf.data.Dataset.from_tensor_slices(
      {k: [r[k] for r in rows] for k in keys})


def _qa_postprocess(answer, example=None, is_target=False):
  if is_target:
    return [tf.compat.as_text(a) for a in example["answers"]]
  return answer


def register():
  """Registers the three proxies and their mixture (idempotent)."""
  features = tasks.output_features(tasks.OFFLINE_VOCABULARY)
  specs = {
      PAIR: (None, [metrics.accuracy]),
      CHOICE: (None, [metrics.accuracy]),
      QA: (_qa_postprocess, [metrics.squad]),
  }
  for name, (postprocess, metric_fns) in specs.items():
    if name in seqio.TaskRegistry.names():
      continue
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            functools.partial(_dataset_fn, task=name),
            splits=("train", "validation")),
        preprocessors=[
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features,
        postprocess_fn=postprocess,
        metric_fns=metric_fns)
  if MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(MIXTURE, [(PAIR, 1.0), (CHOICE, 1.0), (QA, 1.0)])


register()

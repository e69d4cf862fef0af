"""The paper's finetuning mixture: GLUE + SuperGLUE + SQuAD, as T5 defines them.

Tay et al. 2022 (section 3.2) finetune "for 100K steps on a mixture of GLUE,
SuperGLUE and SQuAD" and report 17 downstream tasks. We take T5's own task
definitions (t5.data.tasks: TFDS sources, text preprocessors, postprocessors
and metrics) and T5's mixing rates (t5.data.glue_utils: examples per task),
and only swap the vocabulary for the package's lazily checked one, so an
unreachable vocabulary or TFDS folder ends in a clear error.

The 17 tasks, as T5 trains them:
  GLUE (8): CoLA, SST-2, MRPC, QQP, STS-B, MNLI (evaluated on matched and
    mismatched), QNLI, RTE. WNLI is left out, as T5 does ("We omit WNLI
    because we train on WSC/DPR simple instead", t5/data/glue_utils.py).
  SuperGLUE (8): BoolQ, CB, COPA, MultiRC, ReCoRD, RTE, WiC, WSC (T5's
    "simple" WSC formulation, with DPR as extra training data). The
    diagnostics AX-b and AX-g have rate 0 (evaluated, not trained) and are
    not in the average.
  SQuAD v1.1 (1): T5's `squad_v010_allanswers`.
"""

import seqio
import t5.data.tasks  # noqa: F401  (registers T5's tasks)
from t5.data import glue_utils

from mtf_arch import tasks

PREFIX = "mtf_arch_"
MIXTURE = "mtf_arch_glue_superglue_squad"
SQUAD = "squad_v010_allanswers"
SQUAD_TRAIN_EXAMPLES = 87_599.  # SQuAD v1.1 train; T5 rates are example counts.
GLUE_TASKS = sorted(t for t in glue_utils.get_glue_weight_mapping())
SUPERGLUE_TASKS = sorted(glue_utils.get_super_glue_weight_mapping())
# Tasks behind each Table 1 column (evaluation-only twins included).
FAMILY_OF = dict([(t, "glue") for t in GLUE_TASKS] +
                 [(t, "superglue") for t in SUPERGLUE_TASKS] +
                 [(SQUAD, "squad")])


def _rates():
  rates = dict(glue_utils.get_glue_weight_mapping())
  rates.update(glue_utils.get_super_glue_weight_mapping())
  rates[SQUAD] = SQUAD_TRAIN_EXAMPLES
  return rates


# T5 read GLUE 1.0.0, which TFDS 4.9.4 can read but no longer build
# ("too old ... cannot be generated"); 2.0.0 is the version it builds.
_BUILDABLE_VERSION = {"glue": ("1.0.0", "2.0.0")}


def _buildable(tfds_name):
  name, _, version = tfds_name.partition(":")
  old_new = _BUILDABLE_VERSION.get(name.split("/")[0])
  if old_new and version == old_new[0]:
    return "%s:%s" % (name, old_new[1])
  return tfds_name


def _checked_source(source):
  if isinstance(source, seqio.TfdsDataSource):
    # `_splits` is the split map T5 passed in; the public `splits` property
    # would read the TFDS info of an unprepared dataset (empty) instead.
    return tasks.CheckedTfdsDataSource(
        tfds_name=_buildable(source.tfds_dataset.name),
        splits=source._splits or None)  # pylint: disable=protected-access
  return source


def register():
  """Registers `mtf_arch_<t5 task>` for each task and the mixture."""
  features = tasks.output_features(tasks.C4_VOCABULARY)
  for name in _rates():
    ours = PREFIX + name
    if ours in seqio.TaskRegistry.names():
      continue
    t5_task = seqio.TaskRegistry.get(name)
    seqio.TaskRegistry.add(
        ours,
        source=_checked_source(t5_task.source),
        preprocessors=t5_task.preprocessors,
        output_features=features,
        postprocess_fn=t5_task.postprocessor,
        metric_fns=t5_task.metric_fns)
  if MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(MIXTURE,
                              [(PREFIX + t, r) for t, r in _rates().items()])


register()

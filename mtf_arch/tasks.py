"""seqio tasks: the paper's C4 span corruption and its offline stand-in.

Both tasks run T5's pretraining pipeline unchanged (Raffel et al. 2019,
`t5.data.tasks.c4_v220_span_corruption`): rekey text to targets, tokenize,
`span_corruption` (15% noise, mean span 3, so inputs 512 give targets 114),
append EOS. They differ only in where text and vocabulary come from:

* `mtf_arch_c4_span_corruption`: TFDS `c4/en:2.2.0` (the version T5 used) and
  T5's 32,000-piece SentencePiece model plus 100 sentinels. The data folder is
  set with the stock `--t5_tfds_data_dir` flag, the vocabulary with
  `c4_vocabulary_path.path` in gin. Unreachable locations stop the run at once
  with a `ConfigError` that says what to set.
* `mtf_arch_offline_span_corruption`: the corpus that `python -m
  mtf_arch.corpus` extracts from installed packages (see `corpus.py`), with a
  SentencePiece model trained on it; folder set with `offline_corpus_dir.path`
  in gin or $MTF_ARCH_DATA_DIR.
"""

import functools
import os
import socket

import gin
import seqio
from t5.data import preprocessors as t5_preprocessors
import tensorflow.compat.v2 as tf

from mtf_arch import paths
from mtf_arch.errors import ConfigError

C4_TASK = "mtf_arch_c4_span_corruption"
OFFLINE_TASK = "mtf_arch_offline_span_corruption"
# T5's vocabulary: t5.data.utils.DEFAULT_SPM_PATH, 32,000 pieces.
T5_SPM_PATH = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
NUM_SENTINELS = 100  # T5 span corruption sentinels (extra_ids).
C4_TFDS_NAME = "c4/en:2.2.0"  # As t5.data.tasks.c4_v220_span_corruption.


def _gcs_reachable(timeout=3.0):
  """True if Google Cloud Storage answers; offline, DNS fails at once."""
  try:
    socket.create_connection(("storage.googleapis.com", 443), timeout).close()
    return True
  except OSError:
    return False


def check_readable(path, what, how_to_set):
  """Raises ConfigError unless `path` can be opened, without long GCS retries.

  Args:
    path: local or gs:// path.
    what: what the file is, for the message.
    how_to_set: the setting that changes it, for the message.
  """
  if path.startswith("gs://") and not _gcs_reachable():
    raise ConfigError(
        "%s %s is unreachable (no network access to Google Cloud Storage). "
        "Copy it to a local path and set %s." % (what, path, how_to_set))
  if not tf.io.gfile.exists(path):
    raise ConfigError("%s %s does not exist; set %s." %
                      (what, path, how_to_set))


@gin.configurable
def c4_vocabulary_path(path=T5_SPM_PATH):
  """The SentencePiece model of the C4 task (T5's 32K vocabulary)."""
  return path


@gin.configurable
def offline_corpus_dir(path=None):
  """Folder with the offline corpus (default: $MTF_ARCH_DATA_DIR/offline_v1)."""
  return path or paths.offline_data_dir()


def offline_help():
  return ("build it with `python -m mtf_arch.corpus --out_dir DIR` "
          "(`make data` does this), or set "
          "--gin_param=\"offline_corpus_dir.path='DIR'\" or "
          "$MTF_ARCH_DATA_DIR")


def _offline_vocabulary_path():
  path = os.path.join(offline_corpus_dir(), "spm.model")
  check_readable(path, "offline SentencePiece model", offline_help())
  return path


def _c4_vocabulary_path():
  path = c4_vocabulary_path()
  check_readable(
      path, "C4 SentencePiece vocabulary",
      "--gin_param=\"c4_vocabulary_path.path='/local/"
      "sentencepiece.model'\"")
  return path


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A SentencePiece vocabulary whose file is chosen when first used.

  Tasks are registered at import time, before gin files are parsed; resolving
  the path at first use lets gin (or the environment) choose it, and lets the
  reachability check fail fast with a message instead of a GCS retry loop.
  """

  def __init__(self, path_fn, extra_ids=NUM_SENTINELS):
    self._path_fn = path_fn
    super().__init__(sentencepiece_model_file=None, extra_ids=extra_ids)

  def _model_context(self):
    if self._model is None and self._sentencepiece_model_file is None:
      self._sentencepiece_model_file = self._path_fn()
    return super()._model_context()


def _mocked_by_tfds_testing():
  """True inside `tfds.testing.mock_data` (data is generated, not read)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  fn = tfds.core.dataset_builder.DatasetBuilder.download_and_prepare
  return "mock" in getattr(fn, "__qualname__", "")


class CheckedTfdsDataSource(seqio.TfdsDataSource):
  """TfdsDataSource that never downloads and explains how to prepare data.

  seqio loads TFDS datasets with `download=True`: offline, an unprepared
  dataset would retry downloads for minutes. This source checks first that
  the dataset is prepared in its data folder and otherwise stops with what
  to run. Splits of an unprepared dataset default to train/validation/test,
  so tasks can be registered and listed without data.
  """

  @property
  def splits(self):
    if self._splits:
      return self._splits
    try:
      found = self.tfds_dataset.info.splits
    except Exception:  # pylint: disable=broad-except  (no data, no info)
      found = None
    return found or ("train", "validation", "test")

  def num_input_examples(self, split):
    try:
      return super().num_input_examples(split)
    except KeyError:  # split sizes are unknown until the data is prepared
      return None

  def get_dataset(self, split, *args, **kwargs):
    loader = self.tfds_dataset
    if not _mocked_by_tfds_testing():
      data_dir = loader.builder.data_dir
      if not tf.io.gfile.exists(os.path.join(data_dir, "dataset_info.json")):
        raise ConfigError(
            "TFDS dataset %s is not prepared in %s (nothing is downloaded at "
            "run time). Prepare it with `tfds build %s --data_dir DIR` on a "
            "machine with access to the source data, then pass "
            "--t5_tfds_data_dir=DIR." % (loader.name, data_dir, loader.name))
    return super().get_dataset(split, *args, **kwargs)


def _offline_dataset_fn(split, shuffle_files, seed=None):
  del shuffle_files, seed  # One file per split; shuffling is downstream.
  path = os.path.join(offline_corpus_dir(), "%s.txt" % split)
  check_readable(path, "offline corpus file", offline_help())
  return tf.data.TextLineDataset(path).map(lambda line: {"text": line})


def output_features(vocabulary):
  """T5's DEFAULT_OUTPUT_FEATURES with `vocabulary` (EOS on both features)."""
  return {
      "inputs":
          seqio.Feature(vocabulary=vocabulary, add_eos=True, required=False),
      "targets":
          seqio.Feature(vocabulary=vocabulary, add_eos=True),
  }


def span_corruption_preprocessors():
  """T5's pretraining preprocessors (c4_v220_span_corruption)."""
  return [
      functools.partial(
          t5_preprocessors.rekey, key_map={
              "inputs": None,
              "targets": "text"
          }),
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      t5_preprocessors.span_corruption,
      seqio.preprocessors.append_eos_after_trim,
  ]


OFFLINE_VOCABULARY = LazySentencePieceVocabulary(_offline_vocabulary_path)
C4_VOCABULARY = LazySentencePieceVocabulary(_c4_vocabulary_path)


def register():
  """Registers the tasks once per process (idempotent)."""
  if C4_TASK not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        C4_TASK,
        source=CheckedTfdsDataSource(tfds_name=C4_TFDS_NAME),
        preprocessors=span_corruption_preprocessors(),
        output_features=output_features(C4_VOCABULARY),
        metric_fns=[])
  if OFFLINE_TASK not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        OFFLINE_TASK,
        source=seqio.FunctionDataSource(
            _offline_dataset_fn, splits=("train", "validation")),
        preprocessors=span_corruption_preprocessors(),
        output_features=output_features(OFFLINE_VOCABULARY),
        metric_fns=[])


register()

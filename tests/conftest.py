"""Shared fixtures: quiet TF logs, the offline corpus, batches, gin helpers."""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


class _DropGinPathNoise(logging.Filter):
  """gin logs an ERROR for each search-path miss before it finds a file."""

  def filter(self, record):
    return "Path not found" not in record.getMessage()


logging.getLogger().addFilter(_DropGinPathNoise())


@pytest.fixture(scope="session")
def offline_dir():
  """The offline corpus folder, built if missing (make test builds it)."""
  from mtf_arch import corpus, paths
  out = paths.offline_data_dir()
  corpus.build(out, progress=False)
  return out


@pytest.fixture(scope="session")
def offline_vocab_size(offline_dir):
  del offline_dir
  from mtf_arch import tasks
  return tasks.OFFLINE_VOCABULARY.vocab_size


def offline_batches(num_batches, batch_size, sequence_length, split="train"):
  """Packed span-corruption batches of the offline task, as numpy dicts."""
  import tensorflow_datasets as tfds
  from t5.models import mesh_transformer
  from mtf_arch import tasks
  ds = mesh_transformer.mesh_train_dataset_fn(
      tasks.OFFLINE_TASK,
      sequence_length=sequence_length,
      vocabulary=None,
      dataset_split=split,
      use_cached=False,
      seed=1234)
  ds = ds.batch(batch_size, drop_remainder=True).take(num_batches)
  return list(tfds.as_numpy(ds))


def copy_batches(num_batches,
                 batch_size,
                 sequence_length,
                 length=10,
                 num_tokens=16,
                 seed=0):
  """Batches of a copy task: targets repeat the inputs' tokens.

  Each row is one example of `length` tokens drawn from `num_tokens` ids
  (200 on), then EOS, padded to `sequence_length`, with the packed format's
  segment and position features. Only a model that reads its inputs gets
  below the log(num_tokens) nats of guessing each token.
  """
  import numpy as np
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num_batches):
    tokens = rng.integers(200, 200 + num_tokens, size=(batch_size, length))
    batch = {}
    for key in ("inputs", "targets"):
      ids = np.zeros((batch_size, sequence_length[key]), np.int32)
      ids[:, :length], ids[:, length] = tokens, 1  # EOS
      segment = np.zeros_like(ids)
      segment[:, :length + 1] = 1
      position = np.zeros_like(ids)
      position[:, :length + 1] = np.arange(length + 1)
      batch.update({
          key: ids,
          key + "_segmentation": segment,
          key + "_position": position
      })
    out.append(batch)
  return out


def swap_inputs(batch, shift=1):
  """A batch whose rows read another row's inputs (targets kept).

  Every `inputs*` feature (tokens, segment ids, positions) of row i comes
  from row i + shift, so a model that uses its inputs scores it worse.
  """
  import numpy as np
  return {
      k: np.roll(v, -shift, axis=0) if k.startswith("inputs") else v
      for k, v in batch.items()
  }


@pytest.fixture(scope="session")
def batch_fn(offline_dir):
  del offline_dir
  cache = {}

  def get(num_batches, batch_size, sequence_length):
    key = (num_batches, batch_size, tuple(sorted(sequence_length.items())))
    if key not in cache:
      cache[key] = offline_batches(num_batches, batch_size, sequence_length)
    return cache[key]

  return get


def run_cli(args, timeout=600, env=None):
  """Runs the stock console script; returns the CompletedProcess."""
  import subprocess
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
  return subprocess.run(
      [os.path.join(BIN, "t5_mesh_transformer")] + args,
      capture_output=True,
      text=True,
      timeout=timeout,
      env=full_env,
      cwd="/")

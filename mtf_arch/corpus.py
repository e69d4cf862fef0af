"""Builds the offline English corpus and SentencePiece vocabulary.

The paper pretrains on C4 with T5's 32K SentencePiece vocabulary; neither can
be downloaded here. The embedded default instead uses English prose that every
installation of this package already has on disk: the docstrings of the
Python standard library and of the pinned scientific packages (numpy, scipy,
scikit-learn, sympy, networkx, pandas, matplotlib, tensorflow), plus
`pydoc_data.topics` (the Python language reference). Nothing is downloaded and
no third-party text is committed to the repository; the set-up command
extracts the text from the virtual environment it has just installed, so the
corpus is identical on every machine with the same pins.

Output folder layout (`build(out_dir)`):
  train.txt, validation.txt   one paragraph per line (2% held out by hash)
  spm.model, spm.vocab        SentencePiece unigram model trained on train.txt
  manifest.json               sources, sizes, settings and a content hash

Usage:
  python -m mtf_arch.corpus --out_dir ~/.cache/mtf_arch/offline_v1
"""

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import re
import sys
import sysconfig
import time

CORPUS_VERSION = 1
# Packages whose docstrings are mined, in this order (deterministic).
SOURCE_PACKAGES = ("pydoc_data", "stdlib", "scipy", "sklearn", "sympy",
                   "networkx", "numpy", "pandas", "matplotlib", "tensorflow")
# 4,096 pieces: small enough that micro models on a CPU spend most of their
# parameters outside the embedding; T5's 100 sentinels are added on top by
# seqio (`extra_ids=100`), as in T5.
DEFAULT_VOCAB_SIZE = 4096
VALIDATION_MODULUS = 50  # 1 paragraph in 50 goes to validation.
MIN_WORDS = 8

_SECTION_UNDERLINE = re.compile(r"^\s*[-=~^]{3,}\s*$")
_NON_PROSE = re.compile(r"(>>>|\.\.\. |::|\$|\\[a-z]+\{|[{}\[\]]|==|->|__)")


def _package_roots():
  """Yields (name, directory) for each source package that is installed."""
  for name in SOURCE_PACKAGES:
    if name == "stdlib":
      yield name, sysconfig.get_paths()["stdlib"]
      continue
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
      continue
    yield name, list(spec.submodule_search_locations)[0]


def _python_files(root,
                  skip_dirs=("site-packages", "test", "tests", "idlelib",
                             "lib2to3", "_vendor", "__pycache__",
                             "turtledemo")):
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
    for f in sorted(filenames):
      if f.endswith(".py"):
        yield os.path.join(dirpath, f)


def _docstrings(path):
  try:
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read())
  except (SyntaxError, UnicodeDecodeError, ValueError):
    return
  for node in ast.walk(tree):
    if isinstance(
        node,
        (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(node, clean=True)
      if doc:
        yield doc


def _topics_texts():
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  for key in sorted(topics.topics):
    yield topics.topics[key]


def paragraphs(text):
  """Splits a docstring into prose paragraphs, dropping code and tables.

  Args:
    text: a docstring or documentation page.

  Yields:
    single-line paragraphs of at least MIN_WORDS words that look like prose.
  """
  for block in re.split(r"\n\s*\n", text):
    lines = [l for l in block.splitlines() if l.strip()]
    if not lines or any(_SECTION_UNDERLINE.match(l) for l in lines):
      continue
    if any(l.startswith(("    ", "\t")) for l in lines[1:]) and len(lines) > 1:
      continue  # Indented blocks are code or parameter tables.
    para = " ".join(l.strip() for l in lines)
    words = para.split()
    if len(words) < MIN_WORDS or _NON_PROSE.search(para):
      continue
    letters = sum(c.isalpha() or c.isspace() for c in para)
    if letters < 0.9 * len(para):
      continue
    yield para


def collect(progress=True):
  """Returns the de-duplicated paragraphs and per-source byte counts."""
  seen = set()
  out, sizes = [], {}
  for name, root in _package_roots():
    start = time.time()
    texts = (
        _topics_texts() if name == "pydoc_data" else
        (d for p in _python_files(root) for d in _docstrings(p)))
    n_bytes = 0
    for text in texts:
      for para in paragraphs(text):
        if para in seen:
          continue
        seen.add(para)
        out.append(para)
        n_bytes += len(para) + 1
    sizes[name] = n_bytes
    if progress:
      print(
          f"[corpus] {name:<11} {n_bytes / 1e6:6.2f} MB "
          f"({time.time() - start:.1f} s)",
          flush=True)
  return out, sizes


def _is_validation(para):
  digest = hashlib.md5(para.encode("utf-8")).hexdigest()
  return int(digest[:8], 16) % VALIDATION_MODULUS == 0


def _write_atomic(path, lines):
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for line in lines:
      f.write(line + "\n")
  os.replace(tmp, path)


def build(out_dir, vocab_size=DEFAULT_VOCAB_SIZE, force=False, progress=True):
  """Builds the corpus and vocabulary in `out_dir`; a no-op if already built.

  Args:
    out_dir: folder to write into (created if missing).
    vocab_size: SentencePiece pieces, before T5's 100 sentinel ids.
    force: rebuild even if a complete build with the same settings exists.
    progress: print one line per stage.

  Returns:
    the manifest dict.
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  os.makedirs(out_dir, exist_ok=True)
  manifest_path = os.path.join(out_dir, "manifest.json")
  settings = {
      "version": CORPUS_VERSION,
      "vocab_size": vocab_size,
      "sources": list(SOURCE_PACKAGES)
  }
  if os.path.exists(manifest_path) and not force:
    with open(manifest_path) as f:
      manifest = json.load(f)
    if manifest.get("settings") == settings:
      if progress:
        print(f"[corpus] up to date: {out_dir}", flush=True)
      return manifest

  paras, sizes = collect(progress)
  train = [p for p in paras if not _is_validation(p)]
  valid = [p for p in paras if _is_validation(p)]
  _write_atomic(os.path.join(out_dir, "train.txt"), train)
  _write_atomic(os.path.join(out_dir, "validation.txt"), valid)

  start = time.time()
  prefix = os.path.join(out_dir, "spm.tmp")
  # T5's SentencePiece conventions: pad=0, eos=1, unk=2, no bos.
  spm.SentencePieceTrainer.train(
      input=os.path.join(out_dir, "train.txt"),
      model_prefix=prefix,
      vocab_size=vocab_size,
      model_type="unigram",
      character_coverage=1.0,
      pad_id=0,
      eos_id=1,
      unk_id=2,
      bos_id=-1,
      input_sentence_size=300000,
      shuffle_input_sentence=True,
      seed_sentencepiece_size=200000,
      num_threads=os.cpu_count() or 1,
      minloglevel=2)
  os.replace(prefix + ".model", os.path.join(out_dir, "spm.model"))
  os.replace(prefix + ".vocab", os.path.join(out_dir, "spm.vocab"))
  if progress:
    print(
        f"[corpus] SentencePiece {vocab_size} pieces "
        f"({time.time() - start:.1f} s)",
        flush=True)

  digest = hashlib.sha256("\n".join(paras).encode("utf-8")).hexdigest()
  manifest = {
      "settings": settings,
      "python": sys.version.split()[0],
      "bytes_per_source": sizes,
      "paragraphs": {
          "train": len(train),
          "validation": len(valid)
      },
      "bytes": {
          "train": sum(len(p) + 1 for p in train),
          "validation": sum(len(p) + 1 for p in valid)
      },
      "sha256": digest,
  }
  with open(manifest_path + ".tmp", "w") as f:
    json.dump(manifest, f, indent=2)
  os.replace(manifest_path + ".tmp", manifest_path)  # Written last: marks done.
  if progress:
    print(
        f"[corpus] wrote {out_dir}: {manifest['bytes']['train'] / 1e6:.1f} MB"
        f" train, {manifest['bytes']['validation'] / 1e6:.2f} MB validation",
        flush=True)
  return manifest


def console_entry_point(argv=None):
  from mtf_arch import paths  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out_dir", default=paths.offline_data_dir())
  parser.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE)
  parser.add_argument("--force", action="store_true")
  args = parser.parse_args(argv)
  build(args.out_dir, args.vocab_size, args.force)


if __name__ == "__main__":
  console_entry_point()

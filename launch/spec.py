"""A study file (`launch/studies/*.toml`), read and validated.

Every key a study may set is in `KEYS` with its type; an unknown key (a
typo such as `gin_param`) or a value of the wrong type stops the study at
once with one line naming the key, what it should be and the allowed keys,
before anything runs. Imports no TensorFlow.
"""

import difflib
import tomllib

_STR_LIST = "a list of strings"
# key: (description of the type, check, required)
KEYS = {
    "name": ("a string", lambda v: isinstance(v, str) and v, True),
    "target": ('"local", "tpu" or "gpu"', lambda v: v in
               ("local", "tpu", "gpu"), False),
    "archs": ('"all" or a list of gin/arch names',
              lambda v: v == "all" or _is_str_list(v), False),
    "sizes": ('"paper" or a list of size names',
              lambda v: v == "paper" or _is_str_list(v), False),
    "protocol": ('"standard", "depth" or "width"', lambda v: v in
                 ("standard", "depth", "width"), False),
    "values": ("a list of whole numbers", lambda v: isinstance(v, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in v), False),
    "mesh": ("a gin/mesh name such as \"cpu_1\"", lambda v: isinstance(v, str),
             False),
    "pretrain_steps": ("a whole number > 0", lambda v: _is_count(v), True),
    "finetune_steps": ("a whole number > 0", lambda v: _is_count(v), True),
    "run_files": (_STR_LIST, lambda v: _is_str_list(v), True),
    "finetune_files": (_STR_LIST, lambda v: _is_str_list(v), True),
    "gin_params": (_STR_LIST, lambda v: _is_str_list(v), False),
    "pretrain_params": (_STR_LIST, lambda v: _is_str_list(v), False),
    "upstream_eval_params": (_STR_LIST, lambda v: _is_str_list(v), False),
    "finetune_params": (_STR_LIST, lambda v: _is_str_list(v), False),
    "flags": (_STR_LIST, lambda v: _is_str_list(v), False),
    "model_dir_root": ("a string", lambda v: isinstance(v, str), False),
    "sequence_length":
        ("a table {inputs = N, targets = N}",
         lambda v: isinstance(v, dict) and sorted(v) == ["inputs", "targets"]
         and all(_is_count(x) for x in v.values()), False),
    "lean_startup": ("true or false", lambda v: isinstance(v, bool), False),
    "seed":
        ("a whole number >= 0",
         lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         False),
}
# The seed of a study file without `seed`: gin/run/pretrain.gin's SEED.
DEFAULT_SEED = 0


def seed(spec):
  """The study's seed: weights, dropout and data order of every cell."""
  return spec.get("seed", DEFAULT_SEED)


def _is_str_list(value):
  return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _is_count(value):
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


class StudyFileError(SystemExit):
  """A study file that cannot run; its message is one line."""


def validate(spec, path):
  """Checks a parsed study file; returns it unchanged.

  Args:
    spec: the parsed TOML (a dict).
    path: the file, for messages.

  Returns:
    spec.

  Raises:
    StudyFileError: one line naming the key and what to change.
  """
  for key in spec:
    if key not in KEYS:
      near = difflib.get_close_matches(key, KEYS, n=1)
      raise StudyFileError("%s: unknown key %r%s; allowed keys: %s" %
                           (path, key, " (did you mean %r?)" %
                            near[0] if near else "", ", ".join(sorted(KEYS))))
  for key, (kind, check, required) in sorted(KEYS.items()):
    if key not in spec:
      if required:
        raise StudyFileError("%s: missing key %r (%s)" % (path, key, kind))
      continue
    if not check(spec[key]):
      raise StudyFileError("%s: %s = %r: must be %s" %
                           (path, key, spec[key], kind))
  if spec.get("protocol", "standard") != "standard" and not spec.get("values"):
    raise StudyFileError(
        "%s: protocol %r needs `values` (the num_layers or d_ff of each "
        "variant)" % (path, spec["protocol"]))
  return spec


def read(path):
  """Reads and validates a study file: the spec dict."""
  try:
    with open(path, "rb") as f:
      spec = tomllib.load(f)
  except tomllib.TOMLDecodeError as e:
    raise StudyFileError("%s: not valid TOML (%s)" % (path, e)) from None
  except OSError as e:
    raise StudyFileError("%s: cannot read the study file (%s)" %
                         (path, e.strerror)) from None
  return validate(spec, path)

"""One clear error for bad input, instead of a traceback from deep inside TF.

`ConfigError` is raised by the package's own checks (mesh against devices,
dimensions against the layout, unreachable vocabularies and data). Importing
`mtf_arch` installs `excepthook`, which prints such an error as one line that
says what to change, and also translates the two errors users hit most often
before any check of ours can run: a gin file that does not exist and a gin
binding to an unknown name.
"""

import difflib
import logging
import os
import re
import sys


class ConfigError(ValueError):
  """A run is misconfigured; the message names the setting to change."""


def _gin_files():
  from mtf_arch import paths  # pylint: disable=g-import-not-at-top
  root = paths.gin_dir()
  out = []
  for dirpath, _, filenames in os.walk(root):
    for f in filenames:
      if f.endswith(".gin"):
        out.append(os.path.relpath(os.path.join(dirpath, f), root))
  return sorted(out)


def explain(exc):
  """Returns a one-paragraph explanation of `exc`, or None if not ours."""
  if isinstance(exc, ConfigError):
    # gin appends "In call to configurable ..." lines; the first line is ours.
    return str(exc).split("\n")[0]
  msg = str(exc)
  m = re.search(r"Unable to open file: (\S+?)\.? Searched config paths", msg)
  if isinstance(exc, OSError) and m:
    name = m.group(1)
    known = _gin_files()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = ("did you mean %s? " % " or ".join(close)) if close else ""
    return ("gin file %r not found. %smtf_arch provides: %s" %
            (name, hint, ", ".join(known)))
  if type(exc).__name__ == "ValueError" and ("No configurable matching" in msg
                                             or "Unknown reference" in msg):
    return ("unknown gin name: %s (check the spelling of the scope and "
            "parameter in your --gin_file/--gin_param)" % msg.splitlines()[0])
  return None


def excepthook(exc_type, exc, tb, _previous=sys.excepthook):
  text = explain(exc) if exc is not None else None
  if text is None:
    _previous(exc_type, exc, tb)
    return
  sys.stderr.write("mtf_arch: error: %s\n" % text)
  sys.stderr.flush()


def install_excepthook():
  if sys.excepthook is not excepthook:
    sys.excepthook = excepthook


class _GinProbeFilter(logging.Filter):
  """Drops gin's "Path not found" error for a file the search path finds.

  gin first probes a relative `--gin_file` as a Python resource and logs an
  ERROR when that probe fails, even when the file then loads from the
  package's gin folder; such lines would read as failures.
  """

  def filter(self, record):
    if record.msg != "Path not found: %s" or not record.args:
      return True
    from mtf_arch import paths  # pylint: disable=g-import-not-at-top
    return not os.path.exists(os.path.join(paths.gin_dir(), record.args[0]))


def quiet_gin_probes():
  """Installs `_GinProbeFilter` on the root logger (once)."""
  root = logging.getLogger()
  if not any(isinstance(f, _GinProbeFilter) for f in root.filters):
    root.addFilter(_GinProbeFilter())

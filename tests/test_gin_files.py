"""Every gin file parses, finalizes and means what it says.

Globs gin/: adding a file needs no test edit. Catches what silently broke
Narang et al.'s configs: a misspelled scope (`deccoder/...`) and bindings to
parameters that are never read.
"""

import glob
import os
import re

import gin
import pytest

from mtf_arch import graph
from mtf_arch import paths

GIN = paths.gin_dir()
BASE = {
    "arch": "arch/transformer.gin",
    "size": "size/test.gin",
    "mesh": "mesh/cpu_1.gin",
    "run": "run/pretrain.gin"
}
# The paper's mesh for each size (Tay et al. 2022, section 3.2).
MESH_SIZE = {
    "tpu_v3_32_mp1": "size/base.gin",
    "tpu_v3_32_mp2": "size/large.gin",
    "tpu_v3_32_mp8": "size/xl.gin"
}
INCLUDE_ONLY = {"mesh/layout.gin"}
# Run overlays and the run files they go on top of (besides run/pretrain.gin).
RUN_PREREQUISITES = {
    "run/finetune_proxy.gin": ["run/cpu_quick.gin", "run/finetune.gin"],
    "run/eval.gin": ["run/finetune.gin"],
    "run/eval_proxy.gin": [
        "run/cpu_quick.gin", "run/finetune.gin", "run/finetune_proxy.gin"
    ],
    "run/eval_proxy_rank.gin": [
        "run/cpu_quick.gin", "run/finetune.gin", "run/finetune_proxy.gin"
    ],
}


def _required_bindings(rel):
  """Example values from a file's "Required to be set:" header."""
  with open(os.path.join(GIN, rel)) as f:
    text = f.read()
  m = re.search(r"^# Required to be set:\n((?:#   .*\n)+)", text, re.M)
  if not m:
    return []
  return [
      line[4:].strip()
      for line in m.group(1).splitlines()
      if "=" in line and not line[4:].startswith(("--", "and"))
  ]


def _all_gin_files():
  return sorted(
      os.path.relpath(p, GIN)
      for p in glob.glob(os.path.join(GIN, "**", "*.gin"), recursive=True))


def _experiment(rel):
  """A complete experiment (arch + size + mesh + run) that uses `rel`."""
  kind = rel.split("/")[0]
  files = dict(BASE)
  if kind == "size" and rel.count("/") == 2:  # size/<arch>/<size>.gin
    files["arch"] = "arch/%s.gin" % rel.split("/")[1]
  if kind == "mesh":
    files["size"] = MESH_SIZE.get(os.path.basename(rel)[:-4], BASE["size"])
  files[kind] = rel
  out = [files["arch"], files["size"], files["mesh"], files["run"]]
  if kind == "run" and rel != BASE["run"]:
    # Run overlays go on top of the recipe (and of their prerequisites).
    out[3:3] = [BASE["run"]] + RUN_PREREQUISITES.get(rel, [])
  return out


def test_gin_tree_layout():
  files = _all_gin_files()
  assert files, GIN
  for rel in files:
    assert rel.split("/")[0] in ("arch", "size", "mesh", "run"), rel
  for rel in INCLUDE_ONLY:
    assert rel in files
    assert any("include '%s'" % rel in open(os.path.join(GIN, f)).read()
               for f in files
               if f != rel), rel


@pytest.mark.parametrize("rel",
                         [f for f in _all_gin_files() if f not in INCLUDE_ONLY])
def test_gin_file_parses_and_finalizes(rel):
  files = _experiment(rel)
  required = [b for f in files for b in _required_bindings(f)]
  with graph.config(files, required):
    # Evaluates the mesh checks the way utils.run would.
    shape, _ = graph.mesh_and_layout()
    assert shape.size >= 1
    assert gin.query_parameter("%d_model") > 0


def _scopes_entered_by_code():
  import mesh_tensorflow
  roots = [
      os.path.dirname(mesh_tensorflow.__file__),
      os.path.dirname(paths.__file__)
  ]
  scopes = set()
  for root in roots:
    for path in glob.glob(os.path.join(root, "**", "*.py"), recursive=True):
      with open(path, encoding="utf-8") as f:
        scopes.update(re.findall(r"config_scope\(\s*[\"'](\w+)[\"']", f.read()))
  return scopes


def test_every_gin_scope_is_one_the_code_enters():
  known = _scopes_entered_by_code()
  assert {"encoder", "decoder"} <= known
  binding = re.compile(r"^\s*((?:[\w.]+/)+)[\w.]+\s*=", re.M)
  for rel in _all_gin_files():
    with open(os.path.join(GIN, rel)) as f:
      for scopes in binding.findall(f.read()):
        for scope in scopes.strip("/").split("/"):
          assert scope in known, "%s: unknown gin scope %r" % (rel, scope)


def _bindings(rel):
  """Configurable.parameter names bound in a gin file (no macros)."""
  with open(os.path.join(GIN, rel)) as f:
    text = f.read()
  names = re.findall(r"^((?:\w+/)*[\w.]*\w\.\w+)\s*=", text, re.M)
  return sorted(set(names))


@pytest.mark.parametrize(
    "rel", sorted(f for f in _all_gin_files() if f.startswith("arch/")))
def test_every_arch_binding_is_read_when_the_model_is_built(rel):
  """A binding that nothing reads is a typo or a stale parameter name."""
  with graph.config(_experiment(rel)):
    graph.ModelGraph(512, 2, {"inputs": 16, "targets": 8})
    operative = gin.operative_config_str()
  read = set()
  for line in operative.splitlines():
    m = re.match(r"^([\w/]*\w\.[\w.]+)\s*=", line)
    if m:
      read.add(_normalize(m.group(1)))
  for name in _bindings(rel):
    if name.startswith(("utils.run.", "mesh_train_dataset_fn.")):
      # Read by utils.run (the CLI) and its dataset fn, not by model
      # construction (gin checks the parameter name when it parses; the
      # train path is tested where it is bound, e.g. tests/test_funnel.py).
      continue
    scope, key = _normalize(name)
    assert any(k == key and scope in s for s, k in read), (
        "%s: %s is never read while building the model" % (rel, name))


def _normalize(name):
  """'decoder/transformer.make_layer_stack.layers' ->
  ('decoder', ('make_layer_stack', 'layers'))."""
  scope, _, rest = name.rpartition("/")
  parts = rest.split(".")
  return scope, (parts[-2], parts[-1])

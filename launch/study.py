"""A scaling study: a declared grid of cells, each a chain of stock CLI runs.

A study file (TOML, under launch/studies/) declares architectures x sizes x
scaling protocol; each cell is the chain

  pretrain -> upstream eval (perplexity) -> finetune -> downstream eval
  -> records

of `t5_mesh_transformer` runs with the package's gin files and `--gin_param`
overrides (launch/cli.py composes them). Targets:

* local: runs the chains here, `--jobs` cells at a time;
* tpu: prints, for a v3-32 slice, the exact command chain of every cell with
  the paper's mesh per size (model parallelism 1 up to Base, 2 for Large, 8
  for XL); a dry run needs no TPU;
* gpu: as local, on `mesh/gpu_1.gin`.

Resumable and safe: `<study_dir>/cells/<cell>/state.json` records the stages
done (written atomically after each). Killing the runner at any moment and
starting it again reruns only the stage that was running -- Mesh-TF resumes
training from that cell's last checkpoint -- never reruns a finished cell,
and rebuilds `<study_dir>/results.jsonl` from the per-cell record files, so
no result is recorded twice and no file is left half-written. A failed cell
keeps its error and the study goes on; the summary lists failures.
"""

import argparse
import collections
import concurrent.futures
import ctypes
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from launch import cell as cell_lib
from launch import cli
from launch import spec as spec_lib

# Cells run in threads (--jobs); gin's config is global to the process, so
# the params/FLOPs count (which parses gin) runs one cell at a time.
_GIN_LOCK = threading.Lock()
# A cell runs cell_commands' stages in order, then "records". Where a study
# finetunes on the offline proxies, it adds "downstream_score" (their rank
# classification, gin/run/eval_proxy_rank.gin).
PROXY_FINETUNE = "run/finetune_proxy.gin"
_PRINT_LOCK = threading.Lock()


def _say(line):
  """Prints one whole line (cells report from several threads)."""
  with _PRINT_LOCK:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _write_json(path, obj):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _paper_mesh(arch, size):
  """The paper's v3-32 mesh for a Table 1 size; one slice for other sizes."""
  from mtf_arch import registry  # pylint: disable=g-import-not-at-top
  if size.lower() in registry.TPU_MESH:
    return registry.paper_mesh(arch, size)
  return "cpu_1"


def load_study(path):
  """Reads a study file; returns (spec dict, list of cell dicts)."""
  spec = spec_lib.read(path)  # validated before TensorFlow is imported
  from mtf_arch import registry  # pylint: disable=g-import-not-at-top
  archs = registry.architectures()
  names = (
      sorted(registry.study_architectures())
      if spec.get("archs", "all") == "all" else spec["archs"])
  unknown = [a for a in names if a not in archs]
  if unknown:
    raise SystemExit("%s: unknown architecture(s) %s; gin/arch/ has %s" %
                     (path, unknown, sorted(archs)))
  cells = []
  for arch in names:
    sizes = spec.get("sizes", "paper")
    sizes = archs[arch].sizes if sizes == "paper" else sizes
    for size in sizes:
      protocol = spec.get("protocol", "standard")
      variants = [(size, [])]
      if protocol in ("depth", "width"):
        macro = "num_layers" if protocol == "depth" else "d_ff"
        variants = [("%s-%s%d" % (size, macro, v), ["%s = %d" % (macro, v)])
                    for v in spec["values"]]
      for label, params in variants:
        cells.append({
            "id": "%s-%s" % (arch, label.lower()),
            "arch": arch,
            "model": archs[arch].label,
            "size": label,
            "size_file": registry.size_file(arch, size),
            "mesh": spec.get("mesh") or _paper_mesh(arch, size),
            "params": params,
            "protocol": protocol,
        })
  return spec, cells


def cell_commands(spec, cell, cell_dir):
  """The stock CLI commands of a cell (argv lists), by stage, in order.

  Four stages; a study that finetunes on the offline proxies
  (run/finetune_proxy.gin) decodes its QA proxy (run/eval_proxy.gin) and
  scores its classification proxies by rank classification, a fifth stage
  (run/eval_proxy_rank.gin).
  """
  files = [
      "arch/%s.gin" % cell["arch"], cell["size_file"],
      "mesh/%s.gin" % cell["mesh"]
  ] + spec["run_files"]
  pre, fine = (os.path.join(cell_dir,
                            "pretrain"), os.path.join(cell_dir, "finetune"))
  steps = spec["pretrain_steps"]
  # The study's seed after its gin_params: the seed that state.json records.
  params = list(spec.get(
      "gin_params", [])) + cell["params"] + ["SEED = %d" % spec_lib.seed(spec)]
  pre_params = params + list(spec.get(
      "pretrain_params", [])) + ["utils.run.train_steps = %d" % steps]
  ft_files = files + spec["finetune_files"]
  # finetune_params apply to finetuning and the downstream evals.
  ft_params = params + list(spec.get("finetune_params", [])) + [
      "PRETRAINED_CHECKPOINT = '%s/model.ckpt-%d'" % (pre, steps),
      "finetune_train_steps.finetune_steps = %d" % spec["finetune_steps"]
  ]
  flags = spec.get("flags", [])
  # The study records each cell's final checkpoints, so the evals read those
  # only (gin/run/eval*.gin default to every kept checkpoint).
  up_params = pre_params + ["utils.run.eval_checkpoint_step = %d" % steps]
  up_params += list(spec.get("upstream_eval_params", []))
  down_params = ft_params + [
      "utils.run.eval_checkpoint_step = %d" % (steps + spec["finetune_steps"])
  ]
  proxy = PROXY_FINETUNE in spec["finetune_files"]
  commands = {
      "pretrain":
          cli.t5_command(pre, files, pre_params, flags),
      "upstream_eval":
          cli.t5_command(pre, files + ["run/eval_perplexity.gin"], up_params,
                         flags),
      "finetune":
          cli.t5_command(fine, ft_files, ft_params, flags),
      "downstream_eval":
          cli.t5_command(
              fine,
              ft_files + ["run/eval_proxy.gin" if proxy else "run/eval.gin"],
              down_params, flags),
  }
  if proxy:
    commands["downstream_score"] = cli.t5_command(
        fine, ft_files + ["run/eval_proxy_rank.gin"], down_params, flags)
  return commands


def _die_with_parent():
  """Child processes get SIGKILL when the runner dies (Linux prctl)."""
  try:
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except OSError:
    pass


_WORKERS = threading.local()

# glibc malloc settings for local workers: keep freed memory in the process
# instead of mapping and unmapping it (and having the kernel zero it) for each
# large tensor. Measured on six cells as two workers side by side: system CPU
# time 45-54 s -> 24-27 s. Other C libraries ignore these variables.
_MALLOC_ENV = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "MALLOC_TOP_PAD_": str(1 << 29),
}


def worker_env(jobs, lean=True, base=None, cpus=None):
  """The environment of a worker when `jobs` workers share this machine.

  Each worker gets an equal share of the cores for TensorFlow's intra-op and
  inter-op thread pools (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS), so
  the workers' threads do not outnumber the cores. Measured, six cells as two
  workers side by side on 2 cores: 183-212 s (an outlier 307 s) with
  TensorFlow's default pools, 140-159 s with one thread each, and CPU time
  304-363 s -> 256-269 s. Lean (local CPU) workers also get `_MALLOC_ENV`.
  Variables already set in `base` (the caller's environment) win.

  Args:
    jobs: workers running side by side.
    lean: whether the workers run lean start-up (the local CPU target).
    base: the environment to extend (default os.environ).
    cpus: cores (default os.cpu_count()).

  Returns:
    a dict for subprocess.Popen(env=...).
  """
  env = dict(os.environ if base is None else base)
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  share = str(max(1, (cpus or os.cpu_count() or 1) // max(1, jobs)))
  env.setdefault("TF_NUM_INTRAOP_THREADS", share)
  env.setdefault("TF_NUM_INTEROP_THREADS", share)
  # A fixed str hash: Mesh-TF's CPU/GPU meshes seed dropout with hash() of a
  # string (mtf_arch/seeds.py); the study's seed varies what is hashed.
  env.setdefault("PYTHONHASHSEED", "0")
  if lean:
    for key, value in _MALLOC_ENV.items():
      env.setdefault(key, value)
  return env


def _worker(lean=True):
  """This runner thread's `launch.cell` worker (started on first use)."""
  if getattr(_WORKERS, "worker", None) is None:
    # run_local's threads say how many workers run side by side.
    env = worker_env(getattr(_WORKERS, "jobs", 1), lean)
    _WORKERS.worker = cell_lib.Worker(env, lean, _die_with_parent)
    _ALL_WORKERS.append(_WORKERS.worker)  # list.append is atomic
  return _WORKERS.worker


_ALL_WORKERS = []


def _run_chain(chain, cell_dir, log_path, on_done, lean=True):
  """Runs the stages in `chain` in this thread's worker process.

  Calls `on_done(stage)` as each stage finishes; returns the exit code.
  """
  chain_path = os.path.join(cell_dir, "chain.json")
  _write_json(chain_path, chain)
  with open(log_path, "a") as log:
    for stage, argv in chain:
      log.write("\n$ %s\n" % " ".join(argv))
    log.flush()
    return _worker(lean).run(chain_path, log, on_done)


def cell_records(spec, cell, cell_dir):
  """Analysis records of a finished cell (aggregated per Table 1 column)."""
  from mtf_arch import evaluation  # pylint: disable=g-import-not-at-top
  detail = []
  for sub in ("pretrain", "finetune"):
    detail += evaluation.collect_records(
        os.path.join(cell_dir, sub), cell["model"], cell["size"])
  evaluation.write_records(os.path.join(cell_dir, "eval_records.jsonl"), detail)
  latest = {}  # metric -> (step, value) at the latest step that has it
  for (_, _, step), row in evaluation.table1_scores(detail).items():
    for metric, value in row.items():
      if metric not in latest or step > latest[metric][0]:
        latest[metric] = (step, value)

  def record(metric, value, step, source=cell_dir):
    return {
        "model": cell["model"],
        "size": cell["size"],
        "metric": metric,
        "value": value,
        "step": step,
        "source": source,
        "protocol": cell["protocol"]
    }

  out = [
      record(metric, value, step)
      for metric, (step, value) in sorted(latest.items())
  ]
  speed = evaluation.train_steps_per_second(os.path.join(cell_dir, "pretrain"))
  if speed is not None:  # this machine's, not Table 1's TPU speed
    out.append(record("speed_steps_per_s", speed, spec["pretrain_steps"]))
  try:
    from mtf_arch import flops  # pylint: disable=g-import-not-at-top
    from mtf_arch import tasks  # pylint: disable=g-import-not-at-top
    files = ["arch/%s.gin" % cell["arch"], cell["size_file"]]
    seq = spec.get("sequence_length", {"inputs": 128, "targets": 29})
    with _GIN_LOCK:
      n_params, count = flops.forward_count(
          files,
          spec.get("gin_params", []) + cell["params"],
          vocab_size=tasks.OFFLINE_VOCABULARY.vocab_size,
          sequence_length=seq)
    # FLOPs incl. one-hot lookups, the count that tracks the paper's column.
    lowered = count.matmul_flops + count.one_hot_flops
    for metric, value in (("params", n_params), ("flops", lowered)):
      out.append(record(metric, float(value), None, source="graph"))
  except Exception as e:  # pylint: disable=broad-except
    _say("[study] %s: no params/FLOPs (%s)" % (cell["id"], e))
  return out


def run_cell(spec, cell, study_dir):
  """Runs (or resumes) one cell; returns its final state dict."""
  cell_dir = os.path.join(study_dir, "cells", cell["id"])
  os.makedirs(cell_dir, exist_ok=True)
  state_path = os.path.join(cell_dir, "state.json")
  state = {"done": [], "status": "pending"}
  if os.path.exists(state_path):
    with open(state_path) as f:
      state = json.load(f)
  if state["status"] == "done":
    return state
  commands = cell_commands(spec, cell, cell_dir)
  state["commands"] = commands  # the recipe it runs; checked on resume
  state["seed"] = spec_lib.seed(spec)
  log = os.path.join(cell_dir, "run.log")
  _say("[study] start  %s%s  (log: %s)" %
       (cell["id"],
        " resuming at %s" % state["stage"] if state.get("stage") else "", log))
  start = time.time()

  def stage_done(stage):
    state["done"].append(stage)
    later = [s for s in list(commands) + ["records"] if s not in state["done"]]
    state["stage"] = later[0] if later else None
    _write_json(state_path, state)

  chain = [[stage, argv]
           for stage, argv in commands.items()
           if stage not in state["done"]]
  if chain:
    state.update(status="running", stage=chain[0][0])
    _write_json(state_path, state)
    code = _run_chain(chain, cell_dir, log, stage_done,
                      spec.get("lean_startup", True))
    if code:
      with open(log) as f:
        tail = [l for l in f.read()[-4000:].splitlines() if l.strip()]
      state.update(
          status="failed",
          error="%s exited %d: %s" % (state["stage"], code, tail[-1:]))
      _write_json(state_path, state)
      return state
  state.update(status="running", stage="records")
  _write_json(state_path, state)
  records = cell_records(spec, cell, cell_dir)
  tmp = os.path.join(cell_dir, "records.jsonl")
  with open(tmp + ".tmp", "w") as f:
    for r in records:
      f.write(json.dumps(r, sort_keys=True) + "\n")
  os.replace(tmp + ".tmp", tmp)
  state["done"].append("records")
  state.update(
      status="done",
      stage=None,
      seconds=state.get("seconds", 0) + time.time() - start)
  _write_json(state_path, state)
  return state


def _cell_state(study_dir, cell):
  path = os.path.join(study_dir, "cells", cell["id"], "state.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def recipe_changes(spec, cells, study_dir):
  """Cells whose recorded commands differ from what the study file now says.

  Returns:
    list of (cell id, first stage whose command changed).
  """
  changed = []
  for cell in cells:
    state = _cell_state(study_dir, cell)
    if not state or "commands" not in state:
      continue
    now = cell_commands(spec, cell, os.path.join(study_dir, "cells",
                                                 cell["id"]))
    for stage in now:
      if state["commands"].get(stage) != now[stage]:
        changed.append((cell["id"], stage))
        break
  return changed


def print_status(study_dir, cells):
  """Each cell's state, stage, time and error, without running anything."""
  import tabulate  # pylint: disable=g-import-not-at-top
  rows, counts = [], collections.Counter()
  for cell in cells:
    state = _cell_state(study_dir, cell) or {"status": "pending"}
    status = state["status"]
    counts[status] += 1
    rows.append([
        cell["id"], status,
        state.get("stage") or "",
        _fmt(state["seconds"]) if state.get("seconds") else "",
        (state.get("error") or "")[:100]
    ])
  print(
      tabulate.tabulate(
          rows, headers=["cell", "state", "stage", "time", "error"]))
  print("[study] %s: %s" % (study_dir, ", ".join(
      "%d %s" % (n, k) for k, n in sorted(counts.items()))))


def collect(study_dir, cells):
  """Rebuilds results.jsonl from finished cells (atomic, no duplicates)."""
  lines = []
  for cell in cells:
    path = os.path.join(study_dir, "cells", cell["id"], "records.jsonl")
    state_path = os.path.join(study_dir, "cells", cell["id"], "state.json")
    if not os.path.exists(state_path):
      continue
    with open(state_path) as f:
      if json.load(f).get("status") != "done":
        continue
    with open(path) as f:
      lines += [l for l in f if l.strip()]
  out = os.path.join(study_dir, "results.jsonl")
  with open(out + ".tmp", "w") as f:
    f.writelines(lines)
  os.replace(out + ".tmp", out)
  return out


def _version():
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    return metadata.version("mtf_arch")
  except metadata.PackageNotFoundError:
    return "source"


def _fmt(seconds):
  return "%d:%02d" % (seconds // 60, seconds % 60)


class _CellPicker:
  """Hands out cells, longest expected first (so none runs alone at the end).

  Biggest sizes first (a study lists sizes small to large). Within a size,
  architectures whose cell at a bigger size took longest in this run go
  first: a cell's time is mostly fixed per-stage costs that depend on the
  architecture (the MoS and Universal Transformers are the slowest at every
  size), so the time at the next size up predicts it. Otherwise the
  study's order.
  """

  def __init__(self, todo, sizes):
    self._todo = list(todo)
    self._rank = {size: i for i, size in enumerate(sizes)}
    self._seconds = {}  # arch -> seconds of its last finished cell
    self._lock = threading.Lock()

  def _key(self, item):
    index, cell = item
    return (-self._rank.get(cell["size"].split("-")[0], 0),
            -self._seconds.get(cell["arch"], 0.0), index)

  def next(self):
    """The next cell to run, or None when none is left."""
    with self._lock:
      if not self._todo:
        return None
      index, _ = min(enumerate(self._todo), key=self._key)
      return self._todo.pop(index)

  def finished(self, cell, state):
    with self._lock:
      if state.get("seconds"):
        self._seconds[cell["arch"]] = state["seconds"]

  def stop(self):
    with self._lock:
      self._todo = []


def run_local(spec, cells, study_dir, jobs=1):
  """Runs every cell; prints one line per start and finish with an ETA."""
  start, finished, failed = time.time(), 0, []
  todo = []
  for cell in cells:
    state_path = os.path.join(study_dir, "cells", cell["id"], "state.json")
    if os.path.exists(state_path):
      with open(state_path) as f:
        if json.load(f).get("status") == "done":
          finished += 1
          continue
    todo.append(cell)
  total = len(cells)
  print(
      "[study] %d cells, %d already done, %d to run, %d at a time" %
      (total, finished, len(todo), jobs),
      flush=True)
  picker = _CellPicker(todo, spec.get("sizes") or [])
  done = queue.Queue()

  def drain():
    # One pool thread: runs the next cell until none is left. Each pool
    # thread keeps one worker process for all of its cells, whose TensorFlow
    # gets cores // jobs threads (see worker_env); a cell that runs alone at
    # the end keeps its share.
    _WORKERS.jobs = jobs
    while True:
      cell = picker.next()
      if cell is None:
        return
      try:
        state = run_cell(spec, cell, study_dir)
      except BaseException as e:  # pylint: disable=broad-except
        done.put((cell, e))
        return
      picker.finished(cell, state)
      done.put((cell, state))

  ran = 0
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    threads = [pool.submit(drain) for _ in range(max(1, min(jobs, len(todo))))]
    while ran < len(todo):
      cell, state = done.get()
      if isinstance(state, BaseException):
        picker.stop()
        raise state
      finished += 1
      ran += 1
      elapsed = time.time() - start
      eta = elapsed / ran * (total - finished)
      if state["status"] == "failed":
        failed.append((cell["id"], state.get("error")))
      _say("[study] %-40s %-6s  %d/%d done  elapsed %s  eta %s" %
           (cell["id"], state["status"], finished, total, _fmt(elapsed),
            _fmt(eta)))
    for thread in threads:
      thread.result()
    while _ALL_WORKERS:  # before their threads end (and SIGKILL them)
      _ALL_WORKERS.pop().close()
  results = collect(study_dir, cells)
  print("[study] results: %s" % results, flush=True)
  if failed:
    print("[study] %d failed cell(s):" % len(failed))
    for cell_id, error in failed:
      print("  %s: %s" % (cell_id, error))
  return results, failed


def print_summary(results_path, sizes):
  """Prints validation neg. log-perplexity per architecture and size.

  One row per model, sizes in the study's order (small to large), then
  whether the loss falls with every step up in size.
  """
  by_metric = {}  # metric -> model -> size -> value
  with open(results_path) as f:
    for line in f:
      r = json.loads(line)
      by_metric.setdefault(r["metric"],
                           {}).setdefault(r["model"],
                                          {})[r["size"]] = r["value"]
  table = by_metric.get("neg_log_ppl", {})
  if not table or not isinstance(sizes, list):
    return
  print("[study] validation negative log-perplexity (higher is better):")
  print("  %-22s %s  bigger is better" %
        ("model", " ".join("%9s" % s for s in sizes)))
  ordered = 0
  for model in sorted(table):
    values = [table[model].get(s) for s in sizes]
    cells = _size_cells(values, "%.3f")
    known = [v for v in values if v is not None]
    rising = len(known) > 1 and all(a < b for a, b in zip(known, known[1:]))
    ordered += rising
    print("  %-22s %s  %s" % (model, cells, "yes" if rising else "no"))
  print("[study] %d of %d models improve at every larger size" %
        (ordered, len(table)))
  _print_proxy_scores(by_metric, sizes)


def _size_cells(values, fmt):
  """One table row's values by size, "-" where a size has none."""
  return " ".join("%9s" % ("-" if v is None else fmt % v) for v in values)


def _print_proxy_scores(by_metric, sizes):
  """Prints each downstream proxy score per model and size beside its chance."""
  from mtf_arch import proxy_tasks  # pylint: disable=g-import-not-at-top
  for metric, level in sorted(proxy_tasks.chance().items()):
    table = by_metric.get(metric)
    if not table:
      continue
    print("[study] %s (offline proxy, not the benchmark; chance %.1f):" %
          (metric, level))
    for model in sorted(table):
      print("  %-22s %s" %
            (model, _size_cells([table[model].get(s) for s in sizes], "%.1f")))


def print_best(analysis_dir):
  """Prints which architecture is best in each compute region."""
  import csv  # pylint: disable=g-import-not-at-top
  import glob  # pylint: disable=g-import-not-at-top
  for path in sorted(glob.glob(os.path.join(analysis_dir, "best_*.csv"))):
    with open(path) as f:
      rows = list(csv.DictReader(f))
    if rows:
      metric = os.path.basename(path)[len("best_"):-len(".csv")]
      print("[study] best architecture by compute (%s):" % metric)
      for row in rows:
        print("  " +
              ", ".join("%s=%s" % (k, _short(v)) for k, v in row.items()))


def _short(value):
  """A CSV cell for printing: numbers to 4 significant digits."""
  try:
    return "%.4g" % float(value)
  except ValueError:
    return value


def _shell_word(arg):
  """Double-quotes an argument with spaces; $VARS still expand in a shell."""
  if re.search(r"[\s'\"]", arg):
    return '"%s"' % arg.replace('"', '\\"')
  return arg


def print_tpu_commands(spec, cells, root):
  for cell in cells:
    cell_dir = "%s/%s" % (root.rstrip("/"), cell["id"])
    commands = cell_commands(spec, cell, cell_dir)
    print("# %s (%s %s, mesh/%s.gin)" %
          (cell["id"], cell["model"], cell["size"], cell["mesh"]))
    for stage, command in commands.items():
      argv = ["t5_mesh_transformer"] + command[1:]  # on the TPU host
      print(" ".join(_shell_word(a) for a in argv))
    print()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
      "study", help="a study file, e.g. launch/studies/mini.toml")
  parser.add_argument("--study_dir", help="default: runs/<study name>")
  parser.add_argument(
      "--target",
      choices=("local", "tpu", "gpu"),
      help="where to run (default: the study file's target, else local)")
  parser.add_argument(
      "--jobs",
      type=int,
      default=1,
      help="cells run side by side on this machine (default 1)")
  parser.add_argument(
      "--status",
      action="store_true",
      help="print each cell's state (done, failed, running, pending) and stop")
  parser.add_argument(
      "--force",
      action="store_true",
      help="rerun the cells whose recipe changed since they ran")
  parser.add_argument(
      "--dry_run",
      action="store_true",
      help="print the command chains and stop")
  parser.add_argument(
      "--no_analysis",
      action="store_true",
      help="skip the tables and figures at the end")
  args = parser.parse_args(argv)
  spec, cells = load_study(args.study)
  target = args.target or spec.get("target", "local")
  study_dir = os.path.abspath(
      args.study_dir or os.path.join("runs", spec["name"]))
  if target == "tpu" or args.dry_run:
    print_tpu_commands(spec, cells, spec.get("model_dir_root", study_dir))
    return
  if args.status:
    print_status(study_dir, cells)
    return
  if target == "gpu":
    for cell in cells:
      cell["mesh"] = "gpu_1"
    # Grappler's meta-optimizer stays on where a GPU may profit from it.
    spec.setdefault("lean_startup", False)
  changed = recipe_changes(spec, cells, study_dir)
  if changed and not args.force:
    raise SystemExit(
        "[study] %s: the recipe of %d cell(s) changed since they ran (%s); "
        "rerun with --force to redo them, or restore %s" %
        (study_dir, len(changed), ", ".join("%s: %s command" % c
                                            for c in changed[:3]) +
         (", ..." if len(changed) > 3 else ""), args.study))
  for cell_id, _ in changed:
    shutil.rmtree(os.path.join(study_dir, "cells", cell_id))
    _say("[study] %s: recipe changed, rerunning (--force)" % cell_id)
  os.makedirs(study_dir, exist_ok=True)
  _write_json(
      os.path.join(study_dir, "study.json"), {
          "spec": spec,
          "file": os.path.abspath(args.study),
          "mtf_arch_version": _version()
      })
  start = time.time()
  results, failed = run_local(spec, cells, study_dir, args.jobs)
  print_summary(results, spec.get("sizes"))
  if not args.no_analysis:
    out = os.path.join(study_dir, "analysis")
    code = subprocess.call(
        [sys.executable, "-m", "analysis", "--results", results, "--out", out])
    print(
        "[study] analysis %s: %s" % ("written" if code == 0 else "failed", out),
        flush=True)
    print_best(out)
  print("[study] finished in %s: %s" % (_fmt(time.time() - start), study_dir))
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  main()

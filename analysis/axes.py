"""How the figures' axes and frames are drawn: log ticks and unit footnotes.

Log axes get at most eight labelled ticks, chosen from 1-2-5-style
multiples of each decade so that none overlap (matplotlib's default labels
every minor tick of a short log axis, 2x10^7 3x10^7 ..., which collide);
minor ticks stay as unlabelled grid lines. Tick labels use
records.parse_count's suffixes (15M, 2.9B). Every figure ends with a
footnote naming the units of the columns it draws (analysis/labels.py).
"""

import textwrap

from matplotlib import ticker
import numpy as np

from analysis import fit

# Tick multiples per decade, sparsest first (see log_ticks).
_SUBS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0),
         (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))


def _tick_text(value, _=None):
  """1.5e7 -> '15M', 2.9e9 -> '2.9B', 0.5 -> '0.5' (records.parse_count's
  suffixes)."""
  for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
    if value >= scale:
      return "%g%s" % (float("%.3g" % (value / scale)), suffix)
  return "%g" % float("%.3g" % value)


def log_ticks(lo, hi):
  """Tick positions for a log axis spanning [lo, hi]: 3-8 if possible."""
  decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
  options = [[
      t for t in (s * 10**d for d in decades for s in subs) if lo <= t <= hi
  ] for subs in _SUBS]
  for fewest in (3, 2):
    for ticks in options:
      if fewest <= len(ticks) <= 8:
        return ticks
  # A range under a factor of 1.5: its two ends, to two digits.
  return sorted({float("%.2g" % lo), float("%.2g" % hi)})


def log_axis(ax, which="x"):
  """Log scale with log_ticks labelled and unlabelled minor grid ticks."""
  axis = ax.xaxis if which == "x" else ax.yaxis
  (ax.set_xscale if which == "x" else ax.set_yscale)("log")
  lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
  axis.set_major_locator(ticker.FixedLocator(log_ticks(lo, hi)))
  axis.set_major_formatter(ticker.FuncFormatter(_tick_text))
  axis.set_minor_locator(ticker.LogLocator(subs="all", numticks=100))
  axis.set_minor_formatter(ticker.NullFormatter())


def finish(fig, title, labels, columns, extra=(), right=1.0):
  """Title, a footnote on the units of the columns drawn, tight layout.

  Args:
    fig: the figure.
    title: its suptitle.
    labels: the analysis's Labels.
    columns: the table columns drawn (their notes go in the footnote).
    extra: more footnote lines.
    right: the right edge of the panels (room for a figure legend).
  """
  notes = []
  if "flops" in columns:
    notes.append(labels.notes[0])
  if "speed_steps_per_s" in columns:
    notes.append(labels.notes[1])
  if labels.proxy and set(columns) & ({"downstream"} | set(fit.PROXY)):
    notes.append(labels.notes[2])
  notes += list(extra)
  width = int(fig.get_figwidth() * 15)
  text = "\n".join(textwrap.fill(n, width) for n in notes)
  fig.suptitle(title)
  lines = text.count("\n") + 1 if text else 0
  bottom = min(0.4, (0.12 * lines + 0.05) / fig.get_figheight())
  if text:
    fig.text(0.01, 0.01, text, fontsize=7, va="bottom", ha="left")
  fig.tight_layout(rect=(0, bottom, right, 0.95))

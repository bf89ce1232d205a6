"""Learning curves: every checkpoint of one or more training runs scored alike, and their plot.

Each checkpoint of each run vocodes the same utterances of each split with each schedule (the
ancestral sampler, the same reverse-diffusion key) through `compare.compare`, so the points of a
curve differ only by the weights. Griffin-Lim alone from the same mels (no model) is scored once
per run and drawn as a horizontal line: a vocoder that adds something lies above it. The held-out
loss each run logged at the same steps is read from its metrics.jsonl. The launcher is
experiments/learning_curve.py.
"""
import json
import os

from wavegrad_jax.training import checkpoints

# (results key, axis label, higher is better) of the plotted quality measures, in panel order.
PLOTTED = (('stoi', 'STOI', True), ('pesq', 'PESQ', True), ('dnsmos_ovrl', 'DNSMOS OVRL', True),
           ('mrstft', 'MR-STFT distance', False))


def parse_runs(specs):
  """Parses 'label=workdir' (or a bare workdir, labelled by its folder name) run specs.

  Args:
    specs: list of str.
  Returns:
    list of (label, workdir), in the given order.
  Raises:
    ValueError: an empty spec, or two runs with the same label.
  """
  runs = []
  for spec in specs:
    label, sep, workdir = spec.partition('=')
    if not sep:
      label, workdir = os.path.basename(os.path.normpath(spec)), spec
    if not label or not workdir:
      raise ValueError(f'run {spec!r}: expected LABEL=WORKDIR or WORKDIR')
    runs.append((label, workdir))
  labels = [label for label, _ in runs]
  if len(set(labels)) != len(labels):
    raise ValueError(f'runs need distinct labels, got {labels}; name them LABEL=WORKDIR')
  return runs


def checkpoint_steps(workdir, every=0, max_step=0):
  """The periodic checkpoint steps of a run to score, ascending.

  Args:
    workdir: a training run's directory.
    every: keep only steps that are multiples of this (0: all); the latest step is always kept.
    max_step: ignore steps above this (0: no limit).
  Returns:
    list of int.
  Raises:
    FileNotFoundError: the run has no periodic checkpoint.
  """
  directory, steps = checkpoints.periodic_steps(workdir, checkpoints.load_config(workdir))
  if max_step:
    steps = [s for s in steps if s <= max_step]
  if not steps:
    raise FileNotFoundError(f'{workdir}: no checkpoint to score in {directory}')
  if every:
    steps = [s for s in steps if s % every == 0 or s == steps[-1]]
  return steps


def logged_heldout_losses(workdir):
  """{step: held-out loss} from a run's metrics.jsonl (its 'eval' records); {} when none."""
  path = os.path.join(workdir, 'metrics.jsonl')
  losses = {}
  if not os.path.exists(path):
    return losses
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:  # a line cut by a kill mid-write
        continue
      if record.get('kind') == 'eval' and 'heldout_loss' in record:
        losses[int(record['step'])] = float(record['heldout_loss'])
  return losses


def training_seconds(workdir):
  """{step: training wall seconds up to that step} from a run's metrics.jsonl 'train' records.

  Each record covers the steps since the previous one at its `steps_per_sec` (evaluation and
  saving excluded, as the trainer measures it); after a restart the first record covers the
  steps since the restored checkpoint. {} when the file is missing.
  """
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return {}
  records = {}
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if record.get('kind') == 'train' and record.get('steps_per_sec'):
        records[int(record['step'])] = float(record['steps_per_sec'])
  out, total, previous = {}, 0.0, 0
  for step in sorted(records):
    total += (step - previous) / records[step]
    out[step] = total
    previous = step
  return out


def curve_point(step, comparison, heldout_loss=None, train_seconds=None):
  """One checkpoint's point: its step, training seconds, logged held-out loss and
  `compare.compare`'s rows."""
  keep = ('split', 'schedule', 'num_steps', 'network_evaluations') + tuple(
      k for k, _, _ in PLOTTED) + ('ls_mse', 'visqol_moslqo', 'nonfinite_utterances')
  return {'step': int(step), 'heldout_loss': heldout_loss, 'train_seconds': train_seconds,
          'rows': [{k: r[k] for k in keep if k in r} for r in comparison['rows']]}


def series(run, split, schedule, metric, x='step'):
  """(x values, values) of one metric along a run's curve; points lacking either are left out.

  x: 'step' (training steps) or 'train_seconds' (training wall seconds, `training_seconds`).
  """
  steps, values = [], []
  for point in run['points']:
    if point.get(x) is None:
      continue
    for row in point['rows']:
      if row['split'] == split and row['schedule'] == schedule and row.get(metric) is not None:
        steps.append(point[x])
        values.append(row[metric])
  return steps, values


def crossing(run, baseline, split, schedule, metric, higher_is_better=True):
  """The first step at which a run's metric beats its Griffin-Lim-alone value, or None."""
  reference = next((r.get(metric) for r in baseline if r['split'] == split), None)
  if reference is None:
    return None
  for step, value in zip(*series(run, split, schedule, metric)):
    if (value > reference) if higher_is_better else (value < reference):
      return step
  return None


def summarize(results):
  """Per run, split and schedule: the last point's measures, the best STOI and the crossings.

  Args:
    results: {'runs': [{'label', 'points', 'griffin_lim': rows}], 'schedules': [names], 'splits'}.
  Returns:
    list of dicts, one per (run, split, schedule).
  """
  out = []
  for run in results['runs']:
    for split in results['splits']:
      for schedule in results['schedules']:
        entry = {'run': run['label'], 'split': split, 'schedule': schedule}
        for metric, _, higher in PLOTTED:
          steps, values = series(run, split, schedule, metric)
          if not values:
            continue
          entry[f'last_{metric}'] = values[-1]
          entry['last_step'] = steps[-1]
          entry[f'beats_griffin_lim_{metric}_at'] = crossing(
              run, run['griffin_lim'], split, schedule, metric, higher)
        out.append(entry)
  return out


def _evaluations_label(run, schedule):
  """'<schedule> (<K> evals)' from the run's rows (older results: '<schedule> steps')."""
  for point in run['points']:
    for row in point['rows']:
      if row['schedule'] == schedule and row.get('network_evaluations') is not None:
        return f'{schedule} ({row["network_evaluations"]} evals)'
  return f'{schedule} steps'


def plot(results, path, x='step'):
  """Draws the curves: one column per split, one row per measure, and the logged held-out loss.

  Each run x schedule is a line over checkpoint steps (or training seconds); its
  Griffin-Lim-alone value is a dotted horizontal line of the run's colour.

  Args:
    results: as `summarize` takes.
    path: the PNG to write.
    x: 'step' or 'train_seconds' (see `series`).
  """
  x_label = 'training step' if x == 'step' else 'training seconds (2 CPU cores, shared)'
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  splits = list(results['splits'])
  metrics = [m for m in PLOTTED if any(
      series(run, s, sch, m[0])[1] for run in results['runs'] for s in splits
      for sch in results['schedules'])]
  rows = len(metrics) + 1
  fig, axes = plt.subplots(rows, len(splits), figsize=(5.5 * len(splits), 2.6 * rows),
                           squeeze=False, sharex=True)
  colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
  styles = ['-', '--', '-.', ':']
  for col, split in enumerate(splits):
    for row, (metric, label, _) in enumerate(metrics):
      ax = axes[row][col]
      for i, run in enumerate(results['runs']):
        colour = colours[i % len(colours)]
        for j, schedule in enumerate(results['schedules']):
          steps, values = series(run, split, schedule, metric, x)
          if values:
            ax.plot(steps, values, styles[j % len(styles)], color=colour, marker='o',
                    markersize=3, label=f'{run["label"]}, {_evaluations_label(run, schedule)}')
        gl = next((r.get(metric) for r in run['griffin_lim'] if r['split'] == split), None)
        if gl is not None:  # runs scored on the same mels draw one line, labelled once
          ax.axhline(gl, color=colour, linestyle=':', linewidth=1,
                     label=f'Griffin-Lim alone ({run["label"]} mels)' if i == 0 or gl != next(
                         (r.get(metric) for r in results['runs'][0]['griffin_lim']
                          if r['split'] == split), None) else None)
      ax.set_ylabel(label)
      ax.set_title(f'{split}' if row == 0 else '')
      ax.grid(alpha=0.3)
    if col > 0:  # the logged loss is one per step, not per split: drawn once, in column 0
      axes[-1][col].set_visible(False)
      axes[-2][col].tick_params(labelbottom=True)
      axes[-2][col].set_xlabel(x_label)
      continue
    ax = axes[-1][col]
    for i, run in enumerate(results['runs']):
      points = [(p[x], p['heldout_loss']) for p in run['points']
                if p['heldout_loss'] is not None and p.get(x) is not None]
      if points:
        ax.plot(*zip(*points), color=colours[i % len(colours)], marker='o', markersize=3,
                label=run['label'])
    # Each run's own objective: PriorGrad's loss is weighted by its prior, so only the shape of
    # its curve compares with the standard prior's.
    ax.set_ylabel('held-out loss\n(own objective)')
    ax.legend(fontsize=7)
    ax.set_xlabel(x_label)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.tight_layout()
  if len(labels) > 8:  # many runs x schedules: one legend below the panels, not over them
    fig.subplots_adjust(bottom=0.05 + 0.012 * ((len(labels) + 2) // 3))
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=6, frameon=False)
  else:
    axes[0][0].legend(fontsize=7)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)



def markdown_rows(results, split, schedules, step=None):
  """Markdown table rows 'run | step | sched: STOI / PESQ / DNSMOS ...' for one split.

  Args:
    results: as `summarize` takes.
    split: 'heldout' or 'unseen'.
    schedules: schedule names, one column each.
    step: the checkpoint step of every run (its point at that step), or None for each run's last.
  Returns:
    list of str, one row per run that has the point.
  """
  rows = []
  for run in results['runs']:
    points = [p for p in run['points'] if step is None or p['step'] == step]
    if not points:
      continue
    point = points[-1]
    cells = []
    for schedule in schedules:
      row = next((r for r in point['rows'] if r['split'] == split and r['schedule'] == schedule),
                 None)
      fmt = lambda v, f: '-' if v is None else format(v, f)
      cells.append('-' if row is None else ' / '.join(
          (fmt(row.get('stoi'), '.3f'), fmt(row.get('pesq'), '.2f'),
           fmt(row.get('dnsmos_ovrl'), '.2f'))))
    rows.append(f"| {run['label']} | {point['step']:,} | " + ' | '.join(cells) + ' |')
  return rows

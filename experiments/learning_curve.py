r"""Learning curves of training runs: every checkpoint scored on held-out speech, with Griffin-Lim.

  python -m experiments.learning_curve --runs=paper=runs/small,priorgrad=runs/small_priorgrad \
      --output=experiments/results/learning_curve_cpu.json
  python -m experiments.learning_curve --runs=runs/tiny --schedules=6 --max_utterances=2 \
      --max_seconds=1 --output=runs/tiny/learning_curve.json

Each checkpoint of each run (--every / --max_step thin them) vocodes the first --max_utterances
utterances of each split, cut to --max_seconds, with each schedule (today's named schedules, or
specs), with the ancestral sampler and the same noise at every checkpoint, and is scored with
LS-MSE, MR-STFT, PESQ, STOI and, when the perceptual extra is installed, DNSMOS and ViSQOL
(`wavegrad_jax.evaluation.compare`). Griffin-Lim alone from the same mels (no model) is scored once per run.
Writes the JSON (every point, the Griffin-Lim rows, a summary with the first step at which each
measure beats Griffin-Lim, the command) and a PNG beside it (same name, .png). The JSON is
rewritten after every checkpoint, and a rerun with the same settings reuses its points, so a killed
study resumes where it stopped (--noresume scores everything again).
"""
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import tqdm

from experiments import cli
from experiments.configs import common
from wavegrad_jax.training import checkpoints
from wavegrad_jax.evaluation import compare
from wavegrad_jax import errors
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import jsonable
from wavegrad_jax.evaluation import learning_curve
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling

_RUNS = flags.DEFINE_list('runs', None, 'Training runs, LABEL=WORKDIR or WORKDIR.')
_SCHEDULES = flags.DEFINE_string('schedules', '6,50', "Comma-separated schedules: names of today's "
                                 'sampling.named_schedules, specs or .json paths; each run reads '
                                 "them as its process does (a flow run: time grids, 'N' = N "
                                 'uniform steps).')
_FLOW_SAMPLER = flags.DEFINE_string('flow_sampler', 'euler', "The sampler preset of runs of process "
                                    "'flow' (runs of 'wavegrad' use 'ancestral').")
_SPLITS = flags.DEFINE_list('splits', ['heldout', 'unseen'], 'Splits to score.')
_MAX_UTTERANCES = flags.DEFINE_integer('max_utterances', 8, 'Utterances per split (0: all).')
_MAX_SECONDS = flags.DEFINE_float('max_seconds', 2.8, 'Cut each utterance to this (0: whole).')
_EVERY = flags.DEFINE_integer('every', 0, 'Score only checkpoints whose step is a multiple of '
                              'this (0: all; the latest is always scored).')
_MAX_STEP = flags.DEFINE_integer('max_step', 0, 'Ignore checkpoints above this step (0: none).')
_OUTPUT = flags.DEFINE_string('output', None, 'The JSON to write; the plot goes beside it.')
_RESUME = flags.DEFINE_bool('resume', True, 'Reuse the points of an existing --output JSON made '
                            'with the same settings (a killed study resumes; no point is redone).')
flags.mark_flags_as_required(['runs', 'output'])


def _check_request():
  """Every user input checked before anything is restored or compiled; returns what they name."""
  try:
    runs = learning_curve.parse_runs(_RUNS.value)
  except ValueError as e:
    raise errors.UserError(f'--runs: {e}') from None
  bad = [s for s in _SPLITS.value if s not in compare.SPLITS]
  if bad or not _SPLITS.value:
    raise errors.UserError(f'--splits: unknown {bad}; choose from {list(compare.SPLITS)}')
  defaults = common.get_common_config()
  if sampling.preset_process(_FLOW_SAMPLER.value) not in ('flow', 'any') or (
      _FLOW_SAMPLER.value not in sampling.SAMPLER_PRESETS):
    raise errors.UserError(f'--flow_sampler={_FLOW_SAMPLER.value}: choose one of '
                           f"{sampling.presets_for('flow')}")
  steps, schedule_lists = {}, {}
  for label, workdir in runs:
    if not os.path.isdir(workdir):
      raise errors.UserError(f'--runs: {workdir} is not a folder (run {label!r})')
    try:
      config = checkpoints.inference_config(checkpoints.load_config(workdir), defaults)
      schedule_lists[label] = evaluate.parse_schedule_list(_SCHEDULES.value, config=config)
    except FileNotFoundError as e:
      raise errors.UserError(f'--runs: {e}') from None
    except ValueError as e:
      raise errors.UserError(f'--schedules={_SCHEDULES.value} (run {label!r}): {e}') from None
    try:
      steps[label] = learning_curve.checkpoint_steps(workdir, _EVERY.value, _MAX_STEP.value)
    except FileNotFoundError as e:
      raise errors.UserError(f'--runs: {e}') from None
  if not _OUTPUT.value.endswith('.json'):
    raise errors.UserError(f'--output={_OUTPUT.value}: give a .json path (the plot goes beside it)')
  errors.check_output_dir(os.path.dirname(os.path.abspath(_OUTPUT.value)), '--output')
  return runs, schedule_lists, steps, defaults


def _earlier_points(results):
  """{(label, absolute workdir): {'utterances', 'griffin_lim', 'points': {step: point}}} of the
  existing --output JSON when it was made with the same settings, else {}."""
  if not os.path.exists(_OUTPUT.value):
    return {}
  try:
    with open(_OUTPUT.value) as f:
      earlier = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    logging.warning('--resume: cannot read %s (%s); scoring every checkpoint', _OUTPUT.value, e)
    return {}
  same = ('schedules', 'splits', 'max_utterances', 'max_seconds', 'sampler')
  if any(earlier.get(k) != results[k] for k in same):
    logging.warning('--resume: %s was made with other settings; scoring every checkpoint',
                    _OUTPUT.value)
    return {}
  # Per run, its grids too (runs may be added to a study; each keeps the points it had).
  grids = earlier.get('schedule_grids', {})
  return {(run['label'], os.path.abspath(run['workdir'])): {
      'utterances': run.get('utterances'), 'griffin_lim': run.get('griffin_lim'),
      'points': {p['step']: p for p in run.get('points', [])}} for run in earlier.get('runs', [])
      if grids.get(run['label']) == results['schedule_grids'].get(run['label'])}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from wavegrad_jax.data import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  runs, schedule_lists, steps, defaults = _check_request()
  samplers = {'wavegrad': 'ancestral', 'flow': _FLOW_SAMPLER.value}
  results = {'command': compare.command_line('experiments.learning_curve', sys.argv),
             'device': compare.device_description(), 'jax_version': jax.__version__,
             'time': time.strftime('%Y-%m-%d %H:%M:%S'),
             'schedules': [n for n, _ in next(iter(schedule_lists.values()))],
             'schedule_grids': {label: {n: [float(b) for b in grid] for n, grid in grids}
                                for label, grids in schedule_lists.items()},
             'splits': list(dict.fromkeys(_SPLITS.value)), 'max_utterances': _MAX_UTTERANCES.value,
             'max_seconds': _MAX_SECONDS.value, 'sampler': samplers, 'runs': []}
  done = _earlier_points(results) if _RESUME.value else {}
  total = sum(len(s) for s in steps.values())
  bar = tqdm.tqdm(total=total, desc='checkpoints', unit='ckpt')
  for label, workdir in runs:
    config = checkpoints.inference_config(checkpoints.load_config(workdir), defaults)
    splits = input_pipeline.prepare_dataset(config)
    utterances = {s: input_pipeline.heldout_utterances(
        config, split=s, max_count=_MAX_UTTERANCES.value or None,
        max_seconds=_MAX_SECONDS.value or None, splits=splits) for s in results['splits']}
    losses = learning_curve.logged_heldout_losses(workdir)
    seconds = learning_curve.training_seconds(workdir)
    schedule_list = schedule_lists[label]
    process = processes.process_name(config)
    run = {'label': label, 'workdir': workdir, 'steps': steps[label], 'points': [],
           'diffusion': config.diffusion.to_dict(), 'process': processes.recorded_fields(config),
           'model': model_lib.model_name(config.model), 'sampler': samplers[process],
           'utterances': {s: [u['id'] for u in found] for s, found in utterances.items()}}
    rng = evaluate.evaluation_rng(config)
    earlier = done.get((label, os.path.abspath(workdir)), {})
    if earlier.get('utterances') == run['utterances'] and earlier.get('griffin_lim'):
      run['griffin_lim'] = earlier['griffin_lim']
    else:
      earlier = {}
    for step in steps[label]:
      if step in earlier.get('points', {}):
        point = earlier['points'][step]
        point['heldout_loss'] = losses.get(step)
        point['train_seconds'] = seconds.get(step)
        run['points'].append(point)
        bar.update(1)
        continue
      params, config, _ = checkpoints.load_for_inference(workdir, defaults, step)
      eps_fn = sampling.model_eps_fn(model_lib.build_model(config))
      if not run.get('griffin_lim'):  # depends on the mels only: once per run
        gl = compare.compare(eps_fn, params, config, utterances, schedule_list[:1],
                             ['griffin_lim'], rng, progress=False)
        run['griffin_lim'] = learning_curve.curve_point(step, gl)['rows']
      comparison = compare.compare(eps_fn, params, config, utterances, schedule_list,
                                   [samplers[process]], rng, step=step, progress=False)
      run['points'].append(learning_curve.curve_point(step, comparison, losses.get(step),
                                                      seconds.get(step)))
      logging.info('%s step %d: %s', label, step, run['points'][-1]['rows'])
      results['wall_seconds'] = time.perf_counter() - start
      jsonable.write(_OUTPUT.value, results | {'runs': results['runs'] + [run]})
      bar.update(1)
    results['runs'].append(run)
  bar.close()
  results['summary'] = learning_curve.summarize(results)
  results['wall_seconds'] = time.perf_counter() - start
  jsonable.write(_OUTPUT.value, results)
  png = os.path.splitext(_OUTPUT.value)[0] + '.png'
  learning_curve.plot(results, png)
  learning_curve.plot(results, os.path.splitext(_OUTPUT.value)[0] + '_seconds.png',
                      x='train_seconds')
  for entry in results['summary']:
    print(', '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                    for k, v in entry.items()))
  print(f'wrote {_OUTPUT.value} and {png} ({results["wall_seconds"]:.0f} s)')


if __name__ == '__main__':
  cli.run(main)

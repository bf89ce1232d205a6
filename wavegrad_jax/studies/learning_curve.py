"""The learning-curve study: every checkpoint of one or more runs scored alike, JSON and plots.

The launcher is experiments/learning_curve.py (its docstring: the command and what is written);
the curve logic (points, summary, plot) is `wavegrad_jax.evaluation.learning_curve`. Follows the
launcher this was moved out of line for line: the same checks, messages, JSON and resume.
"""
import dataclasses
import json
import os
import time
from typing import Sequence

from absl import logging
import jax
import tqdm

from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.evaluation import compare
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax.evaluation import learning_curve
from wavegrad_jax.training import checkpoints


@dataclasses.dataclass(frozen=True)
class LearningCurveRequest:
  """What the study scores, as the launcher's flags give it.

  Fields:
    runs: run specs, 'LABEL=WORKDIR' or 'WORKDIR' (--runs).
    schedules: comma-separated schedules (--schedules).
    flow_sampler: the sampler preset of runs of process 'flow' (--flow_sampler).
    splits: the splits to score (--splits).
    max_utterances: utterances per split, 0 for all (--max_utterances).
    max_seconds: each utterance cut to this many seconds, 0 for whole (--max_seconds).
    every: score only steps that are multiples of this, 0 for all (--every).
    max_step: ignore checkpoints above this step, 0 for none (--max_step).
    output: the JSON path; the plots go beside it (--output).
    resume: reuse the points of an existing output made with the same settings (--resume).
  """
  runs: Sequence[str]
  schedules: str
  flow_sampler: str
  splits: Sequence[str]
  max_utterances: int
  max_seconds: float
  every: int
  max_step: int
  output: str
  resume: bool


def check_request(request, defaults):
  """Every user input checked before anything is restored or compiled; returns what they name.

  Args:
    request: a `LearningCurveRequest`.
    defaults: the common experiment config (fields a run's config.json lacks).
  Returns:
    (runs, schedule_lists, steps): [(label, workdir)], {label: [(name, grid)]}, {label: [step]}.
  Raises:
    errors.UserError: naming the flag at fault.
  """
  try:
    runs = learning_curve.parse_runs(request.runs)
  except ValueError as e:
    raise errors.UserError(f'--runs: {e}') from None
  bad = [s for s in request.splits if s not in compare.SPLITS]
  if bad or not request.splits:
    raise errors.UserError(f'--splits: unknown {bad}; choose from {list(compare.SPLITS)}')
  if sampling.preset_process(request.flow_sampler) not in ('flow', 'any') or (
      request.flow_sampler not in sampling.SAMPLER_PRESETS):
    raise errors.UserError(f'--flow_sampler={request.flow_sampler}: choose one of '
                           f"{sampling.presets_for('flow')}")
  steps, schedule_lists = {}, {}
  for label, workdir in runs:
    if not os.path.isdir(workdir):
      raise errors.UserError(f'--runs: {workdir} is not a folder (run {label!r})')
    try:
      config = checkpoints.inference_config(checkpoints.load_config(workdir), defaults)
      schedule_lists[label] = evaluate.parse_schedule_list(request.schedules, config=config)
    except FileNotFoundError as e:
      raise errors.UserError(f'--runs: {e}') from None
    except ValueError as e:
      raise errors.UserError(f'--schedules={request.schedules} (run {label!r}): {e}') from None
    try:
      steps[label] = learning_curve.checkpoint_steps(workdir, request.every, request.max_step)
    except FileNotFoundError as e:
      raise errors.UserError(f'--runs: {e}') from None
  if not request.output.endswith('.json'):
    raise errors.UserError(f'--output={request.output}: give a .json path '
                           '(the plot goes beside it)')
  errors.check_output_dir(os.path.dirname(os.path.abspath(request.output)), '--output')
  return runs, schedule_lists, steps


def earlier_points(output, results):
  """{(label, absolute workdir): {'utterances', 'griffin_lim', 'points': {step: point}}} of the
  existing `output` JSON when it was made with the same settings as `results`, else {}."""
  if not os.path.exists(output):
    return {}
  try:
    with open(output) as f:
      earlier = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    logging.warning('--resume: cannot read %s (%s); scoring every checkpoint', output, e)
    return {}
  same = ('schedules', 'splits', 'max_utterances', 'max_seconds', 'sampler')
  if any(earlier.get(k) != results[k] for k in same):
    logging.warning('--resume: %s was made with other settings; scoring every checkpoint',
                    output)
    return {}
  # Per run, its grids too (runs may be added to a study; each keeps the points it had).
  grids = earlier.get('schedule_grids', {})
  return {(run['label'], os.path.abspath(run['workdir'])): {
      'utterances': run.get('utterances'), 'griffin_lim': run.get('griffin_lim'),
      'points': {p['step']: p for p in run.get('points', [])}} for run in earlier.get('runs', [])
      if grids.get(run['label']) == results['schedule_grids'].get(run['label'])}


def _score_run(request, defaults, label, workdir, steps, schedule_list, samplers, done, results,
               start, bar):
  """One run's entry of the results: its Griffin-Lim rows and a point per checkpoint step."""
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  config = checkpoints.inference_config(checkpoints.load_config(workdir), defaults)
  splits = data_options.prepare_dataset_from_config(config)
  utterances = {s: data_options.heldout_utterances_from_config(
      config, split=s, max_count=request.max_utterances or None,
      max_seconds=request.max_seconds or None, splits=splits) for s in results['splits']}
  losses = learning_curve.logged_heldout_losses(workdir)
  seconds = learning_curve.training_seconds(workdir)
  process = processes.process_name_from_config(config)
  run = {'label': label, 'workdir': workdir, 'steps': steps, 'points': [],
         'diffusion': config.diffusion.to_dict(), 'process': processes.recorded_fields_from_config(config),
         'model': model_lib.model_name_from_config(config.model), 'sampler': samplers[process],
         'utterances': {s: [u['id'] for u in found] for s, found in utterances.items()}}
  rng = evaluate.evaluation_rng(config)
  earlier = done.get((label, os.path.abspath(workdir)), {})
  if earlier.get('utterances') == run['utterances'] and earlier.get('griffin_lim'):
    run['griffin_lim'] = earlier['griffin_lim']
  else:
    earlier = {}
  for step in steps:
    if step in earlier.get('points', {}):
      point = earlier['points'][step]
      point['heldout_loss'] = losses.get(step)
      point['train_seconds'] = seconds.get(step)
      run['points'].append(point)
      bar.update(1)
      continue
    params, config, _ = checkpoints.load_for_inference(workdir, defaults, step)
    eps_fn = sampling.model_eps_fn(model_lib.build_model_from_config(config))
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
    jsonable.write(request.output, results | {'runs': results['runs'] + [run]})
    bar.update(1)
  return run


def run_study(request, defaults, argv):
  """Scores every checkpoint of the request's runs; writes the JSON and the two plots.

  Args:
    request: a `LearningCurveRequest`.
    defaults: the common experiment config (fields a run's config.json lacks).
    argv: the command line, recorded in the JSON.
  Returns:
    (results, png): the written results dict and the path of the step plot.
  Raises:
    errors.UserError: a bad request (`check_request`).
  """
  start = time.perf_counter()
  runs, schedule_lists, steps = check_request(request, defaults)
  samplers = {'wavegrad': 'ancestral', 'flow': request.flow_sampler}
  results = {'command': compare.command_line('experiments.learning_curve', argv),
             'device': compare.device_description(), 'jax_version': jax.__version__,
             'time': time.strftime('%Y-%m-%d %H:%M:%S'),
             'schedules': [n for n, _ in next(iter(schedule_lists.values()))],
             'schedule_grids': {label: {n: [float(b) for b in grid] for n, grid in grids}
                                for label, grids in schedule_lists.items()},
             'splits': list(dict.fromkeys(request.splits)),
             'max_utterances': request.max_utterances,
             'max_seconds': request.max_seconds, 'sampler': samplers, 'runs': []}
  done = earlier_points(request.output, results) if request.resume else {}
  total = sum(len(s) for s in steps.values())
  bar = tqdm.tqdm(total=total, desc='checkpoints', unit='ckpt')
  for label, workdir in runs:
    results['runs'].append(_score_run(request, defaults, label, workdir, steps[label],
                                      schedule_lists[label], samplers, done, results, start, bar))
  bar.close()
  results['summary'] = learning_curve.summarize(results)
  results['wall_seconds'] = time.perf_counter() - start
  jsonable.write(request.output, results)
  png = os.path.splitext(request.output)[0] + '.png'
  learning_curve.plot(results, png)
  learning_curve.plot(results, os.path.splitext(request.output)[0] + '_seconds.png',
                      x='train_seconds')
  return results, png

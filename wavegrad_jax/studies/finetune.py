"""A fine-tuning study: a run fine-tuned on degraded (predicted-like) mels vs its starting point.

`run_study` is experiments/finetune_study.py's logic: it writes paired folders of degraded and of
real mels from one corpus (`data.predicted_mels.write_pairs`), fine-tunes a run on each
(`train.train_and_evaluate` with train.init_from), and scores the starting weights and each
fine-tuned run's on held-out mels of each kind (`evaluate.evaluate_utterances`), all with the same
reverse-diffusion noise.
"""
import json
import os
import platform
import time

from absl import logging
import jax

from wavegrad_jax.training import checkpoints
from wavegrad_jax import errors
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax.data import options as data_options
from wavegrad_jax import jsonable
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.training import trainer as train

ARMS = ('degraded', 'clean')


def _processor():
  """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def _arm_config(config, pairs_dir, init_from, steps):
  c = config.copy_and_resolve_references()
  c.data.source, c.data.dir = 'paired', pairs_dir
  c.train.init_from, c.train.num_steps = init_from, int(steps)
  c.train.checkpoint_every_steps = min(int(c.train.checkpoint_every_steps), int(steps))
  c.train.eval_every_steps = 0  # the study scores the result; no mid-run evaluations needed.
  c.train.num_audio_examples = 0
  c.logging.progress_bar = False
  return c


STUDY_FILE = 'study.json'


def check_study_folder(workdir, what):
  """Records what the pairs and arms are made from; refuses a workdir that holds another study.

  The pairs and finished arms are reused when the command is rerun, so the same folder with other
  settings would silently report the old ones' results.

  Raises:
    errors.UserError: `workdir` holds a study made with other settings (names each one).
  """
  path = os.path.join(workdir, STUDY_FILE)
  what = json.loads(json.dumps(jsonable.finite(what)))
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    changed = sorted(k for k in set(what) | set(recorded) if what.get(k) != recorded.get(k))
    if changed:
      raise errors.UserError(
          f'{workdir} holds a fine-tuning study made with other {", ".join(changed)}; its pairs '
          'and fine-tuned runs would be reused. Give a new --workdir (or remove that one)')
    return
  os.makedirs(workdir, exist_ok=True)
  with open(path, 'w') as f:
    json.dump(what, f, indent=2)


def run_study(config, source_config, degrade_cfg, *, init_from, workdir, steps, max_train,
              max_utterances, max_seconds, schedules, arms=ARMS):
  """Makes the pairs, fine-tunes each arm and scores every (weights, mels) combination.

  Args:
    config: the fine-tuning config (model / audio of `init_from`).
    source_config: config whose data section is the corpus the pairs come from.
    degrade_cfg: experiments/configs/degrade.py settings for the degraded arm.
    init_from: the run fine-tuned.
    workdir: study folder.
    steps: fine-tuning steps per arm.
    max_train: training utterances per pairs folder (the held-out split is written whole).
    max_utterances, max_seconds: the held-out utterances scored.
    schedules: inference schedules, comma-separated.
    arms: 'degraded' (fine-tuned on degraded mels) and / or 'clean' (on the real mels: the
      control); the held-out mels of each arm's folder are scored.
    A rerun in the same `workdir` reuses its pairs and finished arms; other settings there are
    refused (errors.UserError).
  Returns:
    dict: 'results' {weights: {mels: {schedule: metric means}}}, 'improvement' (degraded mels:
    init minus fine-tuned-on-degraded, per metric), 'pairs' (the pairs.json of each folder),
    'settings' and timings.
  """
  start = time.perf_counter()
  check_study_folder(workdir, {'init_from': os.path.abspath(init_from), 'steps': int(steps),
                         'max_train': int(max_train), 'arms': list(arms),
                         'degrade': degrade_cfg.to_dict(), 'config': config.to_dict()})
  timings, pairs = {}, {}
  arm_configs = {}
  for arm in arms:
    pairs_dir = os.path.join(workdir, f'pairs_{arm}')
    summary_path = os.path.join(pairs_dir, 'pairs.json')
    if not os.path.exists(summary_path):
      d = degrade_cfg.copy_and_resolve_references()
      d.clean = arm == 'clean'
      src = source_config.copy_and_resolve_references()
      src.audio = config.audio
      data_options.write_pairs_from_config(src, d, pairs_dir, max_train, 0)
    with open(summary_path) as f:
      pairs[arm] = json.load(f)
    arm_configs[arm] = _arm_config(config, pairs_dir, init_from, steps)
    t = time.perf_counter()
    train.train_and_evaluate(arm_configs[arm], os.path.join(workdir, arm))
    timings[f'train_{arm}_seconds'] = time.perf_counter() - t
  weights = {'init': checkpoints.restore_params(*checkpoints.resolve_checkpoint_path(init_from),
                                                ema=True)}
  for arm in arms:
    weights[f'finetuned_{arm}'] = checkpoints.restore_params(os.path.join(workdir, arm), ema=True)
  mels = {arm: data_options.heldout_utterances_from_config(arm_configs[arm], 'heldout',
                                                           max_count=max_utterances,
                                                           max_seconds=max_seconds)
          for arm in arms}
  ids = [u['id'] for u in mels[arms[0]]]
  assert all([u['id'] for u in m] == ids for m in mels.values()), 'other held-out utterances'
  eval_config = arm_configs[arms[0]].copy_and_resolve_references()
  eval_config.eval.pesq = False
  eval_config.eval.dnsmos = eval_config.eval.visqol = 'false'
  schedule_list = evaluate.parse_schedule_list(schedules, config=eval_config)
  eps_fn = sampling.model_eps_fn(model_lib.build_model_from_config(eval_config))
  results = {}
  t = time.perf_counter()
  for name, (params, _, step) in weights.items():
    results[name] = {'step': step}
    for arm in arms:
      scored = evaluate.evaluate_utterances(eps_fn, params, eval_config, mels[arm], schedule_list,
                                            evaluate.evaluation_rng(eval_config), progress=False)
      results[name][f'{arm}_mels'] = {
          s: {k: v[k] for k in ('ls_mse', 'mrstft', 'mel_l1', 'stoi') if k in v}
          for s, v in scored['schedules'].items()}
      logging.info('%s on %s mels: %s', name, arm, results[name][f'{arm}_mels'])
  timings['evaluation_seconds'] = time.perf_counter() - t
  improvement = {}
  if 'degraded' in arms:
    before, after = results['init']['degraded_mels'], results['finetuned_degraded']['degraded_mels']
    improvement = {s: {k: before[s][k] - after[s][k] for k in ('ls_mse', 'mrstft')}
                   for s in before}
  timings['total_seconds'] = time.perf_counter() - start
  return {
      'results': results, 'improvement_on_degraded_mels': improvement, 'pairs': pairs,
      'heldout_ids': ids,
      'heldout_seconds': sum(len(u['audio']) for u in mels[arms[0]])
                         / float(config.audio.sample_rate),
      'settings': {'init_from': init_from, 'steps': int(steps), 'schedules': schedules,
                   'max_utterances': max_utterances, 'max_seconds': max_seconds,
                   'learning_rate': float(config.train.learning_rate),
                   'warmup_steps': int(config.train.warmup_steps),
                   'batch_size': int(config.train.batch_size),
                   'degrade': degrade_cfg.to_dict()},
      'timings': timings,
      'device': f'{jax.devices()[0].platform} ({os.cpu_count()} cores, {_processor()})',
  }


def format_table(study):
  """A markdown table: weights x mels x schedule with LS-MSE, MR-STFT, mel L1 and STOI."""
  lines = ['| weights | mels | steps | LS-MSE | MR-STFT | mel L1 | STOI |',
           '|:---|:---|---:|---:|---:|---:|---:|']
  for name, row in study['results'].items():
    for arm in ARMS:
      for schedule, m in row.get(f'{arm}_mels', {}).items():
        lines.append(f"| {name} | {arm} | {schedule} | {m['ls_mse']:.3f} | {m['mrstft']:.3f} | "
                     f"{m['mel_l1']:.3f} | {m.get('stoi', float('nan')):.3f} |")
  return '\n'.join(lines)

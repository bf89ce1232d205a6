"""Comparing samplers: every (split, sampler preset, schedule) evaluated alike, and its report.

Each sampler (a name in `sampling.SAMPLER_PRESETS`) vocodes the same utterances of each split with
each schedule, from the same reverse-diffusion key, and is scored with LS-MSE, multi-resolution
STFT distance, PESQ, STOI and the real-time factor (`evaluate.evaluate_utterances`). A sampler
without a model ('griffin_lim': Griffin-Lim alone from the mel) does not use the schedule and is
evaluated once per split, its row's steps shown as '-'. The results
become results.json and a markdown table with a header line naming the checkpoint, the
utterances, the device and the command (`write_outputs`). The launcher is
experiments/compare_samplers.py.
"""
import json
import math
import os
import platform
import shlex

from absl import logging
import jax
import tqdm

from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import jsonable
from wavegrad_jax.evaluation import metrics
from wavegrad_jax import processes
from wavegrad_jax import sampling

SPLITS = ('heldout', 'unseen', 'train')
NO_SCHEDULE = 'none'  # the schedule name of a row whose sampler uses none ('griffin_lim').
# (results key, table heading, format) of the table's metric columns.
TABLE_METRICS = (('ls_mse', 'LS-MSE', '.3f'), ('mrstft', 'MR-STFT', '.3f'), ('pesq', 'PESQ', '.2f'),
                 ('stoi', 'STOI', '.3f'), ('rtf', 'RTF', '#.3g'))


def uses_schedule(config):
  """Whether config.sampling's sampler runs the diffusion schedule (not 'griffin_lim' alone)."""
  return config.sampling.get('algorithm', 'diffusion') != 'griffin_lim'


def sampler_settings(config):
  """The sampling options a variant ran with, as a JSON-ready dict (GLA details only when used)."""
  s = config.sampling
  out = {'algorithm': s.get('algorithm', 'diffusion'), 'eta': float(s.eta),
         'noise_scale': s.noise_scale, 'clip': float(s.clip),
         'clip_x0': float(s.get('clip_x0', 0.0)), 'gla': bool(s.gla.enabled)}
  if s.gla.enabled:
    out.update({f'gla_{k}': s.gla[k] for k in ('steps', 'placement', 'mean_peak')})
  if s.gla.enabled or not uses_schedule(config):
    out.update({f'gla_{k}': s.gla[k] for k in ('iterations', 'magnitude', 'momentum')})
    out['gla_variant'] = str(s.gla.get('variant', 'fast'))
  return out


def compare(eps_fn, params, config, utterances_by_split, schedule_list, samplers, rng, *,
            output_dir=None, step=None, progress=True):
  """Evaluates every (split, sampler, schedule) with `evaluate.evaluate_utterances`.

  Args:
    eps_fn: denoiser eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]).
    params: its parameters.
    config: full inference config; each sampler changes a copy of its sampling section.
    utterances_by_split: {split name: list of {'id', 'audio' [T], 'mel' [F, n_mels]}}; an empty
      list skips the split (recorded in the results).
    schedule_list: [(name, betas [N])] (`evaluate.parse_schedule_list`).
    samplers: names of `sampling.SAMPLER_PRESETS`, in table order.
    rng: PRNG key shared by every variant: on one split, samplers and schedules differ only by
      themselves, never by the noise.
    output_dir: if given, each variant's evaluation goes to output_dir/<split>/<sampler>/.
    step: the checkpoint step, recorded.
    progress: show progress bars.
  Returns:
    dict: {'step', 'schedules': {name: [betas]}, 'samplers': {name: settings}, 'splits': {split:
    {'num_utterances', 'audio_seconds', 'ids'}}, 'skipped_splits': [split], 'rows': [{'split',
    'sampler', 'schedule', 'num_steps', metric means, 'rtf', 'synthesis_seconds',
    'compile_seconds', 'nonfinite_utterances'}]}, rows in split, sampler, schedule order.
  Raises:
    ValueError: unknown sampler, or an option a sampler needs conflicts with the config.
  """
  configs = {name: sampling.preset_from_config(config, name) for name in samplers}
  for name, c in configs.items():  # fail before any synthesis, not after minutes of it.
    try:
      processes.check_sampling_from_config(c)
      sampling.SamplerOptions.from_config(c)
    except ValueError as e:
      raise ValueError(f'sampler {name!r}: {e}') from e
  results = {'step': step,
             'schedules': {n: [float(b) for b in betas] for n, betas in schedule_list},
             'samplers': {n: sampler_settings(c) for n, c in configs.items()},
             'splits': {}, 'skipped_splits': [], 'rows': []}
  jobs = []
  for split, utterances in utterances_by_split.items():
    if not utterances:
      logging.warning('split %r has no utterances; skipped', split)
      results['skipped_splits'].append(split)
      continue
    results['splits'][split] = {
        'num_utterances': len(utterances),
        'audio_seconds': sum(len(u['audio']) for u in utterances) / float(
            config.audio.sample_rate),
        'ids': [str(u.get('id', i)) for i, u in enumerate(utterances)]}
    jobs.extend((split, name) for name in samplers)
  # One vocoder per sampler and one metrics function for all: each split reuses the programs the
  # first one compiled (same schedule lengths and chunk batches), instead of compiling anew.
  vocoders = {name: evaluate.make_vocoder(eps_fn, c) for name, c in configs.items()}
  metrics_fn = metrics.BucketedSpectralMetrics(config.audio, config.eval)
  for split, name in tqdm.tqdm(jobs, desc='split x sampler', unit='variant', disable=not progress):
    c = configs[name].copy_and_resolve_references()
    c.eval.split = split  # names the TensorBoard tags.
    with_schedule = uses_schedule(c)
    # A sampler without a model ignores the schedule: one evaluation, not one per schedule.
    schedules_run = schedule_list if with_schedule else [(NO_SCHEDULE, schedule_list[0][1])]
    out = evaluate.evaluate_utterances(
        eps_fn, params, c, utterances_by_split[split], schedules_run, rng,
        output_dir=os.path.join(output_dir, split, name) if output_dir else None, step=step,
        progress=progress, vocode=vocoders[name], metrics_fn=metrics_fn)
    # The reference seconds evaluate scored (whole frames), which its RTF divides by.
    results['splits'][split]['audio_seconds'] = out['audio_seconds']
    for schedule, summary in out['schedules'].items():
      row = {'split': split, 'sampler': name, 'schedule': schedule}
      row.update({k: v for k, v in summary.items() if k != 'betas'})
      if not with_schedule:
        row['num_steps'] = 0
      results['rows'].append(row)
      logging.info('%s %s %s: %s', split, name, schedule,
                   ', '.join(f'{k} {_cell(row.get(k), f)}' for k, _, f in TABLE_METRICS))
  return results


def _cell(value, fmt):
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return 'n/a'
  return format(value, fmt)


def markdown_table(results):
  """The results as a markdown table.

  Columns: split | sampler | steps | LS-MSE | MR-STFT | PESQ | STOI | RTF. A metric whose mean
  has no finite value is 'n/a'; rows with non-finite samples get a footnote saying how many of the
  utterances diverged; a sampler that uses no schedule shows '-' steps.

  Args:
    results: what `compare` returns.
  Returns:
    str, the table's lines (and footnotes), without a trailing newline.
  """
  heads = ['split', 'sampler', 'steps'] + [h for _, h, _ in TABLE_METRICS]
  lines = ['| ' + ' | '.join(heads) + ' |',
           '|' + '|'.join([':---'] * 3 + ['---:'] * len(TABLE_METRICS)) + '|']
  notes = []
  for row in results['rows']:
    steps = str(row['num_steps'])
    if row['schedule'] == NO_SCHEDULE:
      steps = '-'
    elif row['schedule'] != steps:
      steps += f' ({row["schedule"]})'
    bad = int(row.get('nonfinite_utterances') or 0)
    if bad:
      notes.append(f'{len(notes) + 1}. {row["split"]} / {row["sampler"]} / {steps} steps: {bad} of '
                   f'{results["splits"][row["split"]]["num_utterances"]} utterances non-finite '
                   '(means over the finite ones)')
      steps += f' [{len(notes)}]'
    cells = [row['split'], row['sampler'], steps]
    cells += [_cell(row.get(k), f) for k, _, f in TABLE_METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  if results.get('skipped_splits'):
    notes.append(f'Skipped (no utterances): {", ".join(results["skipped_splits"])}.')
  return '\n'.join(lines + ([''] + notes if notes else []))


def header_line(results, *, workdir, device, command, max_seconds):
  """One line naming the checkpoint, the utterances, the device and the command of a table.

  Args:
    results: what `compare` returns, optionally with 'ema' (bool) added.
    workdir: the checkpoint's run directory, as given.
    device: `device_description()`.
    command: `command_line(module, sys.argv)`.
    max_seconds: the cut applied to each utterance, in seconds (0: none).
  Returns:
    str without a newline.
  """
  ema = results.get('ema')
  parts = [f'Checkpoint `{workdir}` step {results["step"]}'
           + ('' if ema is None else ' (EMA weights)' if ema else ' (raw weights)')]
  for split, info in results['splits'].items():
    parts.append(f'{split}: {info["num_utterances"]} utterances, {info["audio_seconds"]:.1f} s')
  parts.append(f'each cut to at most {max_seconds:g} s' if max_seconds else 'whole utterances')
  for name, settings in results['samplers'].items():
    if 'gla_iterations' not in settings:
      continue
    where = ('Griffin-Lim alone (no model) from the starting noise'
             if settings['algorithm'] == 'griffin_lim' else
             f'GLA on the {settings["gla_placement"]} at steps {settings["gla_steps"]}')
    variant = {'authors': "the authors' Griffin-Lim loop", 'fast': 'fast Griffin-Lim'}.get(
        settings.get('gla_variant', 'fast'), settings.get('gla_variant'))
    parts.append(f'{name}: {where}, {settings["gla_iterations"]} iterations of {variant}, '
                 f'momentum {settings["gla_momentum"]:.3g}, {settings["gla_magnitude"]} magnitude'
                 + (f', rescaled to a {settings["gla_mean_peak"]:g} peak'
                    if settings.get('gla_placement') == 'mean' and settings['gla_mean_peak']
                    else '') + (f', y clamped to ±{settings["clip"]:g}' if settings['clip'] else ''))
  parts.append(f'device: {device}')
  parts.append(f'command: `{command}`')
  return '; '.join(parts) + '.'


def device_description():
  """'cpu (2 cores, <model name>)' or the accelerator's kind and count."""
  devices = jax.devices()
  if jax.default_backend() == 'cpu':
    model = platform.processor() or platform.machine()
    try:
      with open('/proc/cpuinfo') as f:
        model = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), model)
    except OSError:
      pass
    return f'cpu ({os.cpu_count()} cores, {model})'
  return f'{len(devices)} x {devices[0].device_kind}'


def command_line(module, argv):
  """The `python -m <module> <argv[1:]>` command, arguments shell-quoted, for the record."""
  return ' '.join([f'python -m {module}'] + [shlex.quote(a) for a in argv[1:]])


def write_outputs(results, output_dir, header):
  """Writes results.json and table.md (the header line, a blank line, the table).

  Args:
    results: what `compare` returns (plus any run details to record).
    output_dir: created if missing.
    header: `header_line(...)`.
  Returns:
    str, the text of table.md.
  """
  os.makedirs(output_dir, exist_ok=True)
  table = header + '\n\n' + markdown_table(results) + '\n'
  with open(os.path.join(output_dir, 'results.json'), 'w') as f:
    json.dump(jsonable.finite(results), f, indent=2)
  with open(os.path.join(output_dir, 'table.md'), 'w') as f:
    f.write(table)
  return table

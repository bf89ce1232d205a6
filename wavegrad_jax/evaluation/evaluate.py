"""Vocoding held-out utterances with several inference schedules and scoring them.

For each schedule: chunked, batched synthesis (one compilation per schedule length and chunk
shape), then LS-MSE, multi-resolution STFT distance, mel L1, PESQ (wideband, 16 kHz) and STOI
against the reference audio, plus the real-time factor; with the optional perceptual extra, also
DNSMOS and ViSQOL (`perceptual`). Results go to metrics.json (means per schedule),
per_utterance.jsonl (one line per schedule and utterance), TensorBoard scalars and wavs.
"""
import json
import math
import os
import re

import jax
import numpy as np
import tqdm

from wavegrad_jax import jsonable, processes, sampling
from wavegrad_jax.evaluation import metrics
from wavegrad_jax.evaluation import perceptual
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.inference import synthesize

METRIC_NAMES = ('ls_mse', 'mrstft', 'spectral_convergence', 'log_magnitude_l1', 'mel_l1', 'pesq',
                'stoi') + perceptual.ALL_FIELDS


def schedule_name(spec):
  """A file-system-safe name for a schedule spec: a JSON path's stem, else the spec itself."""
  if spec.endswith('.json') or os.path.isfile(spec):
    return os.path.splitext(os.path.basename(spec))[0]
  return re.sub(r'[^A-Za-z0-9._+-]+', '_', spec)


def parse_schedule_list(specs, named=None, config=None):
  """Turns 'a,b,c' (or a list) of schedule specs into [(name, betas [N])], in the given order.

  A 'list:b1,b2' spec contains commas: separate the specs with ';' when one of them is a list.

  Args:
    specs: a ','- or ';'-separated string, or a sequence of specs (names, 'linear:..', .json paths).
    named: config.sampling.named_schedules.
    config: the run's full config: when given, each spec is read as its process reads it
      (`processes.parse_grid_from_config`: betas for 'wavegrad', a time grid [N + 1] for 'flow') and `named`
      is not used.
  Returns:
    list of (file-system-safe name, float64 grid: [N] betas, or [N + 1] flow times).
  Raises:
    ValueError: two specs map to one name; schedules.ScheduleError: an invalid spec.
  """
  if isinstance(specs, str):
    specs = [s.strip() for s in specs.split(';' if ';' in specs else ',') if s.strip()]
  out, seen = [], set()
  for spec in specs:
    name = schedule_name(spec)
    if name in seen:
      raise ValueError(f'two schedules would both be called {name!r}; rename one of the files')
    seen.add(name)
    if config is not None:
      out.append((name, processes.parse_grid_from_config(config, spec)))
    else:
      out.append((name, schedules.parse_schedule(spec, named)))
  return out


def _num_steps(config, grid):
  """Steps of a sampler grid: N betas, or the N intervals of a flow time grid [N + 1]."""
  return int(len(grid)) - (0 if processes.process_name_from_config(config) == 'wavegrad' else 1)


def _safe_id(utt_id):
  return re.sub(r'[^A-Za-z0-9._+-]+', '_', str(utt_id))


def perceptual_measures(config):
  """The perceptual measures config.eval.dnsmos / eval.visqol ask for and that are installed.

  'auto' measures that are not installed are left out with a one-line hint, logged once.

  Args:
    config: full config (eval).
  Returns:
    tuple of `perceptual.MEASURES` names.
  Raises:
    perceptual.MissingExtraError: a measure set to 'true' is not installed (names the fix).
    ValueError: a setting other than 'auto', 'true' or 'false', or a bad dnsmos_short_clips.
  """
  perceptual.check_short_clips(config.eval.get('dnsmos_short_clips', 'pad'))
  measures, hint = perceptual.resolve(
      {m: config.eval.get(m, 'auto') for m in perceptual.MEASURES})
  perceptual.log_hint_once(hint)
  return measures


def score_utterances(generated, references, config, metrics_fn=None, measures=None):
  """Every metric for each (generated, reference) pair of one schedule.

  Args:
    generated: list of [T_i] waveforms.
    references: list of [T_i] reference waveforms at config.audio.sample_rate.
    config: full config (audio, eval).
    metrics_fn: fn(generated [T], reference [T]) -> {metric: scalar}, reused across schedules
      (default: a new `metrics.BucketedSpectralMetrics`, one compilation per length bucket).
    measures: perceptual measures to add (`perceptual_measures(config)` when None).
  Returns:
    list of {metric name: float} per utterance (PESQ / STOI only if enabled in config.eval;
    DNSMOS / ViSQOL fields only for `measures`).
  """
  metrics_fn = metrics_fn or metrics.BucketedSpectralMetrics(config.audio, config.eval)
  measures = perceptual_measures(config) if measures is None else measures
  rate = int(config.audio.sample_rate)
  rows = []
  for gen, ref in zip(generated, references):
    row = {k: float(v) for k, v in metrics_fn(gen, ref).items()}
    if config.eval.pesq:
      row['pesq'] = float(metrics.pesq_wb(gen, ref, rate))
    if config.eval.stoi:
      row['stoi'] = float(metrics.stoi(gen, ref, rate))
    row.update(perceptual.score(gen, ref, rate, measures,
                                config.eval.get('dnsmos_short_clips', 'pad')))
    rows.append(row)
  return rows


def _mean(values):
  finite = [v for v in values if v is not None and math.isfinite(v)]
  return float(np.mean(finite)) if finite else None


def make_vocoder(eps_fn, config):
  """The chunked, batched vocoder evaluation uses (`synthesize.chunked_vocoder_from_config`).

  It keeps its compiled samplers, so one vocoder reused over several evaluations with the same
  sampler settings compiles once per (schedule length, batch shape).

  Args:
    eps_fn: denoiser eps_fn(params, noisy, mel, noise_level).
    config: full config (audio.hop_length, sampling, eval chunking).
  Returns:
    vocode(params, betas, mels, rng, ...) -> (waveforms, stats), as `make_chunked_vocoder`.
  """
  sampler = processes.make_sampler_from_config(processes.from_config(config), eps_fn, config)
  return synthesize.chunked_vocoder_from_config(sampler, config)


def evaluate_utterances(eps_fn, params, config, utterances, schedule_list, rng, *,
                        output_dir=None, step=None, progress=True, vocode=None,
                        metrics_fn=None):
  """Vocodes utterances with each schedule and scores them.

  Args:
    eps_fn: denoiser eps_fn(params, noisy, mel, noise_level) (`sampling.model_eps_fn(model)`).
    params: its parameters.
    config: the checkpoint's full config (audio, sampling, eval). With GLA magnitude 'given' the
      sampler's target |STFT| is each utterance's reference audio's.
    utterances: list of {'id', 'audio' [T], 'mel' [F, n_mels]}
      (`input_pipeline.heldout_utterances`).
    schedule_list: [(name, betas [N])] (`parse_schedule_list`).
    rng: PRNG key; every schedule uses the same one, so they differ only by the schedule.
    output_dir: if given, receives metrics.json, per_utterance.jsonl, wavs/<schedule>/<id>.wav
      (and wavs/reference/) and TensorBoard events in tb/.
    step: the checkpoint step, recorded and used as the TensorBoard step.
    progress: show progress bars.
    vocode: a `make_vocoder(eps_fn, config)` to reuse (and its compiled samplers); None: new.
    metrics_fn: a `metrics.BucketedSpectralMetrics` to reuse; None: new.
  Returns:
    dict: {'step', 'num_utterances', 'audio_seconds', 'schedules': {name: {'num_steps', 'betas',
    'rtf', 'synthesis_seconds', 'compile_seconds', metric means...}}, 'per_utterance': [rows]},
    and with DNSMOS / ViSQOL on, 'reference': {their means on the reference audio} (ViSQOL of
    each reference against itself: the scale's ceiling).
  Raises:
    perceptual.MissingExtraError: eval.dnsmos / eval.visqol is 'true' but not installed (raised
      before any synthesis).
  """
  if not utterances:
    raise ValueError('no utterances to evaluate (empty split?)')
  audio_cfg, e = config.audio, config.eval
  measures = perceptual_measures(config)  # a missing required extra fails before synthesis.
  hop, rate = int(audio_cfg.hop_length), int(audio_cfg.sample_rate)
  vocode = vocode or make_vocoder(eps_fn, config)
  metrics_fn = metrics_fn or metrics.BucketedSpectralMetrics(audio_cfg, e)
  mels = [np.asarray(u['mel'], np.float32) for u in utterances]
  refs = [np.asarray(u['audio'], np.float32)[:m.shape[0] * hop] for u, m in zip(utterances, mels)]
  for u, m, r in zip(utterances, mels, refs):
    if r.shape[0] != m.shape[0] * hop:
      raise ValueError(f'utterance {u.get("id")}: {r.shape[0]} samples is fewer than its '
                       f'{m.shape[0]} mel frames * hop {hop}')
  # GLA magnitude 'given': the reference audio is the true magnitude the samples are pulled to.
  target_fn = synthesize.make_target_magnitude_fn(config)
  vocode_kwargs = {}
  if target_fn is not None:
    vocode_kwargs['target_magnitudes'] = [synthesize.target_magnitude(target_fn, r, m.shape[0])
                                          for r, m in zip(refs, mels)]
  ids = [str(u.get('id', i)) for i, u in enumerate(utterances)]
  audio_seconds = sum(r.shape[0] for r in refs) / rate
  results = {'step': step, 'num_utterances': len(utterances), 'audio_seconds': audio_seconds,
             'schedules': {}, 'per_utterance': []}
  if measures:
    ref_rows = [perceptual.score(r, r, rate, measures, e.get('dnsmos_short_clips', 'pad'))
                for r in refs]
    results['reference'] = {k: _mean([row[k] for row in ref_rows]) for k in ref_rows[0]}
  if output_dir:
    os.makedirs(output_dir, exist_ok=True)
    if e.write_wavs and e.write_references:
      for utt_id, ref in zip(ids, refs):
        path = os.path.join(output_dir, 'wavs', 'reference', _safe_id(utt_id) + '.wav')
        synthesize.write_wav(path, ref, rate, e.wav_subtype)
  speech_rms = float(np.sqrt(np.mean(np.concatenate(refs).astype(np.float64) ** 2)))
  for name, betas in tqdm.tqdm(schedule_list, desc='schedules', unit='schedule',
                               disable=not progress):
    sampling.check_schedule_start(betas, sampling.ScheduleStartOptions.from_config(config), name,
                                  speech_rms, where='evaluation')
    generated, stats = vocode(params, betas, mels, rng, progress=progress,
                              desc=f'{name} ({len(betas)} steps)', **vocode_kwargs)
    rows = score_utterances(generated, refs, config, metrics_fn, measures)
    evaluations = processes.network_evaluations_from_config(config, betas)
    summary = {'num_steps': _num_steps(config, betas), 'network_evaluations': evaluations,
               'betas': [float(b) for b in betas],
               'rtf': stats['synthesis_seconds'] / audio_seconds,
               'synthesis_seconds': stats['synthesis_seconds'],
               'compile_seconds': stats['compile_seconds'], 'batch_size': stats['batch_size'],
               'num_chunks': stats['num_chunks']}
    # Means skip NaN (a diverged sample, PESQ finding no speech); the count says how many diverged.
    summary['nonfinite_utterances'] = int(sum(not np.all(np.isfinite(w)) for w in generated))
    for metric in METRIC_NAMES:
      if metric in rows[0]:
        summary[metric] = _mean([r[metric] for r in rows])
    results['schedules'][name] = summary
    for utt_id, utt, row in zip(ids, utterances, rows):
      results['per_utterance'].append({'schedule': name, 'id': utt_id,
                                       'speaker': utt.get('speaker'), **row})
    if output_dir and e.write_wavs:
      for utt_id, wave in zip(ids, generated):
        synthesize.write_wav(os.path.join(output_dir, 'wavs', name, _safe_id(utt_id) + '.wav'),
                             wave, rate, e.wav_subtype)
  if output_dir:
    write_results(results, output_dir, config)
  return results


def write_results(results, output_dir, config):
  """Writes metrics.json, per_utterance.jsonl and TensorBoard scalars.

  Args:
    results: what `evaluate_utterances` returns.
    output_dir: existing folder; TensorBoard events go to output_dir/tb with tags
      eval_<split>/<schedule>/<metric> at the checkpoint step.
    config: full config (eval.split names the tag).
  """
  per_utt = results['per_utterance']
  summary = {k: v for k, v in results.items() if k != 'per_utterance'}
  with open(os.path.join(output_dir, 'metrics.json'), 'w') as f:
    json.dump(jsonable.finite(summary), f, indent=2)
  with open(os.path.join(output_dir, 'per_utterance.jsonl'), 'w') as f:
    for row in per_utt:
      f.write(json.dumps(jsonable.finite(row)) + '\n')
  import tensorboardX  # only the evaluation writes events.
  step = int(results['step'] or 0)
  split = config.eval.split
  with tensorboardX.SummaryWriter(os.path.join(output_dir, 'tb')) as writer:
    rows = dict(results['schedules'])
    if 'reference' in results:
      rows['reference'] = results['reference']
    for name, sched in rows.items():
      for metric in METRIC_NAMES + ('rtf',):
        value = sched.get(metric)
        if value is not None and math.isfinite(value):
          writer.add_scalar(f'eval_{split}/{name}/{metric}', value, step)


def default_output_dir(workdir, step):
  """workdir/eval/step_<step>."""
  return os.path.join(workdir, 'eval', f'step_{step}')


def evaluation_rng(config):
  """The reverse-diffusion key of an evaluation: PRNGKey(config.eval.seed)."""
  return jax.random.PRNGKey(int(config.eval.seed))


def format_table(results):
  """A plain-text table of the per-schedule means in `results`, and of the reference's DNSMOS."""
  rows = dict(results['schedules'])
  if 'reference' in results:
    rows['reference'] = results['reference']
  perceptual_cols = tuple(c for c in ('dnsmos_ovrl', 'visqol_moslqo')
                          if any(c in r for r in rows.values()))
  cols = ('num_steps', 'ls_mse', 'mrstft', 'mel_l1', 'pesq', 'stoi') + perceptual_cols + ('rtf',)
  widths = [max(11, len(c) + 2) for c in cols]
  lines = [f'{"schedule":<24}' + ''.join(f'{c:>{w}}' for c, w in zip(cols, widths))]
  for name, sched in rows.items():
    cells = []
    for c, w in zip(cols, widths):
      v = sched.get(c)
      cells.append(f'{"-":>{w}}' if v is None else f'{v:>{w}d}' if isinstance(v, int)
                   else f'{v:>{w}.4g}')
    lines.append(f'{name:<24}' + ''.join(cells))
  return '\n'.join(lines)

"""The parity study with the reference PyTorch WaveGrad: its sections, report and plot.

The launcher is experiments/parity.py (its docstring: the venv, the command and the report's
sections); the reference side is experiments/parity_torch.py, passed in as `ref` so that torch is
never a dependency of the library. Data and our trainer: `parity_training`; criteria and weight
conversion: `parity`.
"""
import json
import os
import platform
import time

from absl import logging
import jax
import numpy as np

from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.studies import parity as parity_lib
from wavegrad_jax.studies import parity_training as training


# -------------------------------------------------------------------------------------- sections


def forward_check(config, ref, data, draws):
  """One forward pass of both on held-out crops at fixed levels; returns the error report."""
  p = config.parity
  ours = training.OurTrainer(training.functions_for(config, p.learning_rate, p.max_grad_norm),
                             p.early_seed)
  theirs = ref.build(config, ours.reference_state())
  crops = training.heldout_set(data['heldout'], p.forward_batch_size, draws, p.eval_seed)
  out_ours = ours.forward(crops['noisy'], crops['mel'], crops['noise_level'])
  out_ref = ref.forward(theirs, crops['noisy'], crops['mel'], crops['noise_level'])
  err = np.abs(out_ours.astype(np.float64) - out_ref)
  rel = parity_lib.relative_difference(out_ours, out_ref)
  return {
      'params': model_lib.count_params(ours.params),
      'reference_params': int(sum(v.size for v in ref.state_dict_numpy(theirs).values())),
      'batch_size': p.forward_batch_size,
      'noise_levels': crops['noise_level'].tolist(),
      'max_abs_output': float(np.max(np.abs(out_ref))),
      'max_abs_error': float(err.max()),
      'rms_error': float(np.sqrt(np.mean(err**2))),
      'relative_error': rel,
      'tolerance': p.forward_rtol,
      'agree': rel < p.forward_rtol,
  }


def one_ulp_up(params):
  """Every non-zero weight moved up by one float32 ulp (about 6e-8 relative): the control run."""
  return jax.tree.map(lambda w: np.where(w != 0, np.nextafter(w, np.float32(np.inf)), w),
                      jax.device_get(params))


def early_steps(config, ref, data, draws):
  """The first training steps of both on the same batches; returns their losses and differences.

  A control run of ours from weights one float32 ulp away shows how far float32 rounding alone
  moves the losses: training without warm-up amplifies tiny differences, so later steps drift apart
  by the same amount whichever implementation made the rounding differences.
  """
  p = config.parity
  fns = training.functions_for(config, p.learning_rate, p.max_grad_norm)
  ours = training.OurTrainer(fns, p.early_seed)
  control = training.OurTrainer(fns, p.early_seed, params=one_ulp_up(ours.params))
  start = ours.reference_state()
  theirs = ref.Trainer(ref.build(config, start), p.learning_rate, p.max_grad_norm)
  stream = training.BatchStream(data['train'], p.early_batch_size, draws, p.early_seed)
  losses_ours, losses_ref, losses_control = [], [], []
  for step in range(p.early_steps):
    batch = stream.batch(step)
    losses_ours.append(ours.step(batch))
    losses_ref.append(theirs.step(**batch))
    losses_control.append(control.step(batch))
    logging.info('early step %d: ours %.6f reference %.6f control %.6f', step, losses_ours[-1],
                 losses_ref[-1], losses_control[-1])
  rel = np.abs(np.subtract(losses_ours, losses_ref)) / np.abs(losses_ref)
  rel_control = np.abs(np.subtract(losses_ours, losses_control)) / np.abs(losses_control)
  # How far the weights moved, and how differently: ||d_ours - d_ref|| / ||d_ref|| over all tensors.
  end_ours, end_ref = ours.reference_state(), ref.state_dict_numpy(theirs.model)
  end_control = parity_lib.reference_state_dict(jax.device_get(control.params), fns.film_sources)
  moved = sum(float(np.sum((end_ref[k].astype(np.float64) - start[k])**2)) for k in start)
  apart = lambda other: sum(float(np.sum((end_ours[k].astype(np.float64) - other[k])**2))
                            for k in start)
  return {
      'steps': p.early_steps, 'batch_size': p.early_batch_size, 'learning_rate': p.learning_rate,
      'max_grad_norm': p.max_grad_norm, 'seed': p.early_seed,
      'losses_ours': losses_ours, 'losses_reference': losses_ref,
      'relative_differences': rel.tolist(), 'max_relative_difference': float(rel.max()),
      'losses_ours_one_ulp_control': losses_control,
      'control_relative_differences': rel_control.tolist(),
      'control_max_relative_difference': float(rel_control.max()),
      'tolerance': p.early_loss_rtol,
      'agree': bool(rel.max() < max(p.early_loss_rtol,
                                    p.early_control_factor * rel_control.max())),
      'weight_update_relative_difference': float(np.sqrt(apart(end_ref) / moved)),
      'control_weight_update_relative_difference': float(np.sqrt(apart(end_control) / moved)),
  }


def train_curves(config, ref, data, draws, seed, heldout, with_paper_order):
  """Trains ours and the reference (and optionally ours in the paper's order) on one seed.

  Returns {'ours', 'reference'[, 'paper']: held-out losses at each evaluation,
  'train_ours', ...: mean training loss over each interval, 'step_s_*': median step seconds,
  'forward_relative_error': of the initial weights on the held-out crops}.
  """
  p = config.parity
  peers = training.curve_config(config)
  runs = {'ours': training.OurTrainer(
      training.functions_for(peers, p.curve_learning_rate, p.max_grad_norm), seed)}
  runs['reference'] = ref.Trainer(ref.build(peers, runs['ours'].reference_state()),
                                  p.curve_learning_rate, p.max_grad_norm)
  if with_paper_order:
    # Parameter shapes and initial values do not depend on the dilations: the same seed gives the
    # same weights, so the paper-order run starts from a copy of the peers-order run's.
    paper = training.curve_config(config, parity_lib.PAPER_DILATIONS)
    runs['paper'] = training.OurTrainer(
        training.functions_for(paper, p.curve_learning_rate, p.max_grad_norm), seed,
        params=runs['ours'].params)
  sl = slice(0, p.eval_batch_size)
  first = runs['ours'].forward(heldout['noisy'][sl], heldout['mel'][sl],
                               heldout['noise_level'][sl])
  ref_first = ref.forward(runs['reference'].model, heldout['noisy'][sl], heldout['mel'][sl],
                          heldout['noise_level'][sl])
  result = {name: [] for name in runs}
  result.update({f'train_{name}': [] for name in runs})
  times = {name: [] for name in runs}
  interval = {name: [] for name in runs}
  stream = training.BatchStream(data['train'], p.curve_batch_size, draws, seed)
  for step in range(p.curve_steps + 1):
    if step % p.eval_every == 0 or step == p.curve_steps:
      for name, run in runs.items():
        result[name].append(run.heldout_loss(heldout, p.eval_batch_size))
        if step:
          result[f'train_{name}'].append(float(np.mean(interval[name])))
        interval[name] = []
      logging.info('seed %d step %d held-out %s', seed, step,
                   {k: round(result[k][-1], 5) for k in runs})
    if step == p.curve_steps:
      break
    batch = stream.batch(step)
    for name, run in runs.items():
      t = time.perf_counter()
      interval[name].append(run.step(batch) if name != 'reference' else run.step(**batch))
      times[name].append(time.perf_counter() - t)
  result.update({f'step_s_{name}': float(np.median(t[1:])) for name, t in times.items()})
  result['forward_relative_error'] = parity_lib.relative_difference(first, ref_first)
  return result


def curves_section(config, ref, data, draws):
  """Every seed's curves, their summaries, the overlap verdict and the dilation-order study."""
  p = config.parity
  heldout = training.heldout_set(data['heldout'], p.heldout_crops, draws, p.eval_seed)
  per_seed = []
  start = time.perf_counter()
  for seed in p.seeds:
    per_seed.append(train_curves(config, ref, data, draws, seed, heldout, p.dilation_study))
  wall = time.perf_counter() - start
  eval_steps = sorted({*range(0, p.curve_steps, p.eval_every), p.curve_steps})
  stack = lambda name: [r[name] for r in per_seed]
  peers = training.curve_config(config)
  shapes = jax.eval_shape(lambda: model_lib.init_params_from_config(
      model_lib.build_model_from_config(peers), peers, jax.random.key(0)))
  curves = {
      'topology': {k: peers.model[k] for k in (
          'mel_channels', 'upsample_factors', 'upsample_channels', 'upsample_dilations',
          'waveform_channels', 'downsample_factors', 'downsample_channels')},
      'params': model_lib.count_params(shapes),
      'steps': p.curve_steps, 'batch_size': p.curve_batch_size,
      'learning_rate': p.curve_learning_rate, 'max_grad_norm': p.max_grad_norm,
      'seeds': list(p.seeds), 'eval_steps': eval_steps, 'heldout_crops': p.heldout_crops,
      'ours': stack('ours'), 'reference': stack('reference'),
      'ours_summary': parity_lib.curve_summary(stack('ours')),
      'reference_summary': parity_lib.curve_summary(stack('reference')),
      'overlap': parity_lib.overlap(stack('ours'), stack('reference')),
      'train_loss_ours': stack('train_ours'), 'train_loss_reference': stack('train_reference'),
      'initial_forward_relative_error': stack('forward_relative_error'),
      'step_s_ours': stack('step_s_ours'), 'step_s_reference': stack('step_s_reference'),
      'wall_s': round(wall, 1),
  }
  report = {'curves': curves}
  if p.dilation_study:
    comparison = parity_lib.compare_orders(stack('paper'), stack('ours'), p.final_evals)
    report['dilation_order'] = {
        'paper_order': list(parity_lib.PAPER_DILATIONS),
        'peers_order': list(parity_lib.PEERS_DILATIONS),
        'note': 'ours only, same topology, seeds, initial weights, batches and noise as `curves`; '
                'the peers-order runs are the `curves.ours` runs',
        'paper': stack('paper'), 'peers': stack('ours'),
        'paper_summary': parity_lib.curve_summary(stack('paper')),
        'peers_summary': parity_lib.curve_summary(stack('ours')),
        'train_loss_paper': stack('train_paper'),
        'step_s_paper': stack('step_s_paper'),
        'comparison': comparison,
        'verdict': dilation_verdict(comparison),
    }
  return report


def dilation_verdict(comparison):
  """A sentence on which order learns faster (a = paper, b = peers), honest about the spread.

  An order is called faster only if it scores lower in every seed on every score of
  `parity_lib.compare_orders`.
  """
  area = comparison['area']
  if len(area['a']) < 2:
    return (f'one seed only, no verdict: mean held-out loss over the run {area["a_mean"]:.4f} '
            f'(paper) against {area["b_mean"]:.4f} (peers)')
  if all(score['a_lower_in_every_seed'] for score in comparison.values()):
    winner = 'the paper\'s order learns faster (lower on every score in every seed)'
  elif all(score['b_lower_in_every_seed'] for score in comparison.values()):
    winner = 'the peers\' order learns faster (lower on every score in every seed)'
  else:
    winner = 'neither order is lower on every score in every seed'
  final = comparison['final']
  return (f'{winner}: mean held-out loss over the run {area["a_mean"]:.4f} +- {area["a_std"]:.4f} '
          f'(paper) against {area["b_mean"]:.4f} +- {area["b_std"]:.4f} (peers), paired '
          f'difference {area["paired_diff_mean"]:+.4f} +- {area["paired_diff_std"]:.4f}; at the '
          f'end {final["a_mean"]:.4f} +- {final["a_std"]:.4f} against {final["b_mean"]:.4f} +- '
          f'{final["b_std"]:.4f}, paired {final["paired_diff_mean"]:+.4f} +- '
          f'{final["paired_diff_std"]:.4f}; {len(area["a"])} seeds')


# ------------------------------------------------------------------------------------------ plot


def plot(report, path):
  """Writes a small PNG: first-step losses, held-out curves of both, and the dilation orders."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = 2 + ('dilation_order' in report)
  fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2), dpi=100)
  early = report['early_steps']
  steps = np.arange(1, len(early['losses_ours']) + 1)
  floor = 1e-9  # identical losses would vanish from a log axis.
  axes[0].semilogy(steps, np.maximum(early['relative_differences'], floor), 'o-', ms=4,
                   color='tab:orange', label='ours vs reference')
  axes[0].semilogy(steps, np.maximum(early['control_relative_differences'], floor), 's--', ms=3,
                   color='tab:gray', label='ours vs ours + 1 ulp')
  axes[0].set(title=f'first steps ({report["check_model"]}): loss difference', xlabel='step',
              ylabel='relative difference of the loss')
  axes[0].legend()

  def band(ax, steps, curves, summary, color, label):
    mean, std = np.asarray(summary['mean']), np.asarray(summary['std'])
    for c in curves:
      ax.plot(steps, c, color=color, lw=0.5, alpha=0.5)
    ax.plot(steps, mean, color=color, lw=1.5, label=label)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)

  curves = report['curves']
  seeds = len(curves['seeds'])
  band(axes[1], curves['eval_steps'], curves['reference'], curves['reference_summary'],
       'tab:orange', 'reference (PyTorch)')
  band(axes[1], curves['eval_steps'], curves['ours'], curves['ours_summary'], 'tab:blue',
       'ours (JAX)')
  axes[1].set(title=f'ours vs reference, {seeds} seed(s)', xlabel='step',
              ylabel='held-out L1 loss', yscale='log')
  axes[1].legend()
  if panels == 3:
    d = report['dilation_order']
    band(axes[2], curves['eval_steps'], d['peers'], d['peers_summary'], 'tab:gray',
         "peers' order")
    band(axes[2], curves['eval_steps'], d['paper'], d['paper_summary'], 'tab:green',
         "paper's order")
    axes[2].set(title='dilation order (ours)', xlabel='step', ylabel='held-out L1 loss',
                yscale='log')
    axes[2].legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


# ------------------------------------------------------------------------------------------ run


def run_study(config, ref, output, plot_path, command):
  """Runs every section, writes the JSON report and the plot; returns (report, summary, paths).

  Args:
    config: the parity study config (experiments/configs/parity.py).
    ref: the reference side (experiments/parity_torch.py, imported by the launcher).
    output: the JSON path.
    plot_path: the PNG path ('': beside `output`, .png).
    command: the command line recorded in the report.
  Returns:
    (report, summary, output, plot_path, failed): `failed` names the criteria that failed.
  Raises:
    errors.UserError: parity.check_model is neither 'base' nor 'curve'.
  """
  p = config.parity
  ref.set_threads(p.torch_threads)
  if p.check_model not in ('base', 'curve'):
    raise errors.UserError(f"parity.check_model must be 'base' or 'curve', got {p.check_model!r}")
  start = time.perf_counter()
  data = training.load_crops(config)
  draws = training.make_draws(schedules.noise_levels(schedules.parse_schedule(
      config.diffusion.train_schedule, config.sampling.named_schedules)))
  check = config if p.check_model == 'base' else training.curve_config(config)
  report = {
      'command': command,
      'versions': {'jax': jax.__version__, 'python': platform.python_version(), **ref.versions()},
      'backend': jax.default_backend(),
      'host_cpu_count': os.cpu_count(),
      'data': {**data['files'], 'train_crops': len(data['train']['audio']),
               'heldout_pool_crops': len(data['heldout']['audio']),
               'crop_samples': int(data['train']['audio'].shape[1]),
               'sample_rate': int(config.audio.sample_rate), 'n_mels': int(config.audio.n_mels),
               'source': p.data_dir, 'pattern': p.data_pattern},
      'check_model': p.check_model,
      'parity_config': p.to_dict(),
  }
  t = time.perf_counter()
  report['forward'] = forward_check(check, ref, data, draws)
  report['forward']['wall_s'] = round(time.perf_counter() - t, 1)
  logging.info('forward: %s', report['forward'])
  t = time.perf_counter()
  report['early_steps'] = early_steps(check, ref, data, draws)
  report['early_steps']['wall_s'] = round(time.perf_counter() - t, 1)
  logging.info('early steps: max relative difference %.2e',
               report['early_steps']['max_relative_difference'])
  report.update(curves_section(config, ref, data, draws))
  report['wall_s'] = round(time.perf_counter() - start, 1)
  output = os.path.abspath(output)
  os.makedirs(os.path.dirname(output), exist_ok=True)
  with open(output, 'w') as f:
    json.dump(report, f, indent=1)
  plot_path = plot_path or os.path.splitext(output)[0] + '.png'
  plot(report, plot_path)
  summary = {'forward_relative_error': report['forward']['relative_error'],
             'early_max_relative_difference': report['early_steps']['max_relative_difference'],
             'bands_overlap': report['curves']['overlap']['bands_overlap']}
  if 'dilation_order' in report:
    summary['dilation'] = report['dilation_order']['verdict']
  failed = [name for name, ok in (('forward', report['forward']['agree']),
                                  ('early steps', report['early_steps']['agree']),
                                  ('held-out bands', summary['bands_overlap'] is not False))
            if not ok]
  return report, summary, output, plot_path, failed

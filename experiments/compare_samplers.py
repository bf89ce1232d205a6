r"""Compares the samplers (the paper's, clipped, GLA-Grad, Griffin-Lim alone) on held-out splits.

One command for the README's evaluation table; the logic is `wavegrad_jax.evaluation.compare`: each sampler
vocodes the same utterances of each split with each schedule, from the same reverse-diffusion key,
and is scored with LS-MSE, multi-resolution STFT distance, PESQ, STOI and the real-time factor
(`evaluate.evaluate_utterances`).

  python -m experiments.compare_samplers --workdir=runs/tiny
  python -m experiments.compare_samplers --workdir=runs/tiny --max_utterances=16 --max_seconds=4 \
      --schedules=6,25,50,1000 --samplers=ancestral,gla_grad --splits=unseen
  python -m experiments.compare_samplers --workdir=runs/tiny \
      --config.sampling.noise_scale=beta --config.eval.write_wavs=False

Samplers (`sampling.SAMPLER_PRESETS`), each setting the sampling fields that define it on top of
the inference config's sampling section:
  ancestral           eta = 1: the paper's sampler.
  deterministic       eta = 0: DDIM-style steps on the same continuous noise levels.
  ancestral_clip_y    ancestral, y clamped to [-1, 1] after every step (lmnt-com/wavegrad).
  ancestral_clip_x0   ancestral, the clean estimate clamped to [-1, 1] in every step
                      (ivanvovk/WaveGrad).
  gla_grad            GLA-Grad (Liu et al., ICASSP 2024) exactly as the authors' code runs it:
                      their 32-iteration Griffin-Lim loop (in-place quirks included, momentum
                      0.1) on the step's mean before its noise, on the 3 noisiest steps,
                      rescaled to a 0.95 peak; y clamped to [-1, 1].
  gla_grad_fast       the same with the textbook fast Griffin-Lim the paper describes (what
                      gla_grad was before the authors' loop was added).
  gla_clean_estimate  this project's variant: the same Griffin-Lim on the clean estimate, the
                      noise re-derived, no rescaling or clamping.
  griffin_lim         no model: the same Griffin-Lim alone from the mel's pseudo-inverse magnitude,
                      started from the same noise; it uses no schedule (one row per split).

Writes <output>/results.json (every mean, the settings, the utterance ids and the command),
<output>/table.md (a header line and the markdown table) and, per split and sampler,
<output>/<split>/<sampler>/ with evaluate's metrics.json, per_utterance.jsonl, tb/ and wavs/.
The model, frontend and data come from the checkpoint; `--config.<section>.<field>=value`
overrides its sampling / eval / search sections (experiments/checkpoint_flags.py). RTF is
synthesis wall time (compilation excluded) over the seconds of reference audio, so it depends on
the machine and config.eval's chunking and batch size.
"""
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax.evaluation import compare
from wavegrad_jax import errors
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling

FLAGS = flags.FLAGS
flags.DEFINE_integer('max_utterances', 8, 'Utterances per split (the first in id order; 0: all).')
# 8 x 2.8 s per split. 2.8 s is 241 frames at
# 22.05 kHz / hop 256, two 128-frame chunks of config.eval, so each split fits one batch of 16
# chunks; 3 s would need three chunks per utterance and two batches, twice the time.
flags.DEFINE_float('max_seconds', 2.8, 'Cut each utterance to at most this many seconds '
                   '(0: whole).')
flags.DEFINE_string('schedules', '6', "Comma-separated schedules (names such as '6', "
                    "'linear:..' specs, .json paths; ';' between them if one is 'list:a,b').")
flags.DEFINE_list('samplers', None,
                  f'Samplers to compare, of {list(sampling.SAMPLER_PRESETS)} (default: every '
                  "preset of the run's process: sampling.presets_for).")
flags.DEFINE_list('splits', ['heldout', 'unseen'],
                  f'Splits to evaluate on, of {list(compare.SPLITS)}.')
flags.DEFINE_string('output', None, 'Output folder (default <workdir>/compare_samplers).')
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:  # the command is recorded from sys.argv, flags included.
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  # Everything the user gave is checked before the checkpoint is restored or anything compiled.
  config = checkpoint_flags.preview_config()
  process = processes.process_name_from_config(config)
  presets = sampling.presets_for(process)
  samplers = list(dict.fromkeys(FLAGS.samplers if FLAGS.samplers is not None else presets))
  bad = [s for s in samplers if s not in presets]
  if bad or not samplers:
    other = [s for s in bad if s in sampling.SAMPLER_PRESETS]
    if other:
      raise app.UsageError(f"--samplers: {other} sample another process than this run's "
                           f'{process!r}; choose from {presets}')
    raise app.UsageError(f'--samplers: unknown {bad}; choose from {presets}')
  bad = [s for s in FLAGS.splits if s not in compare.SPLITS]
  if bad or not FLAGS.splits:
    raise app.UsageError(f'--splits: unknown {bad}; choose from {list(compare.SPLITS)}')
  try:
    schedule_list = evaluate.parse_schedule_list(FLAGS.schedules, config=config)
  except ValueError as err:
    raise errors.ConfigError(f'--schedules={FLAGS.schedules}: {err}') from None
  output_dir = FLAGS.output or os.path.join(FLAGS.workdir, 'compare_samplers')
  errors.check_output_dir(output_dir, '--output')
  splits = data_options.prepare_dataset_from_config(config)
  utterances = {s: data_options.heldout_utterances_from_config(
      config, split=s, max_count=FLAGS.max_utterances or None,
      max_seconds=FLAGS.max_seconds or None, splits=splits) for s in dict.fromkeys(FLAGS.splits)}
  for split, found in utterances.items():
    checkpoint_flags.require_utterances(found, split, config)
  params, config, step = checkpoint_flags.load_checkpoint()
  logging.info('step %s; %s; schedules %s; samplers %s -> %s', step,
               ', '.join(f'{len(u)} {s} utterances' for s, u in utterances.items()),
               [n for n, _ in schedule_list], samplers, output_dir)
  model = model_lib.build_model_from_config(config)
  results = compare.compare(sampling.model_eps_fn(model), params, config, utterances,
                            schedule_list, samplers, evaluate.evaluation_rng(config),
                            output_dir=output_dir, step=step)
  command = compare.command_line('experiments.compare_samplers', sys.argv)
  device = compare.device_description()
  results.update(workdir=FLAGS.workdir, ema=bool(config.eval.ema), seed=int(config.eval.seed),
                 max_utterances=FLAGS.max_utterances, max_seconds=FLAGS.max_seconds,
                 device=device, jax_version=jax.__version__, command=command,
                 time=time.strftime('%Y-%m-%d %H:%M:%S'),
                 eval_chunking={k: config.eval[k] for k in ('chunk_frames', 'overlap_frames',
                                                             'batch_size')},
                 wall_seconds=time.perf_counter() - start)
  header = compare.header_line(results, workdir=FLAGS.workdir, device=device, command=command,
                               max_seconds=FLAGS.max_seconds)
  print(compare.write_outputs(results, output_dir, header), end='')
  print(f'wrote {output_dir}/table.md and results.json ({results["wall_seconds"]:.0f} s)')


if __name__ == '__main__':
  cli.run(main)

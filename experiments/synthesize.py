r"""Vocodes wav files (copy synthesis) or .npy mels from any TTS model to wavs with a checkpoint.

  python -m experiments.synthesize --workdir=runs/tiny --input=speech.wav --output_dir=out
  python -m experiments.synthesize --workdir=runs/tiny --input=tts_mels/ --output_dir=out \
      --schedule=25
  python -m experiments.synthesize --workdir=runs/tiny --input=mel.npy --output_dir=out \
      --mel_hop=256 --mel_sample_rate=22050 --schedule=runs/tiny/search/best_N6.json
  python -m experiments.synthesize --workdir=runs/tiny_hifigan --input=tacotron2_mels/ \
      --output_dir=out --mel_convention=hifigan

--input is one file or a folder (searched recursively for .wav/.flac/.ogg/.mp3/.npy; audio files
below --output_dir are outputs and left out); outputs keep the relative paths with a .wav suffix.
A .npy mel is [frames, n_mels]; the output has exactly frames * hop samples.

Mel conventions: by default (--mel_convention=checkpoint) a .npy mel must be made with the
checkpoint's own frontend (natural log, log(max(mel, log_floor)), for the default convention; see
the error message of a mismatch). --mel_convention=hifigan / parallel_wavegan (alias espnet) / espnet2 / lmnt / wavegrad declares the
recipe the mels were made with (experiments/configs/common.py's presets, at that recipe's sizes,
with --mel_hop and --mel_sample_rate in place of its hop and rate, and --mel_stats as ParallelWaveGAN's or
ESPnet's mean-variance statistics file), and --mel_convention=<config .py> its audio section (e.g.
experiments/configs/tiny_espnet.py): a difference the conversion undoes (log base, dB,
normalisation, STFT scaling, filterbank norm) is converted, said in one line; any other (hop, rate,
n_fft, window, bands, band edges, framing) is refused before anything is loaded, naming the fields
and the config that would match. Without --mel_convention, .npy mels whose values look like
another convention's (an ESPnet log10 mel, a mean-variance normalised one) are refused, naming the
likely convention and its flag; --allow_mel_mismatch vocodes them as they are.

Folders at scale: files are read, vocoded in batches and written a group at a time, with a progress
bar. Each wav is written under a temporary name and renamed when complete, and the settings are
recorded in <output_dir>/synthesis.json, so rerunning the same command after a kill vocodes only
what is missing (--overwrite redoes everything; other settings are refused while their wavs are
there). An unreadable or inconsistent input is reported by path with its reason at the end and the
others are still vocoded; the exit status is then 1 (--fail_fast stops at the first instead).
Outputs, inputs and mel conventions are checked before the checkpoint is restored, and nothing is
created when the run cannot start.
"""
import os
import runpy
import sys
import warnings

from absl import app
from absl import flags
from absl import logging
import jax

from experiments import checkpoint_flags
from experiments import cli
from experiments.configs import common
from wavegrad_jax.training import checkpoints
from wavegrad_jax import errors
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.inference import synthesize

# The recipes a --mel_convention names: experiments/configs/common.py's presets.
MEL_PRESETS = {
    'wavegrad': common.audio_config,
    'hifigan': common.audio_config_hifigan,
    'parallel_wavegan': common.audio_config_parallel_wavegan,
    'espnet': common.audio_config_espnet,  # alias of parallel_wavegan
    'espnet2': common.audio_config_espnet2,
    'lmnt': common.audio_config_lmnt,
}

FLAGS = flags.FLAGS
flags.DEFINE_string('input', None, 'A wav / .npy file, or a folder of them.')
flags.DEFINE_string('output_dir', None, 'Where the wavs go (default <workdir>/synth).')
flags.DEFINE_string('schedule', None, 'Inference schedule: a name (6, 25, 50, 1000), a spec or a '
                    '.json file (default config.sampling.schedule).')
flags.DEFINE_string('mel_convention', 'checkpoint',
                    "The frontend the .npy mels were made with: 'checkpoint' (its own), a preset "
                    f"of experiments/configs/common.py ({', '.join(MEL_PRESETS)}), or an "
                    'experiment config file (.py) whose audio section made them; converted where '
                    'invertible.')
flags.DEFINE_string('mel_stats', None, "--mel_convention=parallel_wavegan / espnet / espnet2: the mean-variance statistics "
                    "(ParallelWaveGAN's stats.npy [2, n_mels] or ESPnet's GlobalMVN .npz) the "
                    'mels were normalised with.')
flags.DEFINE_integer('mel_hop', None, 'Hop (samples) the .npy mels were made with: checked '
                     "against the checkpoint's, or the hop of --mel_convention's recipe.")
flags.DEFINE_integer('mel_sample_rate', None, 'Sample rate (Hz) of the .npy mels: checked, or the '
                     "rate of --mel_convention's recipe.")
flags.DEFINE_integer('seed', None, 'Noise seed (default config.eval.seed).')
flags.DEFINE_bool('fail_fast', False, 'Stop at the first unreadable or inconsistent input instead '
                  'of vocoding the others and reporting it at the end.')
flags.DEFINE_bool('mels_only', False, 'Vocode only the .npy mels of --input (e.g. a paired folder '
                  'of mels beside their audio).')
flags.DEFINE_bool('allow_mel_mismatch', False, 'Vocode .npy mels that look like another '
                  'convention than the checkpoint\'s (refused without --mel_convention).')
flags.DEFINE_bool('overwrite', False, 'Vocode every input again, even where a finished wav of an '
                  'earlier run is in --output_dir.')
flags.mark_flags_as_required(['workdir', 'input'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # User errors (bad inputs, outputs, conventions, schedules) are one line each (cli.run).
  if run():
    sys.exit(1)


def _check_stats_flag():
  """--mel_stats names a file (the error names the flag, not audio.stats_file)."""
  if FLAGS.mel_stats and not os.path.isfile(os.path.expanduser(FLAGS.mel_stats)):
    raise errors.UserError(f'--mel_stats={FLAGS.mel_stats}: no such file; give the stats.npy / '
                           '.npz the mels were normalised with')


def declared_audio(checkpoint_audio):
  """The `audio` section the .npy mels were made with, from the --mel_* flags.

  Returns:
    None for --mel_convention=checkpoint, else the preset's section with --mel_hop /
    --mel_sample_rate / --mel_stats applied.
  Raises:
    errors.UserError: --mel_stats with a convention that has no statistics.
  """
  name = FLAGS.mel_convention
  if name != 'checkpoint':
    _check_stats_flag()
  if name == 'checkpoint':
    if FLAGS.mel_stats:
      fe = mel_conventions.frontend(checkpoint_audio)
      raise errors.UserError(
          '--mel_stats declares the statistics of --mel_convention=espnet mels; with '
          f"--mel_convention=checkpoint the checkpoint's own ({mel_conventions.describe(fe)}) "
          'apply')
    return None
  if name.endswith('.py'):
    if not os.path.isfile(name):
      raise errors.UserError(f'--mel_convention={name}: no such config file')
    audio = runpy.run_path(name)['get_config']().audio
    if FLAGS.mel_sample_rate or FLAGS.mel_hop:
      raise errors.UserError('--mel_hop / --mel_sample_rate: the config file given as '
                             '--mel_convention already sets them; edit its audio section')
    if FLAGS.mel_stats:
      if 'meanvar' not in mel_conventions.CONVENTIONS.get(
          mel_conventions.canonical(audio.convention), {}).get('normalize', ()):
        raise errors.UserError(f'--mel_stats: only parallel_wavegan (alias espnet) and espnet2 '
                               f'mels are normalised with a statistics file; {name} declares '
                               f'{audio.convention!r}')
      audio.normalize, audio.stats_file = 'meanvar', FLAGS.mel_stats
    return audio
  if name not in MEL_PRESETS:
    raise errors.UserError(f"--mel_convention must be 'checkpoint', one of {sorted(MEL_PRESETS)} "
                           f'or a config file (.py), got {name!r}')
  kwargs = {}
  if FLAGS.mel_sample_rate:
    kwargs['sample_rate'] = FLAGS.mel_sample_rate
  if FLAGS.mel_hop:
    kwargs['hop_length'] = FLAGS.mel_hop
  if FLAGS.mel_stats:
    if 'meanvar' not in mel_conventions.CONVENTIONS[mel_conventions.canonical(name)]['normalize']:
      raise errors.UserError(f'--mel_stats: only --mel_convention=parallel_wavegan (alias '
                             f'espnet) or espnet2 normalises with a statistics file, not {name}')
    kwargs['stats_file'] = FLAGS.mel_stats
  return MEL_PRESETS[name](**kwargs)


def _expected_step(workdir, config):
  """The step --step will restore, read from directory names (restoring may fall back)."""
  step = checkpoints.parse_step(FLAGS.step)
  if isinstance(step, int):
    return step
  section = config.get('checkpoint', None)
  key = 'best_directory' if step == 'best' else 'directory'
  name = section.get(key) if section is not None else None
  directory = os.path.join(workdir, name or ('checkpoints_best' if step == 'best' else
                                             'checkpoints'))
  steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
  return max(steps) if steps else None


def _settings(config, betas, step, declared):
  """What the wavs depend on besides their inputs: recorded in the output folder."""
  s = config.sampling.to_dict()
  s.pop('named_schedules', None)
  s.pop('schedule', None)
  return {'checkpoint': os.path.abspath(FLAGS.workdir), 'step': step,
          'ema': bool(config.eval.ema), 'betas': [float(b) for b in betas],
          'seed': int(config.eval.seed), 'sampling': s,
          'chunking': {'chunk_frames': int(config.eval.chunk_frames),
                       'overlap_frames': int(config.eval.overlap_frames)},
          'wav_subtype': str(config.eval.wav_subtype),
          'mel_convention': ('checkpoint' if declared is None else
                             mel_conventions.describe(mel_conventions.frontend(declared)))}


# Mels whose convention is checked before the checkpoint is restored; the others as they are read.
_PRECHECKED_MELS = 16


def check_conventions(plan, audio_cfg, mel_hop, mel_rate):
  """Raises SynthesisInputError for the first of the first .npy mels to vocode that looks like
  another convention than the checkpoint's (its likely convention and the flags, in one line).

  A mel that fails another check is left to the run, which reports it with the other bad inputs.
  """
  mels = [job.src for job in plan.todo if synthesize.is_mel_file(job.src)][:_PRECHECKED_MELS]
  for path in mels:
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore', mel_conventions.MelConventionWarning)
        mel = synthesize.load_mel(path, audio_cfg, mel_hop, mel_rate)
    except synthesize.SynthesisInputError:
      continue
    error = synthesize.other_convention_error(mel, audio_cfg, path)
    if error is not None:
      raise error


def run():
  """Checks everything, restores the checkpoint and vocodes FLAGS.input to FLAGS.output_dir.

  Returns:
    {input path: reason} of the inputs that failed.
  """
  output_dir = FLAGS.output_dir or f'{FLAGS.workdir}/synth'
  # Inputs, outputs and conventions first: nothing is restored, compiled or created before.
  inputs = synthesize.collect_inputs(FLAGS.input, exclude=output_dir, mels_only=FLAGS.mels_only)
  synthesize.check_output_dir(output_dir)
  # The checkpoint's config.json with --config / --config.<field> applied; nothing restored yet.
  config = checkpoint_flags.preview_config()
  if FLAGS.seed is not None:
    config.eval.seed = FLAGS.seed
  if checkpoint_flags.EMA.value is not None:
    config.eval.ema = checkpoint_flags.EMA.value
  declared = declared_audio(config.audio)
  mel_hop, mel_rate = FLAGS.mel_hop, FLAGS.mel_sample_rate
  if any(synthesize.is_mel_file(src) for src, _ in inputs):
    if declared is None:
      synthesize.check_frame_rate(config.audio, mel_hop, mel_rate, '--mel_hop/--mel_sample_rate')
    else:
      for line in synthesize.conversion_notes(
          declared, config.audio, f'--mel_convention={FLAGS.mel_convention} mels'):
        print(line)
      mel_hop = mel_rate = None  # they shaped the declared frontend, compared as a whole
  spec = FLAGS.schedule or config.sampling.schedule
  betas = processes.parse_grid(config, spec)
  settings = _settings(config, betas, _expected_step(FLAGS.workdir, config), declared)
  plan = synthesize.plan_synthesis(inputs, output_dir, config.audio, settings=settings,
                                   resume=not FLAGS.overwrite)
  if plan.failed and FLAGS.fail_fast:
    raise synthesize.SynthesisInputError(next(iter(plan.failed.values())))
  if plan.done:
    unreadable = f' ({len(plan.failed)} more cannot be read)' if plan.failed else ''
    print(f'{len(plan.done)} of {len(inputs)} wavs are already in {output_dir} (an earlier run '
          f'finished them); vocoding the other {len(plan.todo)}{unreadable}')
  if plan.unrecorded:
    print(f'{plan.unrecorded} wavs in {output_dir} have no {synthesize.SETTINGS_FILE} record of '
          'how they were made; they are vocoded again')
  refuse_other = declared is None and not FLAGS.allow_mel_mismatch and bool(
      config.eval.check_mel_range)
  if refuse_other:
    check_conventions(plan, config.audio, mel_hop, mel_rate)
  if plan.todo:
    params, config, step = checkpoint_flags.load_checkpoint()
    if FLAGS.seed is not None:
      config.eval.seed = FLAGS.seed
    if step != settings['step']:  # restoring fell back to another checkpoint
      settings = _settings(config, betas, step, declared)
      plan = synthesize.plan_synthesis(inputs, output_dir, config.audio, settings=settings,
                                       resume=not FLAGS.overwrite)
    logging.info('step %s, schedule %s (%d steps), %d inputs -> %s', step, spec, len(betas),
                 len(plan.todo), output_dir)
    model = model_lib.build_model(config)
    vocode = synthesize.chunked_vocoder_from_config(processes.sampler_from_config(model, config),
                                                    config)
    result = synthesize.synthesize_files(
        vocode, params, betas, config, inputs, output_dir,
        jax.random.PRNGKey(int(config.eval.seed)), mel_hop=mel_hop, mel_sample_rate=mel_rate,
        declared=declared, fail_fast=FLAGS.fail_fast, settings=settings, plan=plan,
        refuse_other_convention=refuse_other)
    if result['outputs']:
      print(f'wrote {len(result["outputs"])} wavs to {output_dir}: '
            f'{result["audio_seconds"]:.2f} s of audio in {result["synthesis_seconds"]:.2f} s '
            f'(RTF {result["rtf"]:.3g}, plus {result["compile_seconds"]:.1f} s compiling)')
    if result['mel_warnings']:
      print(f"{result['mel_warnings']} mels look like another convention than declared (the "
            'first warnings above say which)')
    failed = result['failed']
  else:
    failed = plan.failed
    if plan.done:
      print(f'nothing to vocode: {len(plan.done)} wavs already in {output_dir}')
    else:
      print(f'nothing vocoded: all {len(failed)} inputs failed')
  if failed:
    print(f'{len(failed)} of {len(inputs)} inputs failed and were not vocoded:', file=sys.stderr)
    for reason in failed.values():
      print(f'  {reason}', file=sys.stderr)
  return failed


if __name__ == '__main__':
  cli.run(main)

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
import sys

from absl import app
from absl import flags

from experiments import checkpoint_flags
from experiments import cli
from experiments.configs import common
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


def run():
  """Checks everything, restores the checkpoint and vocodes FLAGS.input to FLAGS.output_dir.

  Returns:
    {input path: reason} of the inputs that failed (`synthesize.synthesize_request`).
  """
  request = synthesize.SynthesisRequest(
      workdir=FLAGS.workdir, input=FLAGS.input,
      output_dir=FLAGS.output_dir or f'{FLAGS.workdir}/synth', schedule=FLAGS.schedule,
      step=FLAGS.step, mel_convention=FLAGS.mel_convention, mel_stats=FLAGS.mel_stats,
      mel_hop=FLAGS.mel_hop, mel_sample_rate=FLAGS.mel_sample_rate, seed=FLAGS.seed,
      ema=checkpoint_flags.EMA.value, fail_fast=FLAGS.fail_fast, mels_only=FLAGS.mels_only,
      allow_mel_mismatch=FLAGS.allow_mel_mismatch, overwrite=FLAGS.overwrite)
  return synthesize.synthesize_request(request, checkpoint_flags.preview_config,
                                       checkpoint_flags.load_checkpoint, MEL_PRESETS)


if __name__ == '__main__':
  cli.run(main)

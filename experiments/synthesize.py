r"""Vocodes wav files (copy synthesis) or .npy mels from any TTS model to wavs with a checkpoint.

  python -m experiments.synthesize --workdir=runs/tiny --input=speech.wav --output_dir=out
  python -m experiments.synthesize --workdir=runs/tiny --input=tts_mels/ --output_dir=out \
      --schedule=25
  python -m experiments.synthesize --workdir=runs/tiny --input=mel.npy --output_dir=out \
      --mel_hop=256 --mel_sample_rate=22050 --schedule=runs/tiny/search/best_N6.json

--input is one file or a folder (searched recursively for .wav/.flac/.ogg/.mp3/.npy); outputs keep
the relative paths with a .wav suffix. A .npy mel must be [frames, n_mels], natural log
(log(max(mel, log_floor))), made with the checkpoint's frontend (see the error message of a
mismatch); the output has exactly frames * hop samples.
"""
import sys

from absl import flags
from absl import logging
import jax

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax import model as model_lib
from wavegrad_jax import sampling
from wavegrad_jax import schedules
from wavegrad_jax import synthesize

FLAGS = flags.FLAGS
flags.DEFINE_string('input', None, 'A wav / .npy file, or a folder of them.')
flags.DEFINE_string('output_dir', None, 'Where the wavs go (default <workdir>/synth).')
flags.DEFINE_string('schedule', None, 'Inference schedule: a name (6, 25, 50, 1000), a spec or a '
                    '.json file (default config.sampling.schedule).')
flags.DEFINE_integer('mel_hop', None, 'Hop (samples) the .npy mels were made with; checked.')
flags.DEFINE_integer('mel_sample_rate', None, 'Sample rate (Hz) of the .npy mels; checked.')
flags.DEFINE_integer('seed', None, 'Noise seed (default config.eval.seed).')
flags.mark_flags_as_required(['workdir', 'input'])


def main(argv):
  del argv
  try:
    run()
  except synthesize.SynthesisInputError as e:
    # The message names the file, what differs and the fix; a traceback would only bury it.
    sys.exit(f'error: {e}')


def run():
  """Restores the checkpoint and vocodes FLAGS.input to FLAGS.output_dir."""
  inputs = synthesize.collect_inputs(FLAGS.input)  # fail on a bad path before restoring anything
  params, config, step = checkpoint_flags.load_checkpoint()
  if FLAGS.seed is not None:
    config.eval.seed = FLAGS.seed
  spec = FLAGS.schedule or config.sampling.schedule
  betas = schedules.parse_schedule(spec, config.sampling.named_schedules)
  output_dir = FLAGS.output_dir or f'{FLAGS.workdir}/synth'
  logging.info('step %s, schedule %s (%d steps), %d inputs -> %s', step, spec, len(betas),
               len(inputs), output_dir)
  model = model_lib.build_model(config)
  vocode = synthesize.chunked_vocoder_from_config(sampling.sampler_from_config(model, config),
                                                  config)
  result = synthesize.synthesize_files(
      vocode, params, betas, config, inputs, output_dir, jax.random.PRNGKey(int(config.eval.seed)),
      mel_hop=FLAGS.mel_hop, mel_sample_rate=FLAGS.mel_sample_rate)
  print(f'wrote {len(result["outputs"])} wavs to {output_dir}: {result["audio_seconds"]:.2f} s of '
        f'audio in {result["synthesis_seconds"]:.2f} s (RTF {result["rtf"]:.3g}, plus '
        f'{result["compile_seconds"]:.1f} s compiling)')


if __name__ == '__main__':
  cli.run(main)

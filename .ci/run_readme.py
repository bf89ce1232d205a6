"""Runs every command the README documents, verbatim, from the repository root.

Each ```bash block line that starts with `python -m experiments.` runs in order (the main run first,
then evaluate / synthesize / search on its workdir), then each ```python block. The placeholder
inputs the README names (speech.wav, mel.npy) are made from a real speech clip first. Install and
test lines are skipped: .ci/run has just run them.
"""
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEECH = '/usr/share/sounds/alsa/Front_Center.wav'


def readme_blocks(language):
  """The README's fenced code blocks of one language, as strings."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    text = f.read()
  return re.findall(rf'```{language}\n(.*?)```', text, flags=re.S)


def experiment_commands():
  """Every `python -m experiments.*` line of the README's bash blocks, in order."""
  return [line.strip() for block in readme_blocks('bash') for line in block.splitlines()
          if line.strip().startswith('python -m experiments.')]


def make_inputs():
  """speech.wav (a real clip) and mel.npy (its log-mel with tiny.py's frontend), as documented."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from wavegrad_jax import audio  # pylint: disable=g-import-not-at-top
  cfg = tiny.get_config().audio
  wave = audio.load_audio_for_config(SPEECH, cfg)
  sf.write(os.path.join(ROOT, 'speech.wav'), wave, cfg.sample_rate)
  np.save(os.path.join(ROOT, 'mel.npy'), np.asarray(audio.log_mel_spectrogram(wave, cfg)))


def run(args, label):
  start = time.time()
  print(f'\n=== README: {label}', flush=True)
  subprocess.run(args, cwd=ROOT, check=True)
  print(f'=== ok in {time.time() - start:.0f} s', flush=True)


def main():
  commands = experiment_commands()
  if not commands or 'experiments.main' not in commands[0]:
    sys.exit('README: expected the main run as the first `python -m experiments.` command')
  sys.path.insert(0, ROOT)
  make_inputs()
  for command in commands:
    run(shlex.split(command.replace('python ', sys.executable + ' ', 1)), command)
  for i, block in enumerate(readme_blocks('python')):
    run([sys.executable, '-c', block], f'python block {i + 1}')


if __name__ == '__main__':
  main()

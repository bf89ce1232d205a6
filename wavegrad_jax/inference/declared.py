"""The `audio` section .npy mels were made with, as the synthesizer's --mel_* flags declare it.

--mel_convention names 'checkpoint' (its own frontend), a recipe (a preset `audio` section maker
of experiments/configs/common.py, passed in by the launcher, at --mel_hop / --mel_sample_rate /
--mel_stats) or a config file (.py) whose audio section made the mels. Errors name the flags.
"""
import os
import runpy

from wavegrad_jax import errors
from wavegrad_jax.audio import conventions as mel_conventions


def _check_stats_flag(mel_stats):
  """--mel_stats names a file (the error names the flag, not audio.stats_file)."""
  if mel_stats and not os.path.isfile(os.path.expanduser(mel_stats)):
    raise errors.UserError(f'--mel_stats={mel_stats}: no such file; give the stats.npy / '
                           '.npz the mels were normalised with')


def declared_audio(checkpoint_audio, presets, mel_convention, *, mel_stats=None, mel_hop=None,
                   mel_sample_rate=None):
  """The `audio` section the .npy mels were made with, from the --mel_* flags.

  Args:
    checkpoint_audio: the checkpoint's `audio` section.
    presets: {name: function(**fields) -> audio section}, the recipes --mel_convention may name.
    mel_convention: 'checkpoint', a name of `presets`, or a config file (.py).
    mel_stats: --mel_stats, the mean-variance statistics file (normalised conventions only).
    mel_hop, mel_sample_rate: --mel_hop (samples) and --mel_sample_rate (Hz) of a preset.
  Returns:
    None for 'checkpoint', else the preset's section with mel_hop / mel_sample_rate / mel_stats
    applied.
  Raises:
    errors.UserError: --mel_stats with a convention that has no statistics, or a missing file.
  """
  name = mel_convention
  if name != 'checkpoint':
    _check_stats_flag(mel_stats)
  if name == 'checkpoint':
    if mel_stats:
      fe = mel_conventions.Frontend.from_config(checkpoint_audio)
      raise errors.UserError(
          '--mel_stats declares the statistics of --mel_convention=espnet mels; with '
          f"--mel_convention=checkpoint the checkpoint's own ({mel_conventions.describe(fe)}) "
          'apply')
    return None
  if name.endswith('.py'):
    if not os.path.isfile(name):
      raise errors.UserError(f'--mel_convention={name}: no such config file')
    audio = runpy.run_path(name)['get_config']().audio
    if mel_sample_rate or mel_hop:
      raise errors.UserError('--mel_hop / --mel_sample_rate: the config file given as '
                             '--mel_convention already sets them; edit its audio section')
    if mel_stats:
      if 'meanvar' not in mel_conventions.CONVENTIONS.get(
          mel_conventions.canonical(audio.convention), {}).get('normalize', ()):
        raise errors.UserError(f'--mel_stats: only parallel_wavegan (alias espnet) and espnet2 '
                               f'mels are normalised with a statistics file; {name} declares '
                               f'{audio.convention!r}')
      audio.normalize, audio.stats_file = 'meanvar', mel_stats
    return audio
  if name not in presets:
    raise errors.UserError(f"--mel_convention must be 'checkpoint', one of {sorted(presets)} "
                           f'or a config file (.py), got {name!r}')
  kwargs = {}
  if mel_sample_rate:
    kwargs['sample_rate'] = mel_sample_rate
  if mel_hop:
    kwargs['hop_length'] = mel_hop
  if mel_stats:
    if 'meanvar' not in mel_conventions.CONVENTIONS[mel_conventions.canonical(name)]['normalize']:
      raise errors.UserError(f'--mel_stats: only --mel_convention=parallel_wavegan (alias '
                             f'espnet) or espnet2 normalises with a statistics file, not {name}')
    kwargs['stats_file'] = mel_stats
  return presets[name](**kwargs)

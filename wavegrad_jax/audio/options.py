"""The audio package's edge: its typed option, and the adapter for callers that hold a config.

The typed option of the audio package is `mel_conventions.Frontend` (re-exported here as
`Frontend`): frozen, hashable (a jit static argument or a closure constant), with the same field
names as the `audio` config section it reads in `Frontend.from_config(config.audio)`. Every
function of the package takes a `Frontend` or explicit arguments: build it once at the edge and
pass it down. `load_audio_from_config` is here because it also reads audio.peak_normalize, which
is no part of the frontend (no mel depends on it).
"""
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import frontend as audio_lib

Frontend = mel_conventions.Frontend


def load_audio_from_config(path, audio_cfg):
  """`frontend.load_audio` at audio_cfg.sample_rate (Hz), scaled to audio_cfg.peak_normalize.

  Returns:
    [T] float32 mono waveform.
  """
  return audio_lib.load_audio(path, int(audio_cfg.sample_rate), float(audio_cfg.peak_normalize))

"""WaveGrad Base on LJSpeech-1.1: 22.05 kHz, 80 mels, hop 300 (read from a folder you have)."""
from experiments.configs import base
from experiments.configs import common


def get_config():
  c = base.get_config()   # Base's model and 24-frame crops (7,200 samples = 0.33 s here).
  c.audio = common.audio_config(sample_rate=22050, n_fft=2048, win_length=1200, hop_length=300,
                                n_mels=80, fmin=20.0, fmax=11025.0)
  c.data.source = 'ljspeech'
  c.data.dir = '/path/to/LJSpeech-1.1'   # override: --config.data.dir=...
  return c

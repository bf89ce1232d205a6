"""WaveGrad Base (paper): 24 kHz, 128 mels, hop 300, about 15.9M parameters."""
from experiments.configs import common


def get_config():
  c = common.get_common_config()
  c.audio = common.audio_config(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300,
                                n_mels=128, fmin=20.0, fmax=12000.0)
  c.data.segment_frames = 24    # 7,200 samples = 0.3 s.
  return c

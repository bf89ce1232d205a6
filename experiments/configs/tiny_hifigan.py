"""The tiny WaveGrad for HiFi-GAN / Tacotron 2 mels: one flag, --config=<this file>.

The tiny topology (hop 256) and training, conditioned on HiFi-GAN's mels (meldataset.py: 80 bands,
0-8,000 Hz at 22,050 Hz, ln(max(mel, 1e-5)), (n_fft - hop) / 2 padding), so a TTS model trained for
HiFi-GAN feeds it directly.
"""
from experiments.configs import common
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = common.audio_config_hifigan()
  return c

"""WaveGrad Base at 44.1 kHz, on the mels of HiFi-GAN / BigVGAN-v2's 44 kHz vocoders.

Frontend: BigVGAN-v2 44khz_128band_512x (HiFi-GAN's meldataset.py recipe): n_fft 2048, hop 512,
win 2048, 128 Slaney bands over 0-22,050 Hz, ln(max(mel, 1e-5)), (n_fft - hop) / 2 reflect padding.
Model: Base's channels and dilations with five UBlocks upsampling 8 x 4 x 4 x 2 x 2 = 512 and the
waveform path downsampling 2, 2, 4, 4 to meet them. Reads the embedded 22.05 kHz corpus resampled
unless --config.data.source/dir point at 44.1 kHz data.
"""
from experiments.configs import common


def get_config():
  c = common.get_common_config()
  c.audio = common.audio_config_hifigan(sample_rate=44100, n_fft=2048, win_length=2048,
                                        hop_length=512, n_mels=128, fmin=0.0, fmax=22050.0)
  c.model.upsample_factors = (8, 4, 4, 2, 2)
  c.model.downsample_factors = (2, 2, 4, 4)
  c.data.segment_frames = 26    # 13,312 samples = 0.30 s, Base's crop duration.
  return c

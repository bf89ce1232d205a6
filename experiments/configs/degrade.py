"""How experiments/make_paired_mels.py turns real mels into stand-ins for predicted ones.

See wavegrad_jax/data/predicted_mels.py for the model: smoothing along time and mel bands of the log
mel, plus i.i.d. noise. Override a field with e.g. --degrade.noise_std=0.3.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.time_sigma_frames = 1.5   # Gaussian smoothing along time, std in frames (17 ms at hop 256).
  c.band_sigma = 1.0          # ... and along the mel bands, std in bands.
  c.noise_std = 0.2           # i.i.d. noise per frame and band, std in nats (1.7 dB).
  c.seed = 0                  # noise seed, combined with each utterance id.
  c.clean = False             # True: write the real mels unchanged (a control for the study).
  return c

"""Waveform discriminators for adversarial fine-tuning: multi-period and multi-resolution.

- Multi-period (HiFi-GAN, Kong et al. 2020, arXiv 2010.05646, jik876/hifi-gan models.py
  DiscriminatorP / MultiPeriodDiscriminator): the waveform [B, T] is reflect-padded to a multiple
  of each period p and folded to [B, T / p, p]; 2D convolutions with (k, 1) kernels and (3, 1)
  strides see every p-th sample, so each sub-discriminator judges one periodic structure.
  Periods (2, 3, 5, 7, 11) and channels (32, 128, 512, 1024, 1024) are HiFi-GAN's.
- Multi-resolution, a variant of UnivNet's (Jang et al. 2021, arXiv 2106.07889; Vocos's
  MultiResolutionDiscriminator, gemelo-ai/vocos discriminators.py DiscriminatorR): |STFT|
  [B, frames, bins] at each resolution, 2D convolutions with (3, 9) kernels (frames, bins)
  striding over frequency; UnivNet's layout is [B, 1, bins, frames] and its resolutions differ
  (these are Vocos's).
HiFi-GAN wraps its convolutions in weight normalisation; these are plain convolutions (Adam's
steps are scale-free, and the fine-tune's learning rate is HiFi-GAN's 2e-4). Leaky ReLU slope 0.1
as both.

Every module maps [B, T] float32 waveforms to (logits, features): lists over sub-discriminators of
[B, ...] logits and of their per-layer feature maps (for feature matching). Sizes are fields, so
a CPU-sized discriminator is a config away (`DISCRIMINATORS` in registry.py names them).
"""
from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from wavegrad_jax.audio import frontend as audio

LEAKY_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
  """HiFi-GAN's DiscriminatorP: [B, T] -> ([B, frames * p] logits, feature maps)."""
  period: int
  channels: Sequence[int] = (32, 128, 512, 1024, 1024)
  kernel_size: int = 5
  stride: int = 3

  @nn.compact
  def __call__(self, x):
    batch, length = x.shape
    pad = (-length) % self.period
    if pad:
      x = jnp.pad(x, ((0, 0), (0, pad)), mode='reflect')
    h = x.reshape(batch, -1, self.period, 1)
    features = []
    for i, width in enumerate(self.channels):
      # HiFi-GAN: stride 3 on all but the last of its five convolutions.
      stride = 1 if i == len(self.channels) - 1 else self.stride
      h = nn.Conv(width, (self.kernel_size, 1), strides=(stride, 1),
                  padding=((self.kernel_size // 2, self.kernel_size // 2), (0, 0)),
                  name=f'conv_{i}')(h)
      h = nn.leaky_relu(h, LEAKY_SLOPE)
      features.append(h)
    h = nn.Conv(1, (3, 1), padding=((1, 1), (0, 0)), name='post')(h)
    features.append(h)
    return h.reshape(batch, -1), features


class ResolutionDiscriminator(nn.Module):
  """UnivNet's / Vocos's DiscriminatorR on |STFT|: [B, T] -> ([B, ...] logits, feature maps)."""
  n_fft: int
  hop_length: int
  win_length: int
  channels: int = 32
  num_layers: int = 5

  @nn.compact
  def __call__(self, x):
    batch = x.shape[0]
    h = jnp.abs(audio.stft(x, self.n_fft, self.hop_length, self.win_length))[..., None]
    features = []
    for i in range(self.num_layers):
      first, last = i == 0, i == self.num_layers - 1
      kernel = (3, 3) if last else (3, 9)
      stride = (1, 1) if first or last else (1, 2)
      h = nn.Conv(self.channels, kernel, strides=stride, padding='SAME', name=f'conv_{i}')(h)
      h = nn.leaky_relu(h, LEAKY_SLOPE)
      features.append(h)
    h = nn.Conv(1, (3, 3), padding='SAME', name='post')(h)
    features.append(h)
    return h.reshape(batch, -1), features


class MultiPeriodDiscriminator(nn.Module):
  """HiFi-GAN's MPD: one `PeriodDiscriminator` per period."""
  periods: Sequence[int] = (2, 3, 5, 7, 11)
  channels: Sequence[int] = (32, 128, 512, 1024, 1024)

  @nn.compact
  def __call__(self, x):
    logits, features = [], []
    for p in self.periods:
      out, feats = PeriodDiscriminator(int(p), tuple(self.channels), name=f'period_{p}')(x)
      logits.append(out)
      features.append(feats)
    return logits, features


class MultiResolutionDiscriminator(nn.Module):
  """UnivNet's MRD: one `ResolutionDiscriminator` per (n_fft, hop, win) resolution (samples)."""
  resolutions: Sequence[Tuple[int, int, int]] = ((1024, 256, 1024), (2048, 512, 2048),
                                                 (512, 128, 512))
  channels: int = 32

  @nn.compact
  def __call__(self, x):
    logits, features = [], []
    for i, (n_fft, hop, win) in enumerate(self.resolutions):
      out, feats = ResolutionDiscriminator(int(n_fft), int(hop), int(win), int(self.channels),
                                           name=f'resolution_{i}')(x)
      logits.append(out)
      features.append(feats)
    return logits, features


class Discriminators(nn.Module):
  """Several discriminators as one module: [B, T] -> (logits, features) concatenated in order.

  Attributes:
    members: ((name, module class, ((field, value), ...)), ...): hashable, so the module is a
      static argument; `registry.build_discriminators` makes it from names.
  """
  members: Sequence[Tuple[str, type, tuple]]

  @nn.compact
  def __call__(self, x):
    logits, features = [], []
    for name, cls, fields in self.members:
      out, feats = cls(**dict(fields), name=name)(x)
      logits.extend(out)
      features.extend(feats)
    return logits, features

"""Aliasing, measured: harmonic test tones vocoded from their mels, and the energy that lands
between their harmonics.

A pointwise nonlinearity or a nearest-neighbour upsampler at the sample rate creates components
above the Nyquist frequency that fold back to |((k F0 + fs / 2) mod fs) - fs / 2| for harmonic
numbers k beyond the tone's last one (Wavehax, arXiv 2411.06807); with F0 that does not divide
the sample rate they fall between the harmonics, where a clean vocoder puts nothing (the
benchmark's F0s, 110, 230, 460, 730 and 1030 Hz at 22.05 kHz, put them 30 to 420 Hz away). For a tone
of harmonics k F0 < `max_frequency` (amplitudes 1 / k, fixed random phases), `tone_measures`
reports, on the steady middle of the signal, from a Hann-windowed long-window power spectrum:
  harmonic energy: bins within `bandwidth` Hz (10) of a harmonic;
  interharmonic_db: 10 log10(all other energy below max_frequency / harmonic energy) (aliasing and
    noise together);
  foldback_db: 10 log10(energy within `bandwidth` of the predicted fold-back frequencies of
    harmonics K + 1 .. 4 K that lie away from every harmonic / harmonic energy);
  foldback_excess_db: the energy per bin there over that of the other interharmonic bins: 0 dB
    for a flat floor (noise), positive where the output aliases (its signature alone).
"""
import numpy as np


def harmonic_tone(f0, seconds, sample_rate, max_frequency, peak=0.9, seed=0):
  """[T] float32 tone: sum over k F0 < max_frequency of sin(2 pi k F0 t + phi_k) / k, at `peak`."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  ks = np.arange(1, int((max_frequency - 1e-9) // f0) + 1)
  phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, ks.size)
  wave = np.sum(np.sin(2 * np.pi * f0 * ks[:, None] * t[None] + phases[:, None]) / ks[:, None],
                axis=0)
  return (peak * wave / np.max(np.abs(wave))).astype(np.float32)


def foldback_frequencies(f0, sample_rate, max_frequency, bandwidth, top=4):
  """Fold-back frequencies (Hz) of harmonics K + 1 .. top * K that lie > 2 bandwidth from every
  harmonic of the tone and below max_frequency (K: the tone's harmonic count)."""
  count = int((max_frequency - 1e-9) // f0)
  out = []
  for k in range(count + 1, top * count + 1):
    f = abs(((k * f0 + sample_rate / 2) % sample_rate) - sample_rate / 2)
    nearest = abs(f - f0 * round(f / f0))
    if f < max_frequency and nearest > 2 * bandwidth and f > bandwidth:
      out.append(f)
  return sorted(set(np.round(out, 6)))


def tone_measures(wave, f0, sample_rate, max_frequency, bandwidth=10.0, trim_seconds=0.1):
  """{'harmonic_energy', 'interharmonic_db', 'foldback_db', 'num_foldbacks'} of a waveform.

  Args:
    wave: [T] waveform (the vocoded tone).
    f0: the tone's fundamental (Hz).
    sample_rate: Hz.
    max_frequency: the tone's band edge (Hz).
    bandwidth: half-width (Hz) of a harmonic's bins (and of a fold-back's); the default 10 Hz
      holds a steady harmonic's Hann main lobe at this resolution (about 1.25 Hz bins for 1 s).
    trim_seconds: left out at each end (onsets, chunk edges).
  """
  trim = int(trim_seconds * sample_rate)
  x = np.asarray(wave, np.float64)[trim:len(wave) - trim]
  spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
  freqs = np.fft.rfftfreq(x.size, 1.0 / sample_rate)
  band = (freqs > bandwidth) & (freqs < max_frequency)
  distance = np.abs(freqs - f0 * np.round(freqs / f0))
  harmonic = band & (distance <= bandwidth) & (freqs >= f0 - bandwidth)
  harmonic_energy = float(np.sum(spectrum[harmonic]))
  other = float(np.sum(spectrum[band & ~harmonic]))
  folds = foldback_frequencies(f0, sample_rate, max_frequency, bandwidth)
  fold_mask = np.zeros_like(band)
  for f in folds:
    fold_mask |= np.abs(freqs - f) <= bandwidth
  fold_bins = fold_mask & band & ~harmonic
  rest_bins = band & ~harmonic & ~fold_mask
  fold = float(np.sum(spectrum[fold_bins]))
  tiny = 1e-30
  # Energy per bin at the fold-back frequencies over that of the other interharmonic bins: 0 dB
  # is a flat floor (noise, no aliasing signature); aliasing shows as a positive excess.
  excess = None
  if folds and rest_bins.any():
    excess = 10 * np.log10((fold / fold_bins.sum() + tiny)
                           / (float(np.sum(spectrum[rest_bins])) / rest_bins.sum() + tiny))
  return {'harmonic_energy': harmonic_energy,
          'interharmonic_db': 10 * np.log10((other + tiny) / (harmonic_energy + tiny)),
          'foldback_db': (10 * np.log10((fold + tiny) / (harmonic_energy + tiny))
                          if folds else None),
          'foldback_excess_db': excess, 'num_foldbacks': len(folds)}


def pointwise_nonlinearity(wave, slope=0.2, gain=3.0):
  """A leaky-ReLU distortion at the sample rate (a reference that does alias, for tests)."""
  y = gain * np.asarray(wave, np.float64)
  return np.where(y > 0, y, slope * y).astype(np.float32) / gain

"""A float64 numpy port of the GLA-Grad authors' code, line for line, for tests/test_phase_sampling.py.

From github.com/GLA-Grad/GLA-Grad: src/gla_extension/gla_extension.py (`pseudo_inverse`,
`gla_update`), src/gla_extension/preprocess.py (`get_spec(..., if_mel=False)`) and the inference
loop of its README (lmnt-com/wavegrad's, with `gla_update` between the mean and the noise). Arrays
keep torch's layout, [batch, freq, frames]; torch.stft / torch.istft are transcribed below (hann
window, center=True, reflect padding, onesided). The in-place `tprev.mul_(momentum)` is an in-place
numpy multiply on the same object, so the aliasing of the first iteration (tprev is STFT_P1) acts
exactly as in torch: Python evaluates `STFT_P1`, then `mul_` scales it in place, then subtracts.
"""
import numpy as np


def hann(win):
  """torch.hann_window(win): periodic."""
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)


def _padded_window(n_fft, win):
  left = (n_fft - win) // 2
  return np.pad(hann(win), (left, n_fft - win - left))


def torch_stft(y, n_fft, hop, win, normalized):
  """torch.stft(y [B, T], center=True, pad_mode='reflect', onesided=True): [B, freq, frames]."""
  pad = n_fft // 2
  y = np.pad(y, ((0, 0), (pad, pad)), mode='reflect')
  count = 1 + (y.shape[-1] - n_fft) // hop
  index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
  spec = np.fft.rfft(y[:, index] * _padded_window(n_fft, win), axis=-1)
  if normalized:
    spec = spec / np.sqrt(n_fft)
  return np.swapaxes(spec, -1, -2)


def torch_istft(spec, n_fft, hop, win):
  """torch.istft(spec [B, freq, frames], center=True, normalized=False, length=None)."""
  frames = np.fft.irfft(np.swapaxes(spec, -1, -2), n=n_fft, axis=-1)
  window = _padded_window(n_fft, win)
  count = frames.shape[1]
  total = n_fft + hop * (count - 1)
  out = np.zeros((spec.shape[0], total))
  envelope = np.zeros(total)
  for i in range(count):
    out[:, i * hop:i * hop + n_fft] += frames[:, i] * window
    envelope[i * hop:i * hop + n_fft] += window ** 2
  pad = n_fft // 2
  assert np.all(envelope[pad:total - pad] > 1e-11)  # torch raises otherwise
  return (out / np.where(envelope > 1e-11, envelope, 1.0))[:, pad:total - pad]


def _mul_(tensor, value):
  """torch's in-place Tensor.mul_: scales the array object itself and returns it."""
  tensor *= value
  return tensor


def pseudo_inverse(log_mel, mel_basis):
  """gla_extension.pseudo_inverse for one mel [n_mels, frames]: pinv(mel_basis) @ exp(mel), then
  a batch axis and a zero frame: [1, freq, frames + 1] (no clamp: entries may be negative)."""
  spectrogram_pseudo = np.linalg.pinv(mel_basis) @ np.exp(log_mel)
  spectrogram_pseudo = spectrogram_pseudo[None]
  return np.concatenate([spectrogram_pseudo, np.zeros((1, spectrogram_pseudo.shape[1], 1))],
                        axis=2)


def gla_iterations(audio, spectrogram_pseudo, n_fft, hop, win, iterations, momentum):
  """The body of gla_update for a step it corrects, before the final peak normalisation.

  Returns:
    istft(STFT_P1) after `iterations` iterations, [B, T], and the list of STFT_P1 after each
    iteration (copies).
  """
  stft_in = torch_stft(audio, n_fft, hop, win, normalized=False)
  tprev = np.asarray(0.0)  # as theirs: overwritten at once
  stft_p1 = stft_in
  tprev = stft_p1
  if spectrogram_pseudo.shape[-1] != stft_p1.shape[-1]:
    spectrogram_pseudo = np.pad(spectrogram_pseudo, ((0, 0), (0, 0), (0, 1)))
  history = []
  for _ in range(int(iterations)):
    # 2nd projection
    stft_p2 = spectrogram_pseudo * (
        (stft_p1 - _mul_(tprev, momentum)) / (np.abs(stft_p1) + 1e-12))
    tprev = stft_p1
    # 1st projection
    stft_p1 = torch_stft(torch_istft(stft_p2, n_fft, hop, win), n_fft, hop, win,
                         normalized=True)[:, :, :spectrogram_pseudo.shape[-1]]
    history.append(stft_p1.copy())
  return torch_istft(stft_p1, n_fft, hop, win), history


def gla_update(num_alpha, n, audio, spectrogram_pseudo, n_fft, hop, win, gla_steps=3,
               iterations=32, momentum=0.1):
  """gla_extension.gla_update: the GLA iterations on the first `gla_steps` reverse steps, then
  normalize(audio, p=inf, eps=1e-12) * 0.95; other steps return audio unchanged."""
  if n > (num_alpha - int(gla_steps) - 1):
    audio, _ = gla_iterations(audio, spectrogram_pseudo, n_fft, hop, win, iterations, momentum)
    peak = np.max(np.abs(audio), axis=-1, keepdims=True)
    audio = audio / np.maximum(peak, 1e-12) * 0.95
  return audio


def sample(eps_fn, betas, log_mel, mel_basis, y_start, step_noise, n_fft, hop, win, gla_steps=3,
           iterations=32, momentum=0.1):
  """The README's inference loop with gla_update (lmnt-com/wavegrad's loop), float64.

  Args:
    eps_fn: eps_fn(audio [1, T], n) -> [1, T], the model's noise estimate at step n.
    betas: [N] schedule.
    log_mel: [n_mels, frames] natural-log mel.
    mel_basis: [n_mels, freq] librosa filterbank.
    y_start: [1, T] starting noise; step_noise: [N, 1, T], the noise of step n at index n.
  Returns:
    [N, 1, T]: the audio after steps N-1 .. 0, each clamped as their loop does.
  """
  alpha = 1.0 - np.asarray(betas, np.float64)
  alpha_cum = np.cumprod(alpha)
  spectrogram_pseudo = pseudo_inverse(log_mel, mel_basis)
  audio = np.asarray(y_start, np.float64)
  out = []
  for n in range(len(alpha) - 1, -1, -1):
    c1 = 1 / alpha[n] ** 0.5
    c2 = (1 - alpha[n]) / (1 - alpha_cum[n]) ** 0.5
    audio = c1 * (audio - c2 * eps_fn(audio, n))
    audio = gla_update(len(alpha), n, audio, spectrogram_pseudo, n_fft, hop, win, gla_steps,
                       iterations, momentum)
    if n > 0:
      sigma = ((1.0 - alpha_cum[n - 1]) / (1.0 - alpha_cum[n]) * betas[n]) ** 0.5
      audio = audio + sigma * step_noise[n]
      audio = np.clip(audio, -1.0, 1.0)
    out.append(np.clip(audio, -1.0, 1.0))
  return np.stack(out)

"""The reference side of the parity study: lmnt-com/wavegrad 0.1.5 in PyTorch (CPU).

Needs the parity requirements (experiments/requirements-parity.txt); never imported by the library
or its tests. The models are the reference's own classes: `wavegrad.model.WaveGrad` for Base, and
for a narrower topology a subclass that builds the same module lists from the reference's FiLM,
UBlock, DBlock and Conv1d and inherits its forward unchanged. The training step repeats
`wavegrad.learner.WaveGradLearner.train_step` line for line, except that the noise levels and the
noise are given (so that both implementations see the same draws) instead of drawn inside.
"""
from importlib import metadata

import numpy as np
import torch
from torch import nn
from wavegrad import model as reference
from wavegrad import params as reference_params


class ReducedWaveGrad(reference.WaveGrad):
  """The reference WaveGrad with chosen channel widths and dilations; forward inherited as is.

  Args:
    n_mels: mel bands of the conditioning.
    mel_channels: width of the first conv on the mel (768 in the reference).
    upsample_factors, upsample_channels, upsample_dilations: one entry per UBlock.
    waveform_channels: width of the first conv on the waveform (32).
    downsample_factors, downsample_channels: one entry per DBlock.
  """

  def __init__(self, n_mels, mel_channels, upsample_factors, upsample_channels, upsample_dilations,
               waveform_channels, downsample_factors, downsample_channels):
    nn.Module.__init__(self)  # not WaveGrad.__init__, which builds the fixed Base module lists.
    self.params = reference_params.params
    stages = [waveform_channels, *downsample_channels]
    self.downsample = nn.ModuleList(
        [reference.Conv1d(1, waveform_channels, 5, padding=2)]
        + [reference.DBlock(stages[i], stages[i + 1], f) for i, f in enumerate(downsample_factors)])
    n_up = len(upsample_factors)
    self.film = nn.ModuleList([reference.FiLM(stages[k], upsample_channels[n_up - 1 - k])
                               for k in range(len(stages))])
    inputs = [mel_channels, *upsample_channels[:-1]]
    self.upsample = nn.ModuleList([reference.UBlock(i, o, f, list(d)) for i, o, f, d in zip(
        inputs, upsample_channels, upsample_factors, upsample_dilations)])
    self.first_conv = reference.Conv1d(n_mels, mel_channels, 3, padding=1)
    self.last_conv = reference.Conv1d(upsample_channels[-1], 1, 3, padding=1)


def build(config, state_dict):
  """The reference model for our `config` (Base: the reference's own class) with our weights.

  Args:
    config: our experiment config (reference variant); `model` and `audio.n_mels` are read.
    state_dict: `parity_lib.reference_state_dict` of our initial parameters.
  Returns:
    a float32 torch module in train mode; loading is strict, so a missing or misshapen tensor fails.
  """
  m = config.model
  is_base = (int(config.audio.n_mels) == 128 and int(m.mel_channels) == 768
             and tuple(m.upsample_channels) == (512, 512, 256, 128, 128)
             and int(m.waveform_channels) == 32
             and tuple(m.downsample_channels) == (128, 128, 256, 512)
             and tuple(m.upsample_factors) == (5, 5, 3, 2, 2)
             and tuple(m.downsample_factors) == (2, 2, 3, 5)
             and tuple(map(tuple, m.upsample_dilations)) == (
                 (1, 2, 1, 2), (1, 2, 1, 2), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)))
  if is_base:
    model = reference.WaveGrad(reference_params.params)
  else:
    model = ReducedWaveGrad(int(config.audio.n_mels), int(m.mel_channels),
                            tuple(m.upsample_factors), tuple(m.upsample_channels),
                            tuple(m.upsample_dilations), int(m.waveform_channels),
                            tuple(m.downsample_factors), tuple(m.downsample_channels))
  model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()},
                        strict=True)
  return model.float().train()


def forward(model, noisy_audio, mel, noise_level):
  """The reference forward on numpy input in our layout.

  Args:
    noisy_audio: [B, T] float32.
    mel: [B, frames, n_mels] float32 (transposed to the reference's [B, n_mels, frames]).
    noise_level: [B] float32.
  Returns:
    [B, T] float32 numpy predicted noise.
  """
  with torch.no_grad():
    out = model(torch.from_numpy(np.array(noisy_audio, np.float32)),
                torch.from_numpy(np.ascontiguousarray(np.swapaxes(mel, 1, 2), np.float32)),
                torch.from_numpy(np.array(noise_level, np.float32)))
  return out[:, 0].numpy()


class Trainer:
  """Adam on the reference model, as `WaveGradLearner` (fp16 off) with given levels and noise."""

  def __init__(self, model, learning_rate, max_grad_norm):
    self.model = model
    self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    self.max_grad_norm = max_grad_norm
    self.loss_fn = nn.L1Loss()

  def step(self, audio, mel, noise_level, noise):
    """One update on a batch: audio [B, T], mel [B, frames, n_mels], noise_level [B], noise [B, T].

    Returns the batch's L1 loss before the update (a float).
    """
    for param in self.model.parameters():
      param.grad = None
    audio = torch.from_numpy(np.array(audio, np.float32))
    spectrogram = torch.from_numpy(np.ascontiguousarray(np.swapaxes(mel, 1, 2), np.float32))
    noise_scale = torch.from_numpy(np.array(noise_level, np.float32)).unsqueeze(1)
    noise = torch.from_numpy(np.array(noise, np.float32))
    # From here on as in WaveGradLearner.train_step.
    noisy_audio = noise_scale * audio + (1.0 - noise_scale**2)**0.5 * noise
    predicted = self.model(noisy_audio, spectrogram, noise_scale.squeeze(1))
    loss = self.loss_fn(noise, predicted.squeeze(1))
    loss.backward()
    nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
    self.optimizer.step()
    return float(loss.detach())

  def heldout_loss(self, crops, batch_size):
    """Mean L1 loss on fixed held-out crops: a dict of noisy [N, T], mel, noise_level and noise."""
    total = 0.0
    n = len(crops['noisy'])
    for start in range(0, n, batch_size):
      sl = slice(start, start + batch_size)
      pred = forward(self.model, crops['noisy'][sl], crops['mel'][sl], crops['noise_level'][sl])
      total += float(np.abs(pred - crops['noise'][sl]).astype(np.float64).sum())
    return total / crops['noise'].size


def set_threads(threads):
  """Intra-op threads of torch; on a busy 2-core machine 1 is several times faster than 2."""
  torch.set_num_threads(int(threads))


def state_dict_numpy(model):
  """The model's parameters as {name: float32 numpy array}."""
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def versions():
  """Versions of the reference stack, for the report."""
  return {'torch': torch.__version__, 'wavegrad': metadata.version('wavegrad'),
          'torch_threads': torch.get_num_threads()}

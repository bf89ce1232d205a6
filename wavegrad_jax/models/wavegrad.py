"""The WaveGrad conditional denoiser: DBlocks on the noisy waveform, UBlocks on the mel, FiLM between.

Chen et al. 2020 (arXiv 2009.00713), section 3 and figures 3 to 6; the reference PyTorch code
followed for parity is lmnt-com/wavegrad and ivanvovk/WaveGrad. Layout is channels-last
throughout: waveforms [B, T], feature maps [B, time, channels].

WaveGrad's UBlock dilations are chosen by name, `model.dilation_order` (`DILATION_ORDERS`):
'paper' (the default) or 'reimplementations', each defined for any topology by
`upsample_dilations_for`; 'custom' takes `model.upsample_dilations` as given. The registry
(`registry.py`) records the resolved dilations, so a run's checkpoints always rebuild the same
model.
"""
import math
from typing import Sequence, Tuple

from absl import logging

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
_KERNEL_INIT = nn.initializers.orthogonal()


def _conv(features, kernel_size, dilation=1, dtype=jnp.float32, name=None):
  return nn.Conv(features, (kernel_size,), kernel_dilation=(dilation,), padding='SAME',
                 kernel_init=_KERNEL_INIT, bias_init=nn.initializers.zeros,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


def noise_level_encoding(noise_level, dim, scale):
  """Sinusoidal encoding of the continuous noise level.

  Args:
    noise_level: [B] noise levels sqrt(alpha_bar) in [0, 1].
    dim: even encoding width (channels).
    scale: multiplier applied to the level before encoding (the paper uses 5000).
  Returns:
    [B, dim] float32: sin in the first half, cos in the second.
  """
  if dim % 2:
    raise ValueError(f'noise-level encoding needs an even width, got {dim}')
  half = dim // 2
  freqs = jnp.exp(-math.log(1e4) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = (scale * noise_level.astype(jnp.float32))[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class FiLM(nn.Module):
  """Feature-wise linear modulation from waveform features and the noise level.

  Maps [B, t, C_in] features and [B] noise levels to (shift, scale), each [B, t, features].
  """
  features: int
  encoding_scale: float = 5000.0
  slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, noise_level):
    channels = x.shape[-1]
    h = _conv(channels, 3, dtype=self.dtype, name='input_conv')(x)
    h = nn.leaky_relu(h, self.slope)
    enc = noise_level_encoding(noise_level, channels, self.encoding_scale)
    h = h + enc[:, None, :].astype(h.dtype)
    out = _conv(2 * self.features, 3, dtype=self.dtype, name='output_conv')(h)
    shift, scale = jnp.split(out, 2, axis=-1)
    return shift, scale


class UBlock(nn.Module):
  """Upsampling block on the mel path: [B, t, C_in] -> [B, t * factor, features]."""
  features: int
  factor: int
  dilations: Sequence[int]
  slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, shift, scale):
    if len(self.dilations) != 4:
      raise ValueError(f'a UBlock takes 4 dilations, got {tuple(self.dilations)}')
    up = lambda h: jnp.repeat(h, self.factor, axis=1)  # nearest-neighbour upsampling
    act = lambda h: nn.leaky_relu(h, self.slope)
    d = self.dilations
    residual = _conv(self.features, 1, dtype=self.dtype, name='residual_conv')(up(x))
    h = _conv(self.features, 3, d[0], self.dtype, name='conv_0')(up(act(x)))
    h = act(shift + scale * h)
    h = _conv(self.features, 3, d[1], self.dtype, name='conv_1')(h)
    x = residual + h
    h = act(shift + scale * x)
    h = _conv(self.features, 3, d[2], self.dtype, name='conv_2')(h)
    h = act(shift + scale * h)
    h = _conv(self.features, 3, d[3], self.dtype, name='conv_3')(h)
    return x + h


class DBlock(nn.Module):
  """Downsampling block on the waveform path: [B, t, C_in] -> [B, t / factor, features]."""
  features: int
  factor: int
  dilations: Sequence[int] = (1, 2, 4)
  mode: str = 'interpolate'
  slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.mode == 'interpolate':
      down = lambda h: h[:, ::self.factor]  # nearest-neighbour decimation
      residual = down(_conv(self.features, 1, dtype=self.dtype, name='residual_conv')(x))
      h = down(x)
    elif self.mode == 'conv':
      strided = lambda name, f: nn.Conv(f, (self.factor,), strides=(self.factor,), padding='VALID',
                                        kernel_init=_KERNEL_INIT, dtype=self.dtype,
                                        param_dtype=jnp.float32, name=name)
      residual = strided('residual_conv', self.features)(x)
      h = strided('downsample_conv', x.shape[-1])(x)
    else:
      raise ValueError(f"downsample_mode must be 'interpolate' or 'conv', got {self.mode!r}")
    for i, dilation in enumerate(self.dilations):
      h = _conv(self.features, 3, dilation, self.dtype, name=f'conv_{i}')(
          nn.leaky_relu(h, self.slope))
    return h + residual


def _factorizations(n, count, largest):
  """Non-increasing lists of `count` integers in [2, largest] multiplying to n."""
  if count == 1:
    return [(n,)] if 2 <= n <= largest else []
  out = []
  for f in range(min(n, largest), 1, -1):
    if n % f == 0:
      out.extend((f,) + rest for rest in _factorizations(n // f, count - 1, f))
  return out


def upsample_factor_suggestions(hop_length, count, limit=3):
  """Upsampling factor lists that multiply to `hop_length`, most balanced first.

  Args:
    hop_length: the mel hop in samples.
    count: UBlocks wanted (the length of the model's factor list); other counts are tried (nearest
      first) when the hop has no factorisation into that many factors >= 2.
    limit: most lists returned.
  Returns:
    list of (upsample_factors, downsample_factors) tuples: factors largest first, as the paper's
    (5, 5, 3, 2, 2), and the downsample factors whose running products meet every UBlock's
    resolution (the upsample factors after the first, reversed).
  """
  for c in sorted(range(1, 9), key=lambda c: (abs(c - count), -c)):
    lists = sorted(_factorizations(int(hop_length), c, int(hop_length)),
                   key=lambda f: (max(f), -min(f), sum(x * x for x in f)))
    if lists:
      return [(f, tuple(reversed(f[1:]))) for f in lists[:limit]]
  return []


def validate_topology(topology, hop_length):
  """Checks that a model topology fits a frontend; raises ValueError naming the fix.

  Args:
    topology: a `WaveGrad` module (or anything with its fields upsample_factors,
      upsample_channels, upsample_dilations, downsample_factors, downsample_channels).
    hop_length: the frontend's hop in samples.

  Returns, for each UBlock, the index of the waveform-path stage (0 = the input conv, k = after
  DBlock k) whose time resolution equals the UBlock's output, which feeds that UBlock's FiLM.
  """
  up = tuple(topology.upsample_factors)
  down = tuple(topology.downsample_factors)
  if len(topology.upsample_channels) != len(up):
    raise ValueError(f'upsample_channels has {len(topology.upsample_channels)} entries but '
                     f'upsample_factors has {len(up)}: give one channel count per UBlock')
  if len(topology.upsample_dilations) != len(up):
    raise ValueError(f'upsample_dilations has {len(topology.upsample_dilations)} entries but '
                     f'upsample_factors has {len(up)}: give one dilation tuple per UBlock')
  if len(topology.downsample_channels) != len(down):
    raise ValueError(f'downsample_channels has {len(topology.downsample_channels)} entries but '
                     f'downsample_factors has {len(down)}: give one channel count per DBlock')
  if int(np.prod(up)) != hop_length:
    works = '; '.join(f'upsample_factors={u} with downsample_factors={d}'
                      for u, d in upsample_factor_suggestions(hop_length, len(up)))
    raise ValueError(f'upsample factors {up} multiply to {int(np.prod(up))}, but the mel hop is '
                     f'{hop_length} samples: each mel frame must expand to exactly one hop. '
                     'Change model.upsample_factors (and the channels and dilations per UBlock, '
                     'downsample_factors to match) or audio.hop_length. Factor lists for hop '
                     f'{hop_length}: {works}.')
  # Samples per time step at each waveform-path stage.
  stage_strides = [1] + [int(s) for s in np.cumprod(down)]
  film_sources = []
  stride = hop_length
  for i, factor in enumerate(up):
    if stride % factor:
      raise ValueError(f'UBlock {i} upsamples by {factor}, which does not divide {stride}')
    stride //= factor
    if stride not in stage_strides:
      raise ValueError(f'UBlock {i} outputs one step per {stride} samples, but the waveform path '
                       f'(downsample factors {down}) has strides {stage_strides}: choose '
                       'downsample_factors whose running products include every UBlock resolution')
    film_sources.append(stage_strides.index(stride))
  return tuple(film_sources)


class WaveGrad(nn.Module):
  """The denoiser eps_theta(y_n, mel, l); the paper's topology comes from its fields.

  Attributes:
    hop_length: mel hop in samples; must equal the product of the upsample factors.
    mel_channels: width of the conv on the mel before the UBlocks.
    upsample_factors: per UBlock, its time upsampling factor (their product is hop_length).
    upsample_channels: per UBlock, its output channels.
    upsample_dilations: per UBlock, the 4 dilations of its convs.
    waveform_channels: width of the conv on the noisy waveform before the DBlocks.
    downsample_factors: per DBlock, its time downsampling factor; their running products must
      include every UBlock's output resolution (the FiLM inputs).
    downsample_channels: per DBlock, its output channels.
    downsample_dilations: the dilations of every DBlock's convs.
    downsample_mode: 'interpolate' (decimation) or 'conv' (strided conv, as the paper).
    noise_encoding_scale: multiplier of the noise level in its sinusoidal encoding (5000).
    leaky_relu_slope: negative slope of every leaky ReLU.
    dtype: compute dtype name ('float32' or 'bfloat16'); parameters stay float32.
  """
  hop_length: int
  mel_channels: int
  upsample_factors: Tuple[int, ...]
  upsample_channels: Tuple[int, ...]
  upsample_dilations: Tuple[Tuple[int, ...], ...]
  waveform_channels: int
  downsample_factors: Tuple[int, ...]
  downsample_channels: Tuple[int, ...]
  downsample_dilations: Tuple[int, ...]
  downsample_mode: str
  noise_encoding_scale: float
  leaky_relu_slope: float
  dtype: str

  def setup(self):
    c = self
    self.film_sources = validate_topology(c, self.hop_length)
    dtype = jnp.dtype(c.dtype)
    slope = c.leaky_relu_slope
    self.waveform_conv = _conv(c.waveform_channels, 5, dtype=dtype)
    self.dblocks = [DBlock(ch, f, tuple(c.downsample_dilations), c.downsample_mode, slope, dtype)
                    for ch, f in zip(c.downsample_channels, c.downsample_factors)]
    self.films = [FiLM(ch, c.noise_encoding_scale, slope, dtype) for ch in c.upsample_channels]
    self.mel_conv = _conv(c.mel_channels, 3, dtype=dtype)
    self.ublocks = [UBlock(ch, f, tuple(d), slope, dtype) for ch, f, d in
                    zip(c.upsample_channels, c.upsample_factors, c.upsample_dilations)]
    self.output_conv = _conv(1, 3, dtype=dtype)

  def __call__(self, noisy_audio, mel, noise_level):
    """Predicts the noise in `noisy_audio`.

    Args:
      noisy_audio: [B, T] float, the noisy waveform y_n; T = frames * hop_length samples.
      mel: [B, frames, n_mels] log-mel conditioning.
      noise_level: [B] continuous noise level sqrt(alpha_bar) of y_n.
    Returns:
      [B, T] float32 predicted noise.
    """
    if noisy_audio.ndim != 2 or mel.ndim != 3:
      raise ValueError(f'expected noisy_audio [B, T] and mel [B, frames, n_mels], got shapes '
                       f'{noisy_audio.shape} and {mel.shape}')
    batch, length = noisy_audio.shape
    if mel.shape[0] != batch or length != mel.shape[1] * self.hop_length:
      raise ValueError(f'noisy audio of shape {noisy_audio.shape} does not match mel of shape '
                       f'{mel.shape}: T must equal frames * hop_length = {mel.shape[1]} * '
                       f'{self.hop_length} = {mel.shape[1] * self.hop_length}. Crop the audio '
                       'to a whole number of hops and compute the mel from it.')
    noise_level = jnp.broadcast_to(jnp.asarray(noise_level, jnp.float32).reshape(-1), (batch,))
    h = self.waveform_conv(noisy_audio[..., None])
    stages = [h]
    for block in self.dblocks:
      h = block(h)
      stages.append(h)
    x = self.mel_conv(mel)
    for block, film, source in zip(self.ublocks, self.films, self.film_sources):
      shift, scale = film(stages[source], noise_level)
      x = block(x, shift, scale)
    return self.output_conv(x)[..., 0].astype(jnp.float32)


# ----------------------------------------------------------------------------- dilation orders


# The two dilation patterns of the paper's UBlocks (Appendix A), for the 4 convs of a block.
LONG_DILATIONS = (1, 2, 4, 8)
SHORT_DILATIONS = (1, 2, 1, 2)
# Output strides (samples per step) from which the paper's order uses the long pattern: Base's
# x5, x5, x3 UBlocks end at strides 60, 12 and 4, its x2, x2 blocks at 2 and 1.
PAPER_LONG_MIN_STRIDE = 4
DILATION_ORDERS = ('paper', 'reimplementations', 'custom')


def ublock_output_strides(upsample_factors):
  """Samples per time step after each UBlock: [prod(factors[i + 1:]) for each block i]."""
  factors = [int(f) for f in upsample_factors]
  return tuple(int(np.prod(factors[i + 1:])) for i in range(len(factors)))


def upsample_dilations_for(order, upsample_factors):
  """The UBlock dilations of a named order, for any list of upsampling factors.

  'paper' (WaveGrad, Appendix A: "1, 2, 4, 8 for the first three UBlocks and 1, 2, 1, 2 for the
  rest", counted from the mel): LONG_DILATIONS on every UBlock whose output has a stride of at
  least PAPER_LONG_MIN_STRIDE samples, SHORT_DILATIONS on the finer ones. Base (x5, x5, x3, x2, x2;
  strides 60, 12, 4, 2, 1) gets long, long, long, short, short; tiny (x4 four times; strides 64,
  16, 4, 1) long x3 then short; Large (strides 60, 60, 12, 4, 4, 2, 1) long x5 then short x2.
  'reimplementations': the paper's list in reverse block order, as lmnt-com/wavegrad and
  ivanvovk/WaveGrad build Base (short, short, long, long, long): the long dilations sit on the
  finest resolutions, which halves Base's dilated receptive field on the mel path.

  Args:
    order: 'paper' or 'reimplementations'.
    upsample_factors: per UBlock, its upsampling factor (nearest the mel first).
  Returns:
    tuple of one 4-tuple of dilations per UBlock.
  Raises:
    ValueError: another order name.
  """
  if order not in ('paper', 'reimplementations'):
    raise ValueError(f"a dilation order to derive is 'paper' or 'reimplementations', got {order!r}")
  paper = tuple(LONG_DILATIONS if stride >= PAPER_LONG_MIN_STRIDE else SHORT_DILATIONS
                for stride in ublock_output_strides(upsample_factors))
  return paper if order == 'paper' else paper[::-1]


def dilation_order_of(upsample_dilations, upsample_factors):
  """The name of the order that explicit dilations follow: 'paper', 'reimplementations' or 'custom'.

  Args:
    upsample_dilations: per UBlock, its 4 dilations.
    upsample_factors: per UBlock, its upsampling factor.
  Returns:
    the first of 'paper', 'reimplementations' whose `upsample_dilations_for` equals the given
    dilations, else 'custom'.
  """
  given = _as_field(upsample_dilations)
  for order in ('paper', 'reimplementations'):
    if given == upsample_dilations_for(order, upsample_factors):
      return order
  return 'custom'


_CONTRADICTIONS_WARNED = set()


def _as_field(value):
  # ConfigDicts loaded from JSON hold lists; module fields are hashable tuples.
  if isinstance(value, (list, tuple)):
    return tuple(_as_field(v) for v in value)
  return value


def resolve_dilations(upsample_factors, dilation_order='custom', upsample_dilations=()):
  """The (order name, dilations) a `model` section's three dilation fields mean.

  Rules: with `upsample_dilations` empty, the named order ('paper', 'reimplementations') derives
  them from the upsampling factors (`upsample_dilations_for`). Explicit `upsample_dilations` are
  used as given ('custom'), as in configs written before orders had names; when they contradict
  a named `dilation_order` a warning says which one is used, once. The returned name is that of
  the order the dilations follow (`dilation_order_of`), so equal dilations always carry equal
  names.

  Args:
    upsample_factors: per UBlock, its upsampling factor (model.upsample_factors).
    dilation_order: model.dilation_order (sections without one mean 'custom').
    upsample_dilations: model.upsample_dilations, per UBlock its 4 dilations, or empty.
  Returns:
    (order name, tuple of 4-tuples).
  Raises:
    ValueError: an unknown order name, or 'custom' without dilations; the message names the fix.
  """
  order = dilation_order
  factors = tuple(upsample_factors)
  given = _as_field(upsample_dilations or ())
  if order not in DILATION_ORDERS:
    raise ValueError(
        f"config.model.dilation_order must be one of {DILATION_ORDERS}, got {order!r}: 'paper' "
        "(the paper's Appendix A, the default), 'reimplementations' (the order of lmnt-com/wavegrad "
        "and ivanvovk/WaveGrad), or 'custom' with model.upsample_dilations given")
  if not given:
    if order == 'custom':
      raise ValueError("config.model.dilation_order='custom' needs model.upsample_dilations (one "
                       "4-tuple per UBlock); or choose dilation_order='paper' / 'reimplementations'")
    return order, upsample_dilations_for(order, factors)
  follows = dilation_order_of(given, factors)
  if order != 'custom' and follows != order:
    key = (order, factors, given)
    if key not in _CONTRADICTIONS_WARNED:
      _CONTRADICTIONS_WARNED.add(key)
      logging.warning(
          "config.model.upsample_dilations=%s is given, so it is used ('custom'); it is not the "
          "%r order of upsample factors %s (%s), which model.dilation_order names. Set "
          'model.upsample_dilations=() to use the named order, or dilation_order=%r.', given,
          order, factors, upsample_dilations_for(order, factors), follows)
  return follows, given



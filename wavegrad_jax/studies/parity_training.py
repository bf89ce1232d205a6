"""The parity study's data and our side: speech crops, shared noise draws, our jitted trainer.

Used by `wavegrad_jax.studies.parity_study` (the sections of the comparison with the reference
PyTorch WaveGrad, lmnt-com/wavegrad 0.1.5); the criteria and weight conversion are
`wavegrad_jax.studies.parity`. Both sides see the same batches, levels and noise drawn here.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wavegrad_jax import models as model_lib
from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options
from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax.studies import parity as parity_lib


# -------------------------------------------------------------------------------------------- data


def load_crops(config):
  """Real speech crops with their log-mels: {'train': {...}, 'heldout': {...}, 'files': {...}}.

  Each split holds 'audio' [N, T] float32 (T = segment_frames * hop samples) and 'mel'
  [N, segment_frames, n_mels], the mel computed on the crop itself by our frontend.
  """
  p, a = config.parity, config.audio
  crop_samples = int(config.data.segment_frames) * int(a.hop_length)
  files = parity_lib.speech_files(p.data_dir, p.data_pattern)
  train_files, heldout_files = parity_lib.split_files(files, p.heldout_every, p.max_train_files,
                                                      p.max_heldout_files)
  fe = mel_conventions.Frontend.from_config(a)
  mel_fn = jax.jit(lambda x: audio_lib.log_mel_spectrogram(x, fe))
  out = {'files': {'train': len(train_files), 'heldout': len(heldout_files)}}
  for split, names in (('train', train_files), ('heldout', heldout_files)):
    crops = np.concatenate([parity_lib.cut_crops(audio_options.load_audio_from_config(f, a),
                                                 crop_samples, p.min_peak) for f in names])
    if not len(crops):
      raise ValueError(f'no {split} crop of {crop_samples} samples above peak {p.min_peak}: '
                       'raise max_train_files / max_heldout_files or lower min_peak')
    mels = []
    for start in range(0, len(crops), p.mel_batch):
      chunk = crops[start:start + p.mel_batch]
      padded = np.pad(chunk, ((0, p.mel_batch - len(chunk)), (0, 0)))  # one compiled shape.
      mels.append(np.asarray(mel_fn(padded))[:len(chunk)])
    out[split] = {'audio': crops, 'mel': np.concatenate(mels)}
  return out


def make_draws(levels):
  """A jitted (key, batch, samples) -> (noise levels [B], noise [B, T]) with the paper's sampler."""
  @jax.jit
  def draws(key, clean):
    level_key, noise_key = jax.random.split(key)
    noise_level = diffusion.sample_noise_level(level_key, levels, clean.shape[0])
    return noise_level, jax.random.normal(noise_key, clean.shape, jnp.float32)
  return draws


def heldout_set(crops, count, draws, seed):
  """`count` fixed held-out crops spread over the pool, with fixed levels, noise and noisy input."""
  idx = np.linspace(0, len(crops['audio']) - 1, count).round().astype(int)
  audio = crops['audio'][idx]
  level, noise = draws(jax.random.key(seed), audio)
  noisy = diffusion.add_noise(jnp.asarray(audio), noise, level)
  return {'audio': audio, 'mel': crops['mel'][idx], 'noise_level': np.asarray(level),
          'noise': np.asarray(noise), 'noisy': np.asarray(noisy)}


class BatchStream:
  """The training batches of one seed: crop indices from numpy, levels and noise from JAX keys."""

  def __init__(self, crops, batch_size, draws, seed):
    self.crops, self.batch_size, self.draws = crops, batch_size, draws
    self.rng = np.random.default_rng(seed)
    self.key = jax.random.key(seed)

  def batch(self, step):
    """The batch of `step`: {'audio', 'mel', 'noise_level', 'noise'} as numpy float32."""
    idx = self.rng.integers(0, len(self.crops['audio']), self.batch_size)
    audio = self.crops['audio'][idx]
    level, noise = self.draws(jax.random.fold_in(self.key, step), audio)
    return {'audio': audio, 'mel': self.crops['mel'][idx], 'noise_level': np.asarray(level),
            'noise': np.asarray(noise)}


# ------------------------------------------------------------------------------------- our side


class OurFunctions:
  """Our model's jitted init, train step and forward for one config, compiled once for all seeds."""

  def __init__(self, config, learning_rate, max_grad_norm):
    self.config = config
    self.model = model_lib.build_model_from_config(config)
    self.film_sources = model_lib.validate_topology(self.model, config.audio.hop_length)
    parity_lib.check_reference_topology(config.model, self.film_sources)
    self.init = jax.jit(lambda key: model_lib.init_params_from_config(self.model, config, key))
    self.tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))
    apply = lambda params, noisy, mel, level: self.model.apply({'params': params}, noisy, mel,
                                                               level)

    def loss_fn(params, audio, mel, level, noise):
      noisy = diffusion.add_noise(audio, noise, level)
      return diffusion.l1_loss(apply(params, noisy, mel, level), noise)

    def step(params, opt_state, audio, mel, level, noise):
      loss, grads = jax.value_and_grad(loss_fn)(params, audio, mel, level, noise)
      updates, opt_state = self.tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    self.step = jax.jit(step, donate_argnums=(0, 1))
    self.apply = jax.jit(apply)


class OurTrainer:
  """Our model trained with optax Adam and global-norm clipping, stepped on given levels and noise.

  Starts from `params` when given (an identical copy), else from our initialiser with `seed`.
  """

  def __init__(self, functions, seed, params=None):
    self.fns = functions
    self.params = (functions.init(jax.random.key(seed)) if params is None
                   else jax.tree.map(jnp.copy, params))
    self.opt_state = functions.tx.init(self.params)

  def step(self, batch):
    """One update; returns the batch's L1 loss before it (a float)."""
    self.params, self.opt_state, loss = self.fns.step(
        self.params, self.opt_state, batch['audio'], batch['mel'], batch['noise_level'],
        batch['noise'])
    return float(loss)

  def forward(self, noisy, mel, level):
    """Predicted noise [B, T] as numpy."""
    return np.asarray(self.fns.apply(self.params, noisy, mel, level))

  def heldout_loss(self, crops, batch_size):
    """Mean L1 loss on the fixed held-out crops."""
    total = 0.0
    for start in range(0, len(crops['noisy']), batch_size):
      sl = slice(start, start + batch_size)
      pred = self.forward(crops['noisy'][sl], crops['mel'][sl], crops['noise_level'][sl])
      total += float(np.abs(pred - crops['noise'][sl]).astype(np.float64).sum())
    return total / crops['noise'].size

  def reference_state(self):
    """Our current parameters in the reference's names and layout."""
    return parity_lib.reference_state_dict(jax.device_get(self.params), self.fns.film_sources)


_FUNCTIONS = {}


def functions_for(config, learning_rate, max_grad_norm):
  """`OurFunctions` for this model config and optimiser, built once per process."""
  key = (config.model.to_json(), config.audio.to_json(), learning_rate, max_grad_norm)
  if key not in _FUNCTIONS:
    _FUNCTIONS[key] = OurFunctions(config, learning_rate, max_grad_norm)
  return _FUNCTIONS[key]


def curve_config(config, dilations=parity_lib.PEERS_DILATIONS):
  """`config` with the narrow curve topology (reference variant, the given dilation order)."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    for key, value in c.parity.curve_model.items():
      c.model[key] = value
    parity_lib.reference_variant(c.model, dilations)
  return c

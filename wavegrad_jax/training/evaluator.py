"""Evaluation during training: the held-out loss on fixed crops, and vocoded held-out examples.

The held-out crops and their noise key are fixed for the whole run, so successive held-out losses
differ only by the parameters (as a validation loss should); the examples are vocoded with the EMA
parameters and written as wavs, TensorBoard audio and mel images by process 0.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax import processes
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import parallel
from wavegrad_jax.training import reporting
from wavegrad_jax.training.step import compile_eval_step


def heldout_crops(utterances, segment_frames, hop_length, count):
  """A fixed set of `count` aligned (audio, mel) crops from held-out utterances.

  Crops are non-overlapping, taken round-robin over utterances so that many utterances are
  represented; when the utterances hold fewer than `count` crops, the list repeats (the noise
  drawn for repeats differs).

  Args:
    utterances: list of {'audio': [T] float32, 'mel': [F, n_mels] float32} with F = T // hop.
    segment_frames: mel frames per crop.
    hop_length: samples per mel frame.
    count: crops wanted.
  Returns:
    {'audio': [count, segment_frames * hop] float32, 'mel': [count, segment_frames, n_mels]}, or
    None when no utterance is long enough.
  """
  per_utt = []
  for u in utterances:
    frames = min(len(u['mel']), len(u['audio']) // hop_length)
    per_utt.append([(u, j * segment_frames) for j in range(frames // segment_frames)])
  order = []
  for k in range(max((len(c) for c in per_utt), default=0)):
    order.extend(c[k] for c in per_utt if k < len(c))
  if not order:
    return None
  picks = [order[i % len(order)] for i in range(count)]
  seg = segment_frames * hop_length
  return {
      'audio': np.stack([np.asarray(u['audio'][f * hop_length:f * hop_length + seg], np.float32)
                         for u, f in picks]),
      'mel': np.stack([np.asarray(u['mel'][f:f + segment_frames], np.float32) for u, f in picks]),
  }


def example_mels(utterances, frames, floor):
  """Pads/crops example mels to `frames` so one sampler compilation serves them all.

  Args:
    utterances: list of {'mel': [F_i, n_mels]}.
    frames: common length in mel frames.
    floor: mel value of silence in the frontend's convention (a float, or [n_mels]), the padding.
  Returns:
    ([K, frames, n_mels] float32, [K] int32 real frame counts).
  """
  n_mels = utterances[0]['mel'].shape[-1]
  mels = np.full((len(utterances), frames, n_mels), floor, np.float32)
  lengths = np.zeros(len(utterances), np.int32)
  for i, u in enumerate(utterances):
    m = np.asarray(u['mel'][:frames], np.float32)
    mels[i, :len(m)] = m
    lengths[i] = len(m)
  return mels, lengths


# -------------------------------------------------------------------------------------- the loop


class Evaluator:
  """Held-out loss on fixed crops with a fixed key, and vocoded held-out examples."""

  def __init__(self, config, model, mesh, shardings, reporter, splits):
    self.config = config
    self.model = model
    self.reporter = reporter
    c = config.train
    self.batch_size = int(c.eval_batch_size) or int(c.batch_size)
    self.sharding = parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(config.mesh))
    self.eval_step = compile_eval_step(model, config, mesh, shardings, self.batch_size)
    # Imported lazily, as in the trainer: only real runs need the pipeline's dataset builders.
    from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
    max_utts = int(c.heldout_loss_utterances) or None
    utterances = data_options.heldout_utterances_from_config(config, split='heldout',
                                                             max_count=max_utts, splits=splits)
    crops = heldout_crops(utterances, int(config.data.segment_frames),
                          int(config.audio.hop_length),
                          self.batch_size * int(c.heldout_loss_batches))
    if not utterances:
      # Otherwise the run ends with an empty checkpoints_best/ and no word on why.
      reporter.console(f'the held-out split is empty (data.heldout_fraction='
                       f'{config.data.heldout_fraction}): no held-out loss, no samples and no '
                       'best checkpoint in this run')
      self.batches = []
    elif crops is None:
      reporter.console('no held-out utterance is long enough for a training crop: the held-out '
                       'loss is disabled and no best checkpoint is kept')
      self.batches = []
    else:
      n = self.batch_size
      self.batches = [{k: parallel.replicated_array(v[i * n:(i + 1) * n], self.sharding)
                       for k, v in crops.items()} for i in range(int(c.heldout_loss_batches))]
    self.examples = []
    if int(c.num_audio_examples) > 0:
      self.examples = data_options.heldout_utterances_from_config(
          config, split='heldout', max_count=int(c.num_audio_examples),
          max_seconds=float(c.audio_example_seconds), splits=splits)
    hop, sr = int(config.audio.hop_length), int(config.audio.sample_rate)
    self.example_frames = max(1, int(float(c.audio_example_seconds) * sr) // hop)
    if self.examples:
      self.example_frames = min(self.example_frames, max(len(u['mel']) for u in self.examples))
    self.sampler = processes.sampler_from_config(model, config)
    self.betas = processes.parse_grid_from_config(config, c.sample_schedule or config.sampling.schedule)
    self._wrote_references = False

  def heldout_loss(self, state):
    """{'heldout_loss' (EMA params), 'heldout_loss_raw'}: means over the fixed crops."""
    if not self.batches:
      return {}
    totals = [self.eval_step(state.params, state.ema_params, b, np.int32(i))
              for i, b in enumerate(self.batches)]
    totals = jax.device_get(totals)
    return {k: float(np.mean([t[k] for t in totals])) for k in totals[0]}

  def vocode_examples(self, state, step):
    """Vocodes the examples with the EMA params; writes wavs, TB audio and mel images (process 0).

    Returns the directory the wavs went to, or None.
    """
    if not self.examples:
      return None
    ema = parallel.host_copy(state.ema_params)  # every process takes part in any gather
    if not self.reporter.active:
      return None
    import soundfile  # pylint: disable=g-import-not-at-top
    from wavegrad_jax.audio import frontend as audio_lib  # pylint: disable=g-import-not-at-top
    config = self.config
    hop, sr = int(config.audio.hop_length), int(config.audio.sample_rate)
    fe = mel_conventions.Frontend.from_config(config.audio)
    mels, lengths = example_mels(self.examples, self.example_frames,
                                 mel_conventions.silence_value(fe))
    device = jax.local_devices()[0]
    ema = jax.device_put(ema, device)
    rng = jax.random.key(int(config.train.sample_seed))
    waves = np.asarray(self.sampler(ema, jnp.asarray(self.betas, jnp.float32),
                                    jax.device_put(mels, device), rng))
    if not np.isfinite(waves).all():
      # An undertrained denoiser's few-step reverse process can diverge; keep the run going.
      self.reporter.console(f'step {step}: generated audio has non-finite samples (the model is '
                            'still far from trained); writing them as 0')
    waves = np.clip(np.nan_to_num(waves, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    out_dir = os.path.join(self.reporter.samples_dir, f'step_{step}')
    os.makedirs(out_dir, exist_ok=True)
    ref_dir = os.path.join(self.reporter.samples_dir, 'reference')
    for i, u in enumerate(self.examples):
      name = str(u['id']).replace('/', '_')
      wave = waves[i, :lengths[i] * hop]
      soundfile.write(os.path.join(out_dir, f'{name}.wav'), wave, sr)
      self.reporter.audio(f'generated/{name}', wave, step, sr)
      generated_mel = np.asarray(audio_lib.log_mel_spectrogram(jnp.asarray(wave), fe))
      real_mel = mels[i, :lengths[i]]
      self.reporter.image(f'mel/{name}', reporting.mel_figure(real_mel, generated_mel,
                                                               f'{name} @ step {step}'), step)
      if not self._wrote_references:
        os.makedirs(ref_dir, exist_ok=True)
        real = np.asarray(u['audio'][:lengths[i] * hop], np.float32)
        soundfile.write(os.path.join(ref_dir, f'{name}.wav'), real, sr)
        self.reporter.audio(f'real/{name}', real, step, sr)
    self._wrote_references = True
    return out_dir

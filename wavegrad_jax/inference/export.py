"""A trained vocoder as one self-contained artifact: `jax.export` of its sampler, weights inside.

`export_vocoder` serialises the jitted sampler of a run (its process, network, grid and sampler
settings, with the EMA weights baked in as constants) for one chunk shape, [batch, chunk_frames,
n_mels] mels and a batch index -> [batch, chunk_frames * hop] waveforms, and writes it with a
meta.json beside it. `export_runtime.load` runs the artifact with JAX alone (no model code, no
config, no checkpoint): it cuts any mel into overlapping chunks, vocodes them in batches with the
key fold_in(PRNGKey(seed), batch index) and cross-fades the seams exactly as the in-process
chunked vocoder (`synthesize.make_chunked_vocoder`) does, so both give the same waveform.
"""
import json
import os

import jax
import jax.numpy as jnp

from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes

ARTIFACT = 'vocoder.jax_exported'
META = 'meta.json'


def export_vocoder(params, config, grid_spec, chunk_frames, overlap_frames, batch_size,
                   output_dir):
  """Writes output_dir/vocoder.jax_exported and meta.json; returns the meta dict.

  Args:
    params: the network's (EMA) parameters.
    config: the run's inference config (model, audio, process, sampling).
    grid_spec: the schedule (betas) or flow time grid, as `processes.parse_grid_from_config` reads it.
    chunk_frames: mel frames per chunk (the artifact's fixed shape).
    overlap_frames: frames cross-faded between neighbouring chunks (< chunk_frames).
    batch_size: chunks per call.
    output_dir: the folder to write.
  Raises:
    ValueError: a bad chunking or grid.
  """
  if chunk_frames < 1 or not 0 <= overlap_frames < chunk_frames or batch_size < 1:
    raise ValueError('need chunk_frames >= 1, 0 <= overlap_frames < chunk_frames and '
                     f'batch_size >= 1, got {chunk_frames}, {overlap_frames}, {batch_size}')
  grid = processes.parse_grid_from_config(config, grid_spec)
  model = model_lib.build_model_from_config(config)
  sampler = processes.sampler_from_config(model, config)
  grid32 = jnp.asarray(grid, jnp.float32)
  params = jax.tree.map(jnp.asarray, params)

  def vocode(mel, seed, index):
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), index)
    return sampler(params, grid32, mel, rng)

  n_mels, hop = int(config.audio.n_mels), int(config.audio.hop_length)
  exported = jax.export.export(jax.jit(vocode))(
      jax.ShapeDtypeStruct((batch_size, chunk_frames, n_mels), jnp.float32),
      jax.ShapeDtypeStruct((), jnp.uint32), jax.ShapeDtypeStruct((), jnp.int32))
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, ARTIFACT), 'wb') as f:
    f.write(exported.serialize())
  meta = {'chunk_frames': int(chunk_frames), 'overlap_frames': int(overlap_frames),
          'batch_size': int(batch_size), 'hop_length': hop, 'n_mels': n_mels,
          'sample_rate': int(config.audio.sample_rate),
          'silence_value': float(mel_conventions.silence_value(
              mel_conventions.Frontend.from_config(config.audio))),
          'audio': config.audio.to_dict(), 'model': model_lib.model_name_from_config(config.model),
          'process': processes.recorded_fields_from_config(config), 'grid': [float(g) for g in grid],
          'network_evaluations': processes.network_evaluations_from_config(config, grid),
          'platforms': list(exported.platforms)}
  with open(os.path.join(output_dir, META), 'w') as f:
    json.dump(meta, f, indent=2)
  return meta


def exported_size_bytes(output_dir):
  """Bytes of the serialised artifact in output_dir."""
  return os.path.getsize(os.path.join(output_dir, ARTIFACT))



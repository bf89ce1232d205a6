"""Runs an exported vocoder (`export.export_vocoder`) with JAX and numpy alone.

  from wavegrad_jax.inference import export_runtime
  vocoder = export_runtime.load('runs/frame/exported')
  waveform = vocoder(mel)            # mel [frames, n_mels] -> [frames * hop] float32, at
                                     # vocoder.sample_rate

This module imports nothing of the library: copied beside an artifact folder it vocodes on any
machine with jax and numpy. Long mels are cut into the artifact's chunk shape with its overlap,
vocoded `batch_size` chunks per call (batch b with the key fold_in(PRNGKey(seed), b)) and
cross-faded linearly over the overlaps, as the library's chunked vocoder does.
"""
import json
import os

import jax
import numpy as np


class ExportedVocoder:
  """A loaded artifact: call it with a [frames, n_mels] log-mel (the run's convention)."""

  def __init__(self, folder):
    with open(os.path.join(folder, 'meta.json')) as f:
      self.meta = json.load(f)
    with open(os.path.join(folder, 'vocoder.jax_exported'), 'rb') as f:
      self._exported = jax.export.deserialize(bytearray(f.read()))
    self.sample_rate = int(self.meta['sample_rate'])
    self.hop_length = int(self.meta['hop_length'])

  def __call__(self, mel, seed=0):
    """[frames, n_mels] log-mel -> [frames * hop_length] float32 waveform."""
    m = self.meta
    mel = np.asarray(mel, np.float32)
    if mel.ndim != 2 or mel.shape[1] != m['n_mels'] or mel.shape[0] < 1:
      raise ValueError(f'expected a mel of shape [frames, {m["n_mels"]}], got {mel.shape}')
    chunk, overlap, batch = m['chunk_frames'], m['overlap_frames'], m['batch_size']
    stride = chunk - overlap
    frames = mel.shape[0]
    count = max(1, -(-(frames - overlap) // stride))
    padded = np.full(((count - 1) * stride + chunk, mel.shape[1]), m['silence_value'], np.float32)
    padded[:frames] = mel
    chunks = [padded[c * stride:c * stride + chunk] for c in range(count)]
    batches = -(-count // batch)
    chunks += [np.full_like(chunks[0], m['silence_value'])] * (batches * batch - count)
    stacked = np.stack(chunks)
    audio = np.concatenate([np.asarray(self._exported.call(
        stacked[b * batch:(b + 1) * batch], np.uint32(seed), np.int32(b)))
                            for b in range(batches)])[:count]
    hop = self.hop_length
    fade = (np.arange(overlap * hop, dtype=np.float32) + 0.5) / max(overlap * hop, 1)
    out = np.zeros((count - 1) * stride * hop + chunk * hop, np.float32)
    for c in range(count):
      piece = audio[c].copy()
      if c > 0 and overlap:
        piece[:overlap * hop] *= fade
      if c < count - 1 and overlap:
        piece[-overlap * hop:] *= 1.0 - fade
      out[c * stride * hop:c * stride * hop + piece.size] += piece
    return out[:frames * hop]


def load(folder):
  """The `ExportedVocoder` in `folder` (vocoder.jax_exported and meta.json)."""
  return ExportedVocoder(folder)

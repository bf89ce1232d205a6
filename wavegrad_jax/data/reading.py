"""Reading a corpus's utterances and computing their log-mels for a build, in fixed-shape batches.

Each utterance's audio is `audio.load_audio` at the frontend's sample rate, peak-normalised to
`AudioOptions.peak_normalize` and cut to whole hops; its mel is `audio.log_mel_spectrogram` of the
whole trimmed utterance (or the corpus's stored mel, paired.py). `batched_log_mels` computes those
mels on equal windows, so a build compiles the frontend once whatever the utterance lengths.
"""
from typing import List, Optional, Sequence, Tuple

import jax
import numpy as np

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.data import registry
from wavegrad_jax.data.settings import AudioOptions, DataOptions


def load_trimmed(path: str, audio: AudioOptions) -> np.ndarray:
  """The audio of a file, loaded as the audio options say, cut to whole frames.

  Returns:
    [frames * hop_length] float32 at audio.sample_rate (Hz).
  Raises:
    audio.AudioLoadError: the file cannot be read.
  """
  samples = audio_lib.load_audio(path, int(audio.sample_rate), float(audio.peak_normalize))
  hop = int(audio.hop_length)
  return samples[:(samples.shape[0] // hop) * hop]


def read_utterance(item, data: DataOptions, audio: AudioOptions
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """(audio [frames * hop], stored mel [frames, n_mels] or None to compute) of a listed file."""
  read = registry.get_corpus(data.source).read
  if read is None:
    return load_trimmed(item.path, audio), None
  return read(item, data, audio)


def make_mel_fn(audio: AudioOptions):
  """The jitted frontend for builds: [rows, L] float32 -> [rows, L // hop, n_mels] float32.

  Args:
    audio: the audio options (its frontend is frozen and hashable: later edits cannot reach it).
  Returns:
    a jitted function; it compiles once per input shape.
  """
  fe = audio.frontend
  return jax.jit(lambda waves: audio_lib.log_mel_spectrogram(waves, fe))


def batched_log_mels(waveforms: Sequence[np.ndarray], audio: AudioOptions, mel_fn,
                     batch_samples: int, window_frames: int) -> List[np.ndarray]:
  """`audio.log_mel_spectrogram` of each whole waveform, computed as batches of equal windows.

  Every waveform is padded at both ends as the STFT's centring pad does (the frontend's pad_mode),
  by c = ceil(n_fft / 2 / hop) frames, and cut into windows of window_frames + 2c frames that step
  by window_frames. Frames c .. c + window_frames - 1 of a window's log-mel read only samples inside
  the window, the same samples the frame reads in the whole-utterance STFT, so they are that STFT's
  frames; the context frames and the frames past each waveform's end are dropped. All windows have
  one shape, so a build compiles the frontend once whatever the utterance lengths.

  Args:
    waveforms: [T_i] float32 arrays with T_i a positive multiple of hop_length.
    audio: the audio options.
    mel_fn: `make_mel_fn(audio)`.
    batch_samples: samples per jitted call (windows x window length); bounds memory.
    window_frames: output frames per window (x hop_length = samples).
  Returns:
    [T_i // hop_length, n_mels] float32 per waveform, in input order.
  """
  fe = audio.frontend
  hop = int(fe.hop_length)
  context = -(-(int(fe.n_fft) // 2) // hop)
  length = (window_frames + 2 * context) * hop
  windows, owners = [], []
  for i, w in enumerate(waveforms):
    frames = w.shape[0] // hop
    count = -(-frames // window_frames)
    padded = np.pad(w, (context * hop,) * 2, mode=fe.pad_mode)
    # Zeros past the end pad fill the last window; only frames past the waveform's end read them.
    padded = np.pad(padded, (0, count * window_frames * hop + 2 * context * hop - padded.shape[0]))
    for j in range(count):
      windows.append(padded[j * window_frames * hop:j * window_frames * hop + length])
      owners.append(i)
  rows = max(1, batch_samples // length)
  pieces = [[] for _ in waveforms]
  for start in range(0, len(windows), rows):
    batch = np.zeros((rows, length), np.float32)  # a fixed row count: one compiled shape.
    chunk = windows[start:start + rows]
    batch[:len(chunk)] = chunk
    out = np.asarray(mel_fn(batch))[:len(chunk), context:context + window_frames]
    for r in range(len(chunk)):
      pieces[owners[start + r]].append(out[r])
  return [np.concatenate(p)[:w.shape[0] // hop] for p, w in zip(pieces, waveforms)]

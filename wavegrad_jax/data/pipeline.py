"""Training batches and held-out utterances from the prepared TFDS datasets (wavegrad_jax/data).

Training batches are a pure function of (config.data.shuffle_seed, step, process_index): a resumed
or restarted run sees exactly the data it would have seen, with no iterator state to checkpoint.

  global example i = step * global_batch + process_index * local_batch + j   (j < local_batch)
  epoch = i // n,  utterance = permutation(n, rng [seed, 0, epoch])[i % n]
  first frame = uniform in [0, frames - segment_frames], rng [seed, 1, i]

where n is the number of training utterances. The crop takes mel frames [k, k + segment_frames)
and audio samples [k * hop, (k + segment_frames) * hop): frame k is centred on sample k * hop, the
alignment the model's upsampler assumes. An utterance shorter than the segment is used whole from
frame 0, its audio zero-padded and its mel padded with the value silence takes in the audio
convention (`mel_conventions.silence_value`: log(audio.log_floor) by default); utterances shorter
than one hop cannot have a mel frame and are never stored (the build summary lists them).
"""
import collections.abc
import concurrent.futures
import json
import queue
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.data import builders
from wavegrad_jax.data.settings import AudioOptions, DataOptions
from wavegrad_jax.data.splits import SPLITS

# Stream tags keep the permutation and crop rngs apart when an epoch number equals an example index.
_PERMUTATION_STREAM = 0
_CROP_STREAM = 1


class _EmptySplit(collections.abc.Sequence):
  """A split with no utterances (TFDS does not write empty splits)."""

  def __len__(self) -> int:
    return 0

  def __getitem__(self, index):
    raise IndexError(f'index {index} out of range: the split is empty')

  def __getitems__(self, indices):
    if len(indices):
      raise IndexError(f'indices {list(indices)[:5]} out of range: the split is empty')
    return []


class DatasetSplits(dict):
  """{split name: random-access source of example dicts}, with the dataset's TFDS info.

  Every name in `splits.SPLITS` is present; a split without utterances is an empty sequence.
  An example is {'id': bytes, 'speaker': bytes, 'audio': [T] float32, 'mel': [T // hop, n_mels]
  float32}. `info.metadata['summary']` holds the build summary, `info.metadata['frames'][split]`
  the frame count of each record, and `info.data_dir` where the data are.
  """

  def __init__(self, sources: Dict[str, Any], info):
    super().__init__(sources)
    self.info = info

  def frames(self, split: str) -> List[int]:
    """Frame counts (x hop = samples) of the split's records, in record order."""
    return list(self.info.metadata.get('frames', {}).get(split, []))


def prepare_dataset(data: DataOptions, audio: AudioOptions) -> DatasetSplits:
  """Builds the dataset of `data` and `audio` if needed, and opens every split.

  The first call for given data/audio settings reads the source folder and writes the dataset to
  `data.tfds_dir` (the full embedded corpus: about 20 s on 2 CPU cores); later calls only open it.
  Several processes must not build the same dataset at once: in a multi-host run, let process 0
  call this first (and wait at a barrier) before the others do. With a config, call
  `options.prepare_dataset_from_config(config)`.

  Args:
    data: the data options.
    audio: the audio options.
  Returns:
    `DatasetSplits` with 'train', 'heldout' and 'unseen'.
  Raises:
    builders.DataSourceError: the source folder is missing or empty, or no file can be read.
  """
  builder = builders.prepare(data, audio)
  opened = builder.as_data_source()
  sources = {k: opened[k] if k in opened else _EmptySplit() for k in SPLITS}
  return DatasetSplits(sources, builder.info)


def global_batch_size(batch_size: int, process_count: int = 1,
                      num_data_devices: Optional[int] = None) -> int:
  """The global batch size (config.train.batch_size), checked against hosts and devices.

  Args:
    batch_size: examples per step over all hosts (config.train.batch_size).
    process_count: number of hosts, each reading batch_size // process_count examples per step.
    num_data_devices: size of the mesh's data axis (devices the batch is split over); None skips
      that check.
  Returns:
    the global batch size (examples per step over all hosts).
  Raises:
    ValueError: the batch size is not positive or does not divide by the counts.
  """
  return _checked_batch_size(int(batch_size), process_count, num_data_devices)


def _checked_batch_size(batch, process_count, num_data_devices):
  if batch < 1:
    raise ValueError(f'config.train.batch_size must be positive, got {batch}')
  if process_count < 1 or batch % process_count:
    raise ValueError(f'config.train.batch_size={batch} must divide by the process count '
                     f'({process_count}): every host reads an equal slice of the global batch')
  if num_data_devices is not None and (num_data_devices < 1 or batch % num_data_devices):
    raise ValueError(f'config.train.batch_size={batch} must divide by the device count of the '
                     f'data mesh axis ({num_data_devices}); process count {process_count}')
  return batch


def _decode_text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


class TrainBatches:
  """Deterministic training crops of the 'train' split; see the module docstring for the rule.

  Attributes:
    global_batch: examples per step over all hosts (config.train.batch_size).
    local_batch: examples per step on this host (global_batch // process_count).
    segment_frames: mel frames per example (x hop_length = samples).
    num_utterances: training utterances n.
  """

  def __init__(self, data: DataOptions, audio: AudioOptions, batch_size: int,
               process_index: int = 0,
               process_count: int = 1, *, num_data_devices: Optional[int] = None,
               splits: Optional[DatasetSplits] = None, read_log: Optional[str] = None):
    """Opens the training split (building the dataset first if needed).

    Args:
      data: the data options (segment_frames, shuffle_seed, prefetch_batches, read_threads; the
        corpus when `splits` is None).
      audio: the audio options (hop_length, n_mels and the convention's silence).
      batch_size: the global batch size (config.train.batch_size).
      process_index: this host's index in [0, process_count).
      process_count: number of hosts sharing the global batch.
      num_data_devices: size of the mesh's data axis, checked against the batch size (None: not).
      splits: an already opened `prepare_dataset(data, audio)`; opened here when None.
      read_log: optional JSONL file to which `batch` appends, per step, what this host read:
        {'step', 'process', 'examples': global example indices, 'utterances': split indices,
        'ids': record ids, 'first_frames'} (an audit of the data order and its sharding).
    Raises:
      ValueError: bad batch size or process index, or an empty training split.
    """
    self.global_batch = _checked_batch_size(int(batch_size), process_count, num_data_devices)
    if not 0 <= process_index < process_count:
      raise ValueError(f'process_index {process_index} must be in [0, {process_count})')
    self.local_batch = self.global_batch // process_count
    self._process_index = process_index
    self._seed = int(data.shuffle_seed)
    self.segment_frames = int(data.segment_frames)
    if self.segment_frames < 1:
      raise ValueError(f'config.data.segment_frames must be positive, got {self.segment_frames}')
    self._hop = int(audio.hop_length)
    self._n_mels = int(audio.n_mels)
    # Silence in the frontend's convention: a float, or per band under mean-variance normalisation.
    self._mel_pad = mel_conventions.silence_value(audio.frontend)
    self._prefetch = max(1, int(data.prefetch_batches))
    # Record reads mostly wait on I/O outside the GIL, so a few threads overlap them.
    self._readers = concurrent.futures.ThreadPoolExecutor(
        max(1, int(data.read_threads)), thread_name_prefix='TrainBatches.read')
    splits = splits if splits is not None else prepare_dataset(data, audio)
    self._source = splits['train']
    self._frames = splits.frames('train')
    self.num_utterances = len(self._source)
    if self.num_utterances == 0:
      raise ValueError(f'the training split of {splits.info.data_dir} is empty')
    if len(self._frames) != self.num_utterances:
      raise ValueError(f'{splits.info.data_dir} has {self.num_utterances} training records but '
                       f'frame counts for {len(self._frames)}: delete it and build again')
    self._permutations = {}
    self._lock = threading.Lock()
    self._read_log = read_log

  def _permutation(self, epoch: int) -> np.ndarray:
    with self._lock:
      perm = self._permutations.get(epoch)
      if perm is None:
        rng = np.random.default_rng([self._seed, _PERMUTATION_STREAM, epoch])
        perm = rng.permutation(self.num_utterances)
        # A step spans at most two epochs unless the batch exceeds the corpus; keep a few.
        if len(self._permutations) >= 4:
          self._permutations.pop(min(self._permutations))
        self._permutations[epoch] = perm
      return perm

  def first_example(self, step: int) -> int:
    """Global index of this host's first example of `step` (the rule in the module docstring)."""
    return step * self.global_batch + self._process_index * self.local_batch

  def plan(self, step: int) -> List[Tuple[int, int]]:
    """Which utterance and which first frame each of this host's examples of `step` uses.

    Args:
      step: training step, >= 0.
    Returns:
      local_batch pairs (index into the 'train' split, first mel frame; x hop = first sample).
    """
    if step < 0:
      raise ValueError(f'step must be >= 0, got {step}')
    n, s = self.num_utterances, self.segment_frames
    first = self.first_example(step)
    pairs = []
    for i in range(first, first + self.local_batch):
      utterance = int(self._permutation(i // n)[i % n])
      frames = self._frames[utterance]
      rng = np.random.default_rng([self._seed, _CROP_STREAM, i])
      pairs.append((utterance, int(rng.integers(0, frames - s + 1)) if frames > s else 0))
    return pairs

  def batch(self, step: int) -> Dict[str, np.ndarray]:
    """This host's slice of the global batch of `step`.

    Args:
      step: training step, >= 0.
    Returns:
      {'audio': [local_batch, segment_frames * hop] float32, 'mel': [local_batch, segment_frames,
      n_mels] float32}, the mel frames aligned with the audio samples.
    """
    s, hop = self.segment_frames, self._hop
    audio = np.zeros((self.local_batch, s * hop), np.float32)
    mel = np.full((self.local_batch, s, self._n_mels), self._mel_pad, np.float32)
    plan = self.plan(step)
    ids = []
    examples = self._readers.map(lambda pair: self._source[pair[0]], plan)
    for j, ((utterance, start), example) in enumerate(zip(plan, examples)):
      if example['mel'].shape[0] != self._frames[utterance]:
        raise ValueError(f'training record {utterance} has {example["mel"].shape[0]} frames, its '
                         f'metadata {self._frames[utterance]}: delete the dataset and build again')
      frames = min(s, self._frames[utterance] - start)
      mel[j, :frames] = example['mel'][start:start + frames]
      audio[j, :frames * hop] = example['audio'][start * hop:(start + frames) * hop]
      ids.append(_decode_text(example['id']))
    if self._read_log:
      first = self.first_example(step)
      record = {'step': step, 'process': self._process_index,
                'examples': list(range(first, first + self.local_batch)),
                'utterances': [u for u, _ in plan], 'ids': ids,
                'first_frames': [f for _, f in plan]}
      with open(self._read_log, 'a') as f:
        f.write(json.dumps(record) + '\n')
    return {'audio': audio, 'mel': mel}

  def iterate(self, start_step: int = 0) -> Iterator[Dict[str, np.ndarray]]:
    """`batch(start_step)`, `batch(start_step + 1)`, ... read ahead by a background thread.

    The thread keeps config.data.prefetch_batches batches ready and stops when the generator is
    closed or garbage-collected; an error while reading is raised here at the step it occurred.

    Args:
      start_step: the first step to yield.
    Yields:
      the dicts `batch` returns, one per step.
    """
    ready = queue.Queue(maxsize=self._prefetch)
    stop = threading.Event()

    def put(item) -> bool:
      while not stop.is_set():
        try:
          ready.put(item, timeout=0.1)
          return True
        except queue.Full:
          continue
      return False

    def work():
      step = start_step
      while not stop.is_set():
        try:
          item = self.batch(step)
        except Exception as e:  # pylint: disable=broad-except
          put(e)  # Re-raised in the consumer, which owns error handling.
          return
        if not put(item):
          return
        step += 1

    thread = threading.Thread(target=work, name='TrainBatches.prefetch', daemon=True)
    thread.start()
    try:
      while True:
        item = ready.get()
        if isinstance(item, Exception):
          raise item
        yield item
    finally:
      stop.set()
      thread.join(timeout=10.0)


def heldout_utterances(data: DataOptions, audio: AudioOptions, split: str = 'heldout', max_count: Optional[int] = None,
                       max_seconds: Optional[float] = None, *,
                       splits: Optional[DatasetSplits] = None) -> List[Dict[str, Any]]:
  """Whole utterances of an evaluation split, in a fixed order (utterance id order).

  Args:
    data: the data options (the corpus, when `splits` is None).
    audio: the audio options (hop_length, sample_rate).
    split: 'heldout' (training speakers' unseen files), 'unseen' (other speakers) or 'train'.
    max_count: return only the first this many (None or 0: all, as the configs' 0 means).
    max_seconds: cut each utterance to at most this long, in whole frames (None or 0: whole).
    splits: an already opened `prepare_dataset(data, audio)`; opened here when None.
  Returns:
    dicts {'id': str, 'speaker': str, 'audio': [frames * hop] float32, 'mel': [frames, n_mels]
    float32}, with audio and mel aligned frame for frame.
  Raises:
    ValueError: unknown split name.
  """
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  splits = splits if splits is not None else prepare_dataset(data, audio)
  source = splits[split]
  hop = int(audio.hop_length)
  count = len(source) if not max_count else min(len(source), int(max_count))
  limit = None
  if max_seconds:
    limit = max(1, int(float(max_seconds) * int(audio.sample_rate)) // hop)
  out = []
  for index in range(count):
    example = source[index]
    frames = example['mel'].shape[0] if limit is None else min(limit, example['mel'].shape[0])
    out.append({
        'id': _decode_text(example['id']),
        'speaker': _decode_text(example['speaker']),
        'audio': np.array(example['audio'][:frames * hop], np.float32),
        'mel': np.array(example['mel'][:frames], np.float32),
    })
  return out

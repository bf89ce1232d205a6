"""What a training run reports: TensorBoard, a JSONL metrics file, the console and a progress bar.

Only process 0 writes; on the others a `Reporter` is silent. metrics.jsonl holds one JSON object
per log or evaluation ({'step', 'kind': 'train' | 'eval' | 'preempted', scalars...}); a resumed
run first drops the records past its checkpoint so the file reads as one run's, keeping the old
file beside it.
"""
import glob
import io
import json
import os
import shutil
import time

import jax
import numpy as np


def mel_figure(real, generated, title):
  """PNG-rendered comparison of two log-mels [F, M] as an [H, W, 3] uint8 image."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
  vmin, vmax = float(np.min(real)), float(np.max(real))
  for ax, mel, name in zip(axes, (real, generated), ('real', 'generated')):
    ax.imshow(np.asarray(mel).T, origin='lower', aspect='auto', vmin=vmin, vmax=vmax,
              cmap='magma', interpolation='nearest')
    ax.set_ylabel(f'{name}\nmel band')
  axes[0].set_title(title)
  axes[1].set_xlabel('frame')
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=80)
  plt.close(fig)
  buf.seek(0)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.asarray(Image.open(buf).convert('RGB'))


class Reporter:
  """TensorBoard (tensorboardX), a JSONL metrics file and the console; silent off process 0."""

  def __init__(self, workdir, reporting_options, start_step, num_steps):
    """Opens the outputs of a run in `workdir` that starts at `start_step` of `num_steps`.

    Args:
      workdir: the run's directory.
      reporting_options: `options.ReportingOptions` (folder and file names relative to
        `workdir`, progress bar).
      start_step: the step training resumes from (0 for a new run); JSONL records and
        TensorBoard events past it, left by a killed run, are dropped.
      num_steps: the run's last step, the progress bar's total.
    """
    self.active = jax.process_index() == 0
    self.tb_dir = os.path.join(workdir, reporting_options.tensorboard_dir)
    self.metrics_path = os.path.join(workdir, reporting_options.metrics_file)
    self.samples_dir = os.path.join(workdir, reporting_options.samples_dir)
    self._writer = None
    self._bar = None
    self.metrics_backup = None  # where the old metrics file went when a restart cut records off
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    self.metrics_backup = truncate_metrics(self.metrics_path, start_step)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    # purge_step hides events a killed run wrote past the checkpoint we resume from.
    self._writer = SummaryWriter(self.tb_dir, purge_step=start_step if start_step else None,
                                 flush_secs=30)
    self._progress = (bool(reporting_options.progress_bar), int(num_steps), start_step)

  def start_progress(self):
    """Shows the tqdm bar (process 0, when reporting_options.progress_bar), once training starts."""
    if self.active and self._progress[0] and self._bar is None:
      import tqdm  # pylint: disable=g-import-not-at-top
      _, total, initial = self._progress
      self._bar = tqdm.tqdm(total=total, initial=initial, desc='train', unit='step',
                            dynamic_ncols=True, smoothing=0.1)

  def console(self, message):
    """Prints a line on process 0 (above the progress bar when there is one)."""
    if not self.active:
      return
    if self._bar is not None:
      self._bar.write(message)
    else:
      print(message, flush=True)

  def advance(self, steps=1, **postfix):
    """Moves the progress bar `steps` steps on, showing `postfix` scalars beside it."""
    if self._bar is not None:
      if postfix:
        self._bar.set_postfix({k: f'{v:.4g}' for k, v in postfix.items()}, refresh=False)
      if steps:
        self._bar.update(steps)

  def scalars(self, step, kind, values):
    """Writes {name: float} as TensorBoard scalars `kind/name` and one JSONL record."""
    if not self.active:
      return
    for k, v in values.items():
      self._writer.add_scalar(f'{kind}/{k}', v, step)
    with open(self.metrics_path, 'a') as f:
      f.write(json.dumps({'step': int(step), 'kind': kind,
                          **{k: float(v) for k, v in values.items()}}) + '\n')

  def event(self, step, kind, **fields):
    """Appends a non-scalar JSONL record such as {'step': N, 'kind': 'preempted'}."""
    if self.active:
      with open(self.metrics_path, 'a') as f:
        f.write(json.dumps({'step': int(step), 'kind': kind, **fields}) + '\n')

  def text(self, tag, text, step):
    """Writes markdown text to TensorBoard."""
    if self.active:
      self._writer.add_text(tag, text, step)

  def audio(self, tag, waveform, step, sample_rate):
    """Writes a [T] waveform in [-1, 1] at `sample_rate` Hz as TensorBoard audio."""
    if self.active:
      self._writer.add_audio(tag, np.clip(waveform, -1.0, 1.0), step, sample_rate=sample_rate)

  def image(self, tag, image, step):
    """Writes an [H, W, 3] uint8 image to TensorBoard."""
    if self.active:
      self._writer.add_image(tag, image, step, dataformats='HWC')

  def flush(self):
    """Pushes pending TensorBoard events to disk."""
    if self._writer is not None:
      self._writer.flush()

  def print_outputs(self, summary):
    """Prints where a run's outputs are (process 0): what `train.train_and_evaluate` returns."""
    if not self.active:
      return
    print(f'Trained to step {summary["step"]}'
          + (' (preempted)' if summary['preempted'] else '')
          + (f'; last train loss {summary["loss"]:.4f}' if summary['loss'] is not None else '')
          + (f', held-out loss {summary["heldout_loss"]:.4f}'
             if summary['heldout_loss'] is not None else '') + '.')
    print(f'  checkpoints:      {summary["checkpoints"]} (best: {summary["best_checkpoints"]})')
    print(f'  TensorBoard logs: {summary["tensorboard"]}  (tensorboard --logdir '
          f'{summary["tensorboard"]})')
    print(f'  metrics (JSONL):  {summary["metrics"]}')
    print(f'  wav samples:      {summary["samples"]}/step_<N>/<id>.wav')

  def close(self):
    """Closes the progress bar and the TensorBoard writer."""
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.close()


def truncate_metrics(path, start_step):
  """Drops JSONL records past `start_step`, so a resumed run's file reads as one run's.

  Nothing is lost: when any record is dropped, the whole old file is first copied beside it. One
  copy is kept per restart point: a later copy for the same `start_step` replaces the earlier (the
  records up to it are the same; those past it are the latest attempt's).

  Returns:
    the copy's path ('<path>.before_step_<start_step>.<time>'), or None when nothing was dropped.
  """
  if not os.path.exists(path):
    return None
  keep, dropped, cut = [], 0, 0
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        cut += 1  # a line cut off by a kill
        continue
      if int(record.get('step', 0)) <= start_step:
        keep.append(json.dumps(record))
      else:
        dropped += 1
  if not dropped and not cut:
    return None
  backup = None
  if dropped:
    backup = f'{path}.before_step_{start_step}.{time.strftime("%Y%m%d-%H%M%S")}'
    shutil.copy2(path, backup)
    # Each rerun after a failure at one restart point copies the whole file again; keeping the
    # newest of them (which holds the older's records up to that point) stops the pile-up.
    for older in glob.glob(glob.escape(f'{path}.before_step_{start_step}.') + '*'):
      if older != backup:
        os.remove(older)
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    f.write(''.join(line + '\n' for line in keep))
  os.replace(tmp, path)
  return backup

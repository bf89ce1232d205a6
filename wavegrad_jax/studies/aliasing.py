"""The aliasing benchmark: harmonic tones beyond speech's pitch range, vocoded from their mels by
each run at equal network evaluations, measured by `aliasing.tone_measures`.

For every run (a workdir: its EMA weights, network, process and default sampler) and every F0,
the tone `aliasing.harmonic_tone(F0, seconds, rate, 0.36 * rate)` is taken to the run's log-mel,
vocoded with `evaluations` network evaluations (process 'wavegrad': the named schedule of that
many steps; 'flow': that many uniform Euler steps) and measured; the tone itself and Griffin-Lim
alone from the same mel are measured alike. The launcher is experiments/benchmark_aliasing.py.
"""
import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.evaluation import aliasing
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling

BAND_EDGE = 0.36  # of the sample rate: 7.9 kHz at 22.05 kHz, inside every mel's band


def _vocode(params, config, model, mel, grid_spec, seed):
  sampler = processes.sampler_from_config(model, config)
  grid = jnp.asarray(processes.parse_grid_from_config(config, grid_spec), jnp.float32)
  return np.asarray(sampler(params, grid, jnp.asarray(mel[None]), jax.random.key(seed)))[0]


def run_study(runs, f0s, evaluations, seconds, defaults, seed=0):
  """Rows of measures and the waveforms of the highest F0, per run.

  Args:
    runs: [(label, workdir)].
    f0s: fundamentals in Hz.
    evaluations: network evaluations per synthesis.
    seconds: tone length.
    defaults: the full default config (for the inference sections).
    seed: sampler noise.
  Returns:
    (rows [{'source', 'f0', 'interharmonic_db', 'foldback_db', ...}], {source: waveform of the
    highest F0}, sample rate).
  """
  rows, waves, rate = [], {}, None
  for label, workdir in runs:
    params, config, step = checkpoints.load_for_inference(workdir, defaults)
    model = model_lib.build_model_from_config(config)
    rate = int(config.audio.sample_rate)
    edge = BAND_EDGE * rate
    gl_config = sampling.preset_from_config(config, 'griffin_lim')
    fe = mel_conventions.Frontend.from_config(config.audio)
    for f0 in f0s:
      tone = aliasing.harmonic_tone(f0, seconds, rate, edge)
      frames = tone.size // int(config.audio.hop_length)
      tone = tone[:frames * int(config.audio.hop_length)]
      mel = np.asarray(audio.log_mel_spectrogram(jnp.asarray(tone), fe))
      sources = {f'{label} (step {step})': _vocode(params, config, model, mel, str(evaluations),
                                                    seed)}
      if label == runs[0][0]:
        sources['reference tone'] = tone
        sources['Griffin-Lim alone'] = _vocode(params, gl_config, model, mel, str(evaluations),
                                               seed)
      for source, wave in sources.items():
        m = aliasing.tone_measures(wave, f0, rate, edge)
        rows.append({'source': source, 'run': label, 'f0': float(f0),
                     'network': model_lib.model_name_from_config(config.model),
                     'process': processes.process_name_from_config(config),
                     'evaluations': evaluations if source.startswith(label) else 0,
                     **{k: (None if v is None else float(v)) for k, v in m.items()}})
        if f0 == max(f0s):
          waves[source] = wave
  return rows, waves, rate


def plot_spectrograms(waves, rate, f0, path):
  """One log spectrogram per source of the highest-F0 tone, side by side, as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(waves), figsize=(3.2 * len(waves), 3.2), squeeze=False)
  for ax, (name, wave) in zip(axes[0], waves.items()):
    ax.specgram(wave, NFFT=1024, Fs=rate, noverlap=768, cmap='magma', vmin=-120)
    ax.set_title(name, fontsize=8)
    ax.set_xlabel('s')
  axes[0][0].set_ylabel('Hz')
  fig.suptitle(f'harmonic tone, F0 {f0:g} Hz', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)

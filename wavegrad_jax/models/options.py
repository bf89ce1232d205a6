"""The models' edge: the experiment config read into a typed `ModelSpec`, and thin adapters.

Follows the layout's convention (README "Layout"): below the trainer functions take typed
options; this module alone reads a ConfigDict. `ModelSpec.from_config` reads `config.model`
(resolved by `registry.recorded_section`) and `config.audio`'s hop_length, n_mels and
sample_rate; each `*_from_config` adapter builds it and calls the typed function of `registry`.
"""
import dataclasses
from typing import Any, Optional, Tuple

import ml_collections

from wavegrad_jax.models import registry
from wavegrad_jax.models.wavegrad import _as_field


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A network as a run records it, and the frontend numbers it is built and counted with.

  Attributes:
    name: config.model.name, the `registry.MODELS` variant ('wavegrad' when the section has none).
    fields: the other keys of the resolved config.model section (`registry.recorded_section`) as
      ((key, value), ...) in section order, sequences as tuples; for WaveGrad the resolved
      `dilation_order` and `upsample_dilations` are among them.
    hop_length: config.audio.hop_length, the mel hop in samples.
    n_mels: config.audio.n_mels, mel channels of the conditioning.
    sample_rate: config.audio.sample_rate in Hz (None when the section has none; only counting
      MACs per second needs it).
  """
  name: str
  fields: Tuple[Tuple[str, Any], ...]
  hop_length: int
  n_mels: int
  sample_rate: Optional[int] = None

  @property
  def section(self):
    """The resolved `model` section as a plain dict, its name included (what a run records)."""
    return {'name': self.name, **dict(self.fields)}

  @classmethod
  def from_config(cls, config):
    """The spec of a full config (config.model and config.audio); ValueError naming a bad field."""
    section = model_section_from_config(config.model)
    rate = config.audio.get('sample_rate', None)
    return cls(name=section.pop('name'),
               fields=tuple((k, _as_field(v)) for k, v in section.items()),
               hop_length=int(config.audio.hop_length), n_mels=int(config.audio.n_mels),
               sample_rate=None if rate is None else int(rate))


def model_name_from_config(model_config):
  """The variant a `model` config section names; sections from before names existed: 'wavegrad'."""
  return model_config.get('name', registry.DEFAULT_MODEL)


def model_section_from_config(model_config):
  """`registry.recorded_section` of a `model` config section (ConfigDict or dict): a plain dict."""
  d = model_config.to_dict() if hasattr(model_config, 'to_dict') else dict(model_config)
  return registry.recorded_section(d)


def resolved_from_config(config):
  """A copy of a full config whose `model` section is `model_section_from_config`'s (what a run
  saves).

  Checkpoints and config.json then hold the dilations themselves, not only the name of their
  order, so a later change of a rule cannot change the model a checkpoint rebuilds.
  """
  out = config.copy_and_resolve_references()
  with out.unlocked():
    out.model = ml_collections.ConfigDict(_as_field_tree(model_section_from_config(config.model)))
  return out


def _as_field_tree(d):
  return {k: _as_field_tree(v) if isinstance(v, dict) else _as_field(v) for k, v in d.items()}


def build_model_from_config(config):
  """`registry.build_model` of `ModelSpec.from_config(config)`: the unbound, validated network."""
  return registry.build_model(ModelSpec.from_config(config))


def init_params_from_config(model, config, rng, frames=2):
  """`registry.init_params` with config.audio.n_mels: float32 parameters of a built network."""
  return registry.init_params(model, int(config.audio.n_mels), rng, frames)


def macs_per_second_from_config(model, config, seconds=1.0):
  """`registry.macs_per_second` with config.audio's n_mels and sample_rate (Hz)."""
  return registry.macs_per_second(model, int(config.audio.n_mels),
                                  int(config.audio.sample_rate), seconds)


def size_summary_from_config(model, config):
  """`registry.size_summary` of a network built from `config`."""
  return registry.size_summary(model, ModelSpec.from_config(config))


def random_params_from_config(model, config, seed=0):
  """`registry.random_params` with config.audio.n_mels: random float32 parameters."""
  return registry.random_params(model, int(config.audio.n_mels), seed)

"""The model registry: `config.model.name` -> a Flax network, built, initialised and counted.

Denoisers are chosen by `model.name` from `MODELS` (sections without a name, written before
names existed, mean 'wavegrad'); `build_model` fills the variant's module fields from the other
keys of the `model` section (a `ModelSpec`, read from the config in `options.py`) and validates
the result against the frontend. Adding a network
family is one module in this package plus one entry in `MODELS`.
"""
import dataclasses
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.models import discriminators as discriminator_lib
from wavegrad_jax.models import frame
from wavegrad_jax.models.wavegrad import WaveGrad, _as_field, resolve_dilations, validate_topology



def _wavegrad_config(section):
  """A WaveGrad `model` section (dict) with its dilations resolved and their order named."""
  out = dict(section)
  out['dilation_order'], out['upsample_dilations'] = resolve_dilations(
      section['upsample_factors'], section.get('dilation_order', 'custom'),
      section.get('upsample_dilations', ()))
  return out


# ------------------------------------------------------------------------------------- variants


@dataclasses.dataclass(frozen=True)
class ModelVariant:
  """A denoiser selectable by `config.model.name`.

  Attributes:
    module: the Flax module class. Its fields other than `hop_length` (which comes from
      config.audio) are exactly the keys of config.model besides `name`; `build_model` passes them
      with sequences turned into tuples.
    validate: validate(module instance) raises ValueError, naming the fix, for a module that cannot
      run (e.g. a topology that does not fit the hop length).
    resolve: resolve(section dict without 'name') -> the section as a run records it, with every
      choice made by name turned into the values it stands for (and the names kept); raises
      ValueError naming the fix. The identity when None.
    config_only: keys of the resolved section that are not module fields (the names of choices).
  """
  module: Any
  validate: Callable[[Any], None]
  resolve: Optional[Callable[[dict], dict]] = None
  config_only: Tuple[str, ...] = ()


DEFAULT_MODEL = 'wavegrad'

MODELS = {
    'wavegrad': ModelVariant(WaveGrad, lambda m: validate_topology(m, m.hop_length),
                             resolve=_wavegrad_config, config_only=('dilation_order',)),
    # The frame-domain ConvNeXt denoiser (Vocos-style; wavegrad_jax/models/frame.py).
    'frame_convnext': ModelVariant(frame.FrameConvNeXt, frame.validate, resolve=frame.resolve),
}


def _variant(name):
  if name not in MODELS:
    raise ValueError(f'config.model.name must be one of {sorted(MODELS)}, got {name!r}')
  return MODELS[name]


def recorded_section(section):
  """The `model` section as a run records it: a plain dict, its variant name filled in (sections
  without one mean DEFAULT_MODEL) and its named choices resolved (WaveGrad: `dilation_order` and
  the dilations it stands for, `resolve_dilations`), so that two sections describing one model
  compare equal.

  Args:
    section: the `model` section as a plain dict (e.g. read from a checkpoint's JSON).
  Raises:
    ValueError: unknown variant, or a choice that cannot be resolved (the message names the fix).
  """
  out = dict(section)
  name = out.pop('name', DEFAULT_MODEL)
  variant = _variant(name)
  if variant.resolve is not None:
    out = variant.resolve(out)
  return {'name': name, **out}


def build_model(spec):
  """The denoiser a `ModelSpec` names, built from its fields and hop and checked.

  Args:
    spec: `options.ModelSpec` (the resolved `model` section and the frontend's hop in samples).
  Returns:
    an unbound Flax module (e.g. `WaveGrad`).
  Raises:
    ValueError: unknown model name, model fields the variant does not have (or lacks), or a
      model the variant's validation refuses; the message names the fix.
  """
  name = spec.name
  variant = _variant(name)
  fields = {f.name for f in dataclasses.fields(variant.module)
            if f.init and f.name not in ('parent', 'name', 'hop_length')}
  given = {k: _as_field(v) for k, v in spec.fields if k not in variant.config_only}
  unknown, missing = sorted(set(given) - fields), sorted(fields - set(given))
  if unknown or missing:
    raise ValueError(f'config.model does not fit model {name!r}: '
                     + (f'unknown fields {unknown}' if unknown else '')
                     + ('; ' if unknown and missing else '')
                     + (f'missing fields {missing}' if missing else '')
                     + f' (the fields of {variant.module.__name__})')
  model = variant.module(hop_length=int(spec.hop_length), **given)
  variant.validate(model)
  return model


def init_params(model, n_mels, rng, frames=2):
  """Initialises float32 parameters with a dummy batch of `frames` mel frames.

  Args:
    model: a built network (its `hop_length` in samples sets the dummy audio's length).
    n_mels: mel channels of the conditioning.
    rng: PRNG key.
    frames: mel frames of the dummy batch (audio of frames * hop_length samples).
  """
  hop = model.hop_length
  audio = jnp.zeros((1, frames * hop), jnp.float32)
  mel = jnp.zeros((1, frames, n_mels), jnp.float32)
  # Jitted: run op by op, initialising the tiny config took 20 s on 2 cores; compiled, about 2.
  return jax.jit(lambda r: model.init(r, audio, mel, jnp.ones((1,)))['params'])(rng)


def count_params(params):
  """Number of scalar parameters in a pytree."""
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def macs_per_second(model, n_mels, sample_rate, seconds=1.0):
  """Multiply-accumulates of one network evaluation per second of audio (XLA's flop count / 2).

  Counted on the compiled forward pass over `seconds` of audio (whole mel frames of the model's
  `hop_length` samples, `n_mels` channels, at `sample_rate` Hz), so every layer of any registered
  network is included (the frame network's STFT pair too).
  """
  hop, rate = int(model.hop_length), int(sample_rate)
  frames = max(1, int(round(seconds * rate / hop)))
  shapes = jax.eval_shape(lambda: init_params(model, n_mels, jax.random.key(0)))
  forward = jax.jit(lambda p, x, m: model.apply({'params': p}, x, m, jnp.ones((1,))))
  compiled = forward.lower(shapes, jax.ShapeDtypeStruct((1, frames * hop), jnp.float32),
                           jax.ShapeDtypeStruct((1, frames, int(n_mels)),
                                                jnp.float32)).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops']) / 2.0 * rate / (frames * hop)


def size_summary(model, spec):
  """{'name', 'parameters', 'macs_per_second'} of a network built from `spec` (a `ModelSpec`)."""
  shapes = jax.eval_shape(lambda: init_params(model, spec.n_mels, jax.random.key(0)))
  return {'name': spec.name, 'parameters': count_params(shapes),
          'macs_per_second': macs_per_second(model, spec.n_mels, spec.sample_rate)}


def random_params(model, n_mels, seed=0):
  """Random float32 parameters of the right shapes and a fan-in scale, for benchmarks and tests.

  Drawn with numpy: the orthogonal initialisers (and one jitted jax.random call per distinct leaf
  shape) would compile dozens of programs, which is slow on CPU.
  """
  shapes = jax.eval_shape(lambda: init_params(model, n_mels, jax.random.key(seed)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape).astype(x.dtype)
                                            / max(1, np.prod(x.shape[:-1])) ** 0.5), shapes)


# ------------------------------------------------------------------------------- discriminators

# config.adversarial.discriminators names -> the module class; each name's fields come from
# config.adversarial.<name> (a section of the module's fields). Adding a discriminator is one
# module in this package plus one entry here.
DISCRIMINATORS = {
    'mpd': discriminator_lib.MultiPeriodDiscriminator,      # HiFi-GAN's multi-period
    'mrd': discriminator_lib.MultiResolutionDiscriminator,  # UnivNet's / Vocos's multi-resolution
}


def _hashable(value):
  if isinstance(value, (list, tuple)):
    return tuple(_hashable(v) for v in value)
  return value


def build_discriminators(names, fields):
  """The `discriminators.Discriminators` of registered names, each with its own fields.

  Args:
    names: sequence of `DISCRIMINATORS` keys, e.g. ('mpd', 'mrd'); at least one.
    fields: {name: {field: value}} of each module's fields (missing names take the defaults).
  Raises:
    ValueError: an unknown or repeated name, an empty list, or a field the module lacks.
  """
  names = tuple(names)
  if not names:
    raise ValueError(f'adversarial.discriminators is empty: name at least one of '
                     f'{sorted(DISCRIMINATORS)}')
  members = []
  for name in names:
    if name not in DISCRIMINATORS:
      raise ValueError(f'adversarial.discriminators: {name!r} is not a registered discriminator; '
                       f'choose from {sorted(DISCRIMINATORS)}')
    if names.count(name) > 1:
      raise ValueError(f'adversarial.discriminators names {name!r} twice')
    cls = DISCRIMINATORS[name]
    own = dict(fields.get(name, {}))
    known = {f.name for f in dataclasses.fields(cls)} - {'parent', 'name'}
    unknown = sorted(set(own) - known)
    if unknown:
      raise ValueError(f'adversarial.{name} has no field(s) {unknown}; its fields are '
                       f'{sorted(known)}')
    members.append((name, cls, tuple(sorted((k, _hashable(v)) for k, v in own.items()))))
  return discriminator_lib.Discriminators(tuple(members))

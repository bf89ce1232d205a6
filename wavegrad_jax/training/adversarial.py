"""Adversarial fine-tuning of the unrolled k-step sampler: its options, state and pure step.

The generator is the process's own sampler over a fixed k-step grid (Flow2GAN, arXiv 2512.23278,
k2-fsa/Flow2GAN; PeriodWave-Turbo, arXiv 2408.08019): mel and source draw in, waveform out,
differentiated end to end through every step (one `jax.vjp` of the jitted sampler; with `remat`
each network call is recomputed in the backward pass instead of stored). The discriminators
(`models.DISCRIMINATORS`, HiFi-GAN's multi-period and UnivNet's multi-resolution) and the losses
(`gan_losses`: LSGAN or hinge, feature matching, mel L1) follow HiFi-GAN's training step
(jik876/hifi-gan train.py): generate once; update the discriminators on the detached output;
then update the generator against the updated discriminators. Both optimiser states live in one
`AdversarialState`, so one orbax checkpoint holds everything and a SIGKILL resumes exactly.

The step's PRNG key is fold_in(key(seed), step), as in the main train step: the sampler's source
draws (noise, Griffin-Lim's start) do not depend on the mesh, so 1 and 2 devices agree.
"""
import dataclasses
import functools
from typing import Any, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.audio import conventions
from wavegrad_jax.training import gan_losses
from wavegrad_jax.training import parallel
from wavegrad_jax.training.state import create_train_state
from wavegrad_jax.training.state import ema_decay
from wavegrad_jax.training.state import learning_rate_schedule
from wavegrad_jax.training.step import batch_shapes
from wavegrad_jax.training.step import step_rng

MAX_STEPS = 8
WEIGHTS = ('adversarial_weight', 'feature_weight', 'mel_weight')


@dataclasses.dataclass(frozen=True)
class AdversarialOptions:
  """config.adversarial, read once at the edge.

  Attributes:
    teacher: the workdir the generator starts from (recorded; a resume must name the same one).
    steps: k, the unrolled sampler's network-evaluation steps (1 .. MAX_STEPS).
    schedule: the k-step grid spec of the process ('' : 'k', uniform times for 'flow', the
      named schedule 'k' for 'wavegrad').
    discriminators: names in `models.DISCRIMINATORS`.
    discriminator_fields: ((name, ((field, value), ...)), ...) from config.adversarial.<name>.
    loss: 'lsgan' or 'hinge'.
    adversarial_weight, feature_weight, mel_weight: the generator's loss weights (>= 0).
    disc_learning_rate, disc_adam_b1, disc_adam_b2: the discriminators' Adam.
    remat: recompute each network call in the backward pass (memory for k > 1).
  """
  teacher: str = ''
  steps: int = 1
  schedule: str = ''
  discriminators: Tuple[str, ...] = ('mpd', 'mrd')
  discriminator_fields: Tuple[Any, ...] = ()
  loss: str = 'lsgan'
  adversarial_weight: float = 1.0
  feature_weight: float = 2.0
  mel_weight: float = 45.0
  disc_learning_rate: float = 2e-4
  disc_adam_b1: float = 0.8
  disc_adam_b2: float = 0.99
  remat: bool = False

  def __post_init__(self):
    if isinstance(self.steps, bool) or int(self.steps) != self.steps or not (
        1 <= self.steps <= MAX_STEPS):
      raise ValueError(f'adversarial.steps must be an integer from 1 to {MAX_STEPS} (the '
                       f'unrolled sampler\'s steps), got {self.steps!r}')
    if self.loss not in gan_losses.GAN_LOSSES:
      raise ValueError(f'adversarial.loss must be one of {gan_losses.GAN_LOSSES}, got '
                       f'{self.loss!r}')
    for name in WEIGHTS:
      value = getattr(self, name)
      if not (np.isfinite(value) and value >= 0):
        raise ValueError(f'adversarial.{name} must be >= 0, got {value}')
    if not self.disc_learning_rate > 0:
      raise ValueError(f'adversarial.disc_learning_rate must be > 0, got '
                       f'{self.disc_learning_rate}')
    self.build_discriminators()  # an unknown name or field is refused here, before any work

  @classmethod
  def from_config(cls, config):
    """The options of a full config's `adversarial` section."""
    a = config.adversarial
    names = tuple(a.discriminators)
    fields = tuple((n, tuple(sorted(dict(a.get(n, {})).items()))) for n in names
                   if n in model_lib.DISCRIMINATORS)
    return cls(teacher=str(a.get('teacher', '')), steps=a.steps, schedule=str(a.schedule),
               discriminators=names, discriminator_fields=fields, loss=a.loss,
               adversarial_weight=float(a.adversarial_weight),
               feature_weight=float(a.feature_weight), mel_weight=float(a.mel_weight),
               disc_learning_rate=float(a.disc_learning_rate),
               disc_adam_b1=float(a.disc_adam_b1), disc_adam_b2=float(a.disc_adam_b2),
               remat=bool(a.remat))

  def build_discriminators(self):
    """The `models.discriminators.Discriminators` module these options name."""
    return model_lib.build_discriminators(
        self.discriminators, {n: dict(f) for n, f in self.discriminator_fields})

  def grid_spec(self):
    """The spec of the k-step grid ('' means k)."""
    return self.schedule or str(int(self.steps))

  def disc_optimizer(self):
    """The discriminators' Adam (HiFi-GAN: lr 2e-4, betas 0.8, 0.99)."""
    return optax.adam(self.disc_learning_rate, b1=self.disc_adam_b1, b2=self.disc_adam_b2)


@flax.struct.dataclass
class AdversarialState:
  """A fine-tune's whole state: the generator's (as `TrainState`) and the discriminators'.

  Attributes:
    step: int32 scalar, completed updates of the fine-tune.
    params, ema_params, opt_state: the generator (the network the sampler calls).
    disc_params, disc_opt_state: the discriminators and their Adam state.
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  disc_params: Any
  disc_opt_state: Any


def create_state(model, tx, disc, disc_tx, config):
  """A fresh AdversarialState: the generator as `create_train_state`, the discriminators from
  fold_in(key(config.seed), 1) on a crop of the training length; pure (jit it)."""
  base = create_train_state(model, tx, config)
  length = batch_shapes(config, 1)['audio'][1]
  disc_params = disc.init(jax.random.fold_in(jax.random.key(config.seed), 1),
                          jnp.zeros((1, length), jnp.float32))
  return AdversarialState(step=base.step, params=base.params, ema_params=base.ema_params,
                          opt_state=base.opt_state, disc_params=disc_params,
                          disc_opt_state=disc_tx.init(disc_params))


def abstract_state(model, tx, disc, disc_tx, config, mesh):
  """(ShapeDtypeStruct AdversarialState with shardings, the per-leaf shardings)."""
  shapes = jax.eval_shape(functools.partial(create_state, model, tx, disc, disc_tx, config))
  shardings = parallel.state_shardings(shapes, mesh, parallel.MeshSpec.from_config(config.mesh))
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          shapes, shardings)
  return abstract, shardings


def init_state(model, tx, disc, disc_tx, config, mesh):
  """A fresh AdversarialState laid out on `mesh`."""
  _, shardings = abstract_state(model, tx, disc, disc_tx, config, mesh)
  return jax.jit(functools.partial(create_state, model, tx, disc, disc_tx, config),
                 out_shardings=shardings)()


def make_generator(model, config, options):
  """generate(params, mel [B, F, M], rng) -> [B, F * hop]: the process's sampler over the k-step
  grid, differentiable in params; and the grid's network evaluations.

  Raises:
    ValueError: a grid that is not k steps, or sampling settings the process cannot run.
  """
  process = processes.from_config(config)
  grid = processes.parse_grid_from_config(config, options.grid_spec())
  evaluations = processes.network_evaluations_from_config(config, grid)
  if evaluations != options.steps:
    raise ValueError(f'adversarial.schedule={options.grid_spec()!r} costs {evaluations} network '
                     f'evaluations under sampling.solver, but adversarial.steps={options.steps}: '
                     'give a grid of that many steps (or leave adversarial.schedule empty)')
  net_fn = sampling.model_eps_fn(model)
  if options.remat:
    net_fn = jax.checkpoint(net_fn)
  sampler = processes.make_sampler_from_config(process, net_fn, config)
  grid = jnp.asarray(grid, jnp.float32)

  def generate(params, mel, rng):
    return sampler(params, grid, mel, rng)

  return generate, evaluations


def adversarial_step(state, batch, *, generate, disc, tx, disc_tx, frontend, options, seed,
                     train_config):
  """One discriminator update, then one generator update, on a global batch; pure.

  Args:
    state: AdversarialState.
    batch: {'audio': [B, T] clean crops, 'mel': [B, T / hop, n_mels] conditioning log-mels}.
    generate: `make_generator`'s function.
    disc: the discriminators module.
    tx, disc_tx: the generator's and the discriminators' optax optimisers.
    frontend: `conventions.Frontend` of the mel loss.
    options: `AdversarialOptions`.
    seed: config.seed; update n draws the sampler's source from fold_in(key(seed), n).
    train_config: the `train` section (EMA, learning-rate schedule).
  Returns:
    (new state, metrics: loss (the generator's total), disc_loss, loss_adversarial,
    loss_feature, loss_mel, grad_norm, disc_grad_norm, learning_rate).
  """
  rng = step_rng(seed, state.step)
  audio = batch['audio'].astype(jnp.float32)
  mel = batch['mel'].astype(jnp.float32)
  fake, pullback = jax.vjp(lambda p: generate(p, mel, rng), state.params)

  def disc_loss_fn(disc_params):
    real_logits, _ = disc.apply(disc_params, audio)
    fake_logits, _ = disc.apply(disc_params, jax.lax.stop_gradient(fake))
    return gan_losses.discriminator_loss(real_logits, fake_logits, options.loss)

  disc_loss, disc_grads = jax.value_and_grad(disc_loss_fn)(state.disc_params)
  disc_updates, disc_opt_state = disc_tx.update(disc_grads, state.disc_opt_state,
                                                state.disc_params)
  disc_params = optax.apply_updates(state.disc_params, disc_updates)

  def generator_loss_fn(estimate):
    _, real_features = disc.apply(disc_params, audio)
    fake_logits, fake_features = disc.apply(disc_params, estimate)
    parts = {'adversarial': gan_losses.generator_adversarial_loss(fake_logits, options.loss),
             'feature': gan_losses.feature_matching_loss(real_features, fake_features),
             'mel': gan_losses.mel_l1_loss(estimate, audio, frontend)}
    total = (options.adversarial_weight * parts['adversarial']
             + options.feature_weight * parts['feature'] + options.mel_weight * parts['mel'])
    return total, parts

  (loss, parts), fake_grad = jax.value_and_grad(generator_loss_fn, has_aux=True)(fake)
  (grads,) = pullback(fake_grad)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = ema_decay(train_config, state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  metrics = {'loss': loss, 'disc_loss': disc_loss, 'grad_norm': optax.tree.norm(grads),
             'disc_grad_norm': optax.tree.norm(disc_grads),
             'learning_rate': jnp.asarray(learning_rate_schedule(train_config)(state.step),
                                          jnp.float32),
             **{f'loss_{k}': v for k, v in parts.items()}}
  new_state = AdversarialState(step=state.step + 1, params=params, ema_params=ema_params,
                               opt_state=opt_state, disc_params=disc_params,
                               disc_opt_state=disc_opt_state)
  return new_state, metrics


def compile_adversarial_step(model, tx, disc, disc_tx, config, options, mesh, shardings):
  """`adversarial_step` compiled ahead of time for the run's batch and shardings (the state
  donated), as `step.compile_train_step`: compiled(state, batch) -> (state, metrics)."""
  mesh_spec = parallel.MeshSpec.from_config(config.mesh)
  parallel.check_batch_size(int(config.train.batch_size), mesh, mesh_spec)
  generate, _ = make_generator(model, config, options)
  fn = functools.partial(adversarial_step, generate=generate, disc=disc, tx=tx, disc_tx=disc_tx,
                         frontend=conventions.Frontend.from_config(config.audio),
                         options=options, seed=int(config.seed), train_config=config.train)
  data_sharding = parallel.batch_sharding(mesh, mesh_spec)
  jitted = jax.jit(fn, in_shardings=(shardings, data_sharding),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=(0,))
  abstract, _ = abstract_state(model, tx, disc, disc_tx, config, mesh)
  abstract_batch = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=data_sharding)
                    for k, s in batch_shapes(config, int(config.train.batch_size)).items()}
  return jitted.lower(abstract, abstract_batch).compile()

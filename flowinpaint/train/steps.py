"""Pure train and eval step functions for every inpainting GAN.

One generator forward and backward per step: the generator's output is computed once under
`jax.vjp`; the discriminator learns on it (stop-gradient), then the generator's loss is
differentiated with respect to that output and pulled back through the saved vjp. The phase is
a static argument, so at most three executables are compiled.
"""

import dataclasses
from typing import Any, Callable, Optional

from clu import metrics as clu_metrics
import flax
import jax
import jax.numpy as jnp
import optax

from flowinpaint.train import feature_losses, losses
from flowinpaint.train.phases import Phase
from flowinpaint.train.state import GanState

METRIC_NAMES = ("g_loss", "recon_loss", "g_adv_loss", "d_loss", "d_real", "d_fake",
                "gradient_penalty", "l1_hole", "g_grad_norm", "d_grad_norm", "perceptual_loss",
                "style_loss", "correctness_loss", "feature_matching_loss")


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  g_loss: clu_metrics.Average.from_output("g_loss")
  recon_loss: clu_metrics.Average.from_output("recon_loss")
  g_adv_loss: clu_metrics.Average.from_output("g_adv_loss")
  d_loss: clu_metrics.Average.from_output("d_loss")
  d_real: clu_metrics.Average.from_output("d_real")
  d_fake: clu_metrics.Average.from_output("d_fake")
  gradient_penalty: clu_metrics.Average.from_output("gradient_penalty")
  l1_hole: clu_metrics.Average.from_output("l1_hole")
  g_grad_norm: clu_metrics.Average.from_output("g_grad_norm")
  d_grad_norm: clu_metrics.Average.from_output("d_grad_norm")
  perceptual_loss: clu_metrics.Average.from_output("perceptual_loss")
  style_loss: clu_metrics.Average.from_output("style_loss")
  correctness_loss: clu_metrics.Average.from_output("correctness_loss")
  feature_matching_loss: clu_metrics.Average.from_output("feature_matching_loss")


# Generator outputs the step reads. 'target' (optional) replaces the image as what the output
# should match; 'extra_loss' (optional scalar) is added to the generator's loss as it is;
# 'condition' (optional, [B, H, W, C']) is put before the discriminator's input channels, real
# and fake alike (a conditional discriminator: EdgeConnect's edge stage sees [gray, edges]).
_DIFFERENTIABLE_OUTPUTS = ("output", "coarse", "target", "extra_loss", "condition")
_CONSTANT_OUTPUTS = ("target", "condition")
DISCRIMINATOR_INPUTS = ("composite", "output")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The hashable subset of config.loss that the step needs."""
  reconstruction: str = "l1"
  reconstruction_weight: float = 1.0
  coarse_weight: float = 1.0
  adversarial: str = "hinge"
  adversarial_weight: float = 1.0
  gp_weight: float = 10.0
  discount_gamma: float = 0.99
  d_steps: int = 1
  # VGG feature losses; their frozen VGG params are the train step's `vgg_params` argument.
  features: feature_losses.FeatureLossConfig = feature_losses.FeatureLossConfig()
  # What the discriminator sees as fake: the output pasted into the real image ('composite')
  # or the raw output ('output', EdgeConnect).
  discriminator_input: str = "composite"
  # Discriminator feature matching (EdgeConnect's edge stage): weight x sum over the
  # discriminator's activations of mean|F(fake) - F(real)|; the discriminator must accept
  # `return_features=True` and return (logits, [activations]).
  feature_matching_weight: float = 0.0

  def __post_init__(self):
    if self.discriminator_input not in DISCRIMINATOR_INPUTS:
      raise ValueError(f"unknown discriminator_input {self.discriminator_input!r}; choose from "
                       f"{DISCRIMINATOR_INPUTS}")

  @classmethod
  def from_config(cls, config) -> "LossConfig":
    c = config.loss
    features = feature_losses.FeatureLossConfig(
        recipe=c.get("feature_recipe", "none"), perceptual_weight=c.get("perceptual_weight", 0.0),
        style_weight=c.get("style_weight", 0.0),
        correctness_weight=c.get("correctness_weight", 0.0))
    return cls(reconstruction=c.reconstruction, reconstruction_weight=c.reconstruction_weight,
               coarse_weight=c.coarse_weight, adversarial=c.adversarial,
               adversarial_weight=c.adversarial_weight, gp_weight=c.gp_weight,
               discount_gamma=c.discount_gamma, d_steps=config.d_steps_per_g_step,
               features=features,
               discriminator_input=c.get("discriminator_input", "composite"),
               feature_matching_weight=c.get("feature_matching_weight", 0.0))


def composite(pred: jax.Array, image: jax.Array, mask: jax.Array) -> jax.Array:
  """The generator's prediction inside the hole, the input everywhere else."""
  return pred * mask + image * (1.0 - mask)


def _split_vars(variables):
  params = variables["params"]
  rest = {k: v for k, v in variables.items() if k != "params"}
  return params, rest


def _apply(module, params, rest, *args, train: bool, **kwargs):
  """Applies a module; returns (output, updated non-param collections)."""
  variables = {"params": params, **rest}
  if train and rest:
    out, updated = module.apply(variables, *args, train=True, mutable=list(rest), **kwargs)
    return out, dict(updated)
  return module.apply(variables, *args, train=train, **kwargs), rest


def critic_input(x: jax.Array, condition: Optional[jax.Array]) -> jax.Array:
  """What a discriminator sees: `x`, after the generator's 'condition' channels if any."""
  if condition is None:
    return x
  return jnp.concatenate([condition.astype(x.dtype), x], axis=-1)


def make_train_step(generator, discriminator: Optional[Any], g_tx: optax.GradientTransformation,
                    d_tx: Optional[optax.GradientTransformation], loss_cfg: LossConfig
                    ) -> Callable[..., tuple[GanState, TrainMetrics]]:
  """Builds `train_step(state, batch, phase, vgg_params=None) -> (state, metrics)`.

  `batch` = {'image': [B, H, W, C] in [-1, 1], 'mask': [B, H, W, 1], 1 = hole, and optionally
  'target': what the output should match when it is not the image (e.g. a flow)}. `phase` is a
  `Phase` and must be static under jit; `state` may be donated. `vgg_params` (frozen VGG
  weights) is required when `loss_cfg.features` is active.
  """
  recon_fn = losses.reconstruction_loss(loss_cfg.reconstruction, gamma=loss_cfg.discount_gamma)
  adv_name = loss_cfg.adversarial
  if discriminator is not None and adv_name not in losses.ADVERSARIAL:
    raise ValueError(f"unknown adversarial loss {adv_name!r}; choose from "
                     f"{sorted(losses.ADVERSARIAL)}")
  d_adv, g_adv = losses.ADVERSARIAL.get(adv_name, (None, None))

  def d_update(d_vars, d_opt, real, fake, mask, rng):
    # `real` and `fake` already carry the condition channels (critic_input).
    d_params, d_rest = _split_vars(d_vars)

    def loss_fn(params):
      # Real and fake interleaved per sample (r0, f0, r1, f1, ...), not concatenated: each
      # device's shard of the batch stays on that device (a concatenation along the sharded
      # batch axis would move half of every shard to another device).
      b = real.shape[0]
      both = jnp.stack([real, fake], axis=1).reshape((2 * b,) + real.shape[1:])
      both_mask = jnp.repeat(mask, 2, axis=0)
      logits, new_rest = _apply(discriminator, params, d_rest, both, both_mask, train=True)
      # A discriminator may be several critics (a dict of scores): losses add up over them.
      critics = jax.tree.leaves(logits)
      pairs = [c.reshape((b, 2) + c.shape[1:]) for c in critics]
      halves = [(p[:, 0], p[:, 1]) for p in pairs]
      loss = sum(d_adv(r, f) for r, f in halves)
      gp = jnp.zeros(())
      if adv_name == "wgan_gp":
        alpha = jax.random.uniform(rng, (real.shape[0], 1, 1, 1))
        for i in range(len(critics)):  # One penalty per critic, as DeepFill v1 does.
          critic = lambda x, i=i: jax.tree.leaves(
              _apply(discriminator, params, new_rest, x, mask, train=False)[0])[i]
          gp = gp + losses.gradient_penalty(critic, real, fake, mask, alpha)
        loss = loss + loss_cfg.gp_weight * gp
      d_real = jnp.mean(jnp.stack([jnp.mean(r) for r, _ in halves]))
      d_fake = jnp.mean(jnp.stack([jnp.mean(f) for _, f in halves]))
      return loss, (new_rest, d_real, d_fake, gp)

    (loss, (new_rest, d_real, d_fake, gp)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        d_params)
    updates, d_opt = d_tx.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)
    stats = dict(d_loss=loss, d_real=d_real, d_fake=d_fake, gradient_penalty=gp,
                 d_grad_norm=optax.tree.norm(grads))
    return {"params": d_params, **new_rest}, d_opt, stats

  # The appearance flow is differentiated only when a loss reads it.
  outputs = _DIFFERENTIABLE_OUTPUTS + (("flow",) if loss_cfg.features.correctness_weight else ())

  def fake_image(output, target, mask):
    if loss_cfg.discriminator_input == "output":
      return output
    return composite(output, target, mask)

  def train_step(state: GanState, batch, phase: Phase, vgg_params=None):
    if discriminator is None and phase is not Phase.RECONSTRUCTION:
      raise ValueError(f"phase {phase.value!r} needs a discriminator; this model has none")
    if loss_cfg.features.active and vgg_params is None:
      raise ValueError(f"the {loss_cfg.features.recipe!r} feature losses need VGG weights: pass "
                       "vgg_params, or set their weights to 0")
    image, mask = batch["image"], batch["mask"]
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    stats = {name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES}
    g_params, g_rest = _split_vars(state.g_vars)

    def forward(params):
      outs, new_rest = _apply(generator, params, g_rest, image, mask,
                              train=phase.trains_generator)
      preds = {k: outs[k].astype(jnp.float32) for k in outputs if k in outs}
      for k in _CONSTANT_OUTPUTS:
        if k in preds:
          preds[k] = jax.lax.stop_gradient(preds[k])
      return preds, new_rest

    if phase.trains_generator:
      preds, g_vjp, new_g_rest = jax.vjp(forward, g_params, has_aux=True)
    else:
      preds, new_g_rest = forward(g_params)
      preds = jax.tree.map(jax.lax.stop_gradient, preds)
    # A model that predicts something other than the image (e.g. a structure map) names its
    # target; the reconstruction loss and the discriminator's real input then use it.
    real = preds.get("target", batch.get("target", image))
    fake = fake_image(preds["output"], real, mask)
    condition = preds.get("condition")

    d_vars, d_opt = state.d_vars, state.d_opt
    if phase.trains_discriminator:
      for i in range(loss_cfg.d_steps):
        d_vars, d_opt, d_stats = d_update(
            d_vars, d_opt, critic_input(real, condition),
            critic_input(jax.lax.stop_gradient(fake), condition), mask,
            jax.random.fold_in(rng, i))
      stats.update(d_stats)

    g_vars, g_opt = state.g_vars, state.g_opt
    if phase.trains_generator:
      d_params, d_rest = _split_vars(d_vars) if d_vars else (None, None)

      def g_loss_fn(preds):
        target = preds.get("target", batch.get("target", image))
        recon = loss_cfg.reconstruction_weight * recon_fn(preds["output"], target, mask)
        if "coarse" in preds:
          recon = recon + (loss_cfg.reconstruction_weight * loss_cfg.coarse_weight *
                           recon_fn(preds["coarse"], target, mask))
        adv = fm = jnp.zeros(())
        if phase is Phase.JOINT:
          cond = preds.get("condition")
          fake_in = critic_input(fake_image(preds["output"], target, mask), cond)
          if loss_cfg.feature_matching_weight:
            (fake_logits, fake_feats), _ = _apply(discriminator, d_params, d_rest, fake_in, mask,
                                                  train=False, return_features=True)
            (_, real_feats), _ = _apply(discriminator, d_params, d_rest,
                                        critic_input(target, cond), mask, train=False,
                                        return_features=True)
            fm = loss_cfg.feature_matching_weight * sum(
                jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
                for f, r in zip(fake_feats, real_feats))
          else:
            fake_logits, _ = _apply(discriminator, d_params, d_rest, fake_in, mask, train=False)
          adv = sum(g_adv(c) for c in jax.tree.leaves(fake_logits))
        extra = preds.get("extra_loss", jnp.zeros(()))
        feats = feature_losses.feature_losses(loss_cfg.features, vgg_params, preds, target, image,
                                              mask)
        total = recon + loss_cfg.adversarial_weight * adv + fm + extra + sum(feats.values())
        return total, (recon, adv, fm, feats)

      (g_loss, (recon, adv, fm, feats)), pred_grads = jax.value_and_grad(
          g_loss_fn, has_aux=True)(preds)
      (grads,) = g_vjp(pred_grads)
      updates, g_opt = g_tx.update(grads, state.g_opt, g_params)
      g_vars = {"params": optax.apply_updates(g_params, updates), **new_g_rest}
      stats.update(g_loss=g_loss, recon_loss=recon, g_adv_loss=adv, feature_matching_loss=fm,
                   g_grad_norm=optax.tree.norm(grads), **feats)

    hole = jnp.maximum(jnp.sum(mask) * 3.0, 1.0)
    stats["l1_hole"] = jnp.sum(jnp.abs(preds["output"] - real) * mask) / hole
    new_state = state.replace(step=state.step + 1, g_vars=g_vars, g_opt=g_opt, d_vars=d_vars,
                              d_opt=d_opt)
    return new_state, TrainMetrics.single_from_model_output(**stats)

  return train_step


def make_predict_fn(generator) -> Callable[[Any, jax.Array, jax.Array], dict[str, jax.Array]]:
  """`predict(g_vars, image, mask) -> {'output': composited, 'target': what it should match}`."""

  def predict(g_vars, image, mask):
    outs = generator.apply(g_vars, image, mask, train=False)
    output = outs["output"].astype(jnp.float32)
    target = outs.get("target")
    if target is None:
      # Only an output shaped like the input (an image) is composited with it; another kind
      # of output (a flow from frames) stands as it is.
      target = image if image.shape[-1] == output.shape[-1] else output
    target = target.astype(jnp.float32)
    return {"output": composite(output, target, mask), "target": target}

  return predict

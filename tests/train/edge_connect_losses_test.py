"""What EdgeConnect needs from the shared trainer: a conditional discriminator that sees the raw
output, discriminator feature matching, the non-saturating GAN, L1 over the hole fraction and the
VGG losses on unstandardised [0, 1] images (against an independent torch computation)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flowinpaint.models import vgg
from flowinpaint.train import feature_losses as fl
from flowinpaint.train import losses
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train.phases import Phase

SIZE, BATCH = 16, 4


class EdgeToyGenerator(nn.Module):
  """Predicts a 1-channel map; its target and the discriminator's condition come from the image."""

  @nn.compact
  def __call__(self, image, mask, *, train):
    out = jnp.tanh(nn.Conv(1, (3, 3))(jnp.concatenate([image * (1 - mask), mask], -1)))
    return {"output": out, "target": jnp.sign(image[..., :1]),
            "condition": jnp.mean(image, -1, keepdims=True)}


class ConditionalToyDiscriminator(nn.Module):
  """Requires [condition, map] (2 channels); returns (logits, [activations]) when asked."""

  @nn.compact
  def __call__(self, x, mask, *, train, return_features=False):
    assert x.shape[-1] == 2, x.shape
    f1 = nn.leaky_relu(nn.Conv(3, (3, 3), strides=2)(x), 0.2)
    logits = nn.Conv(1, (3, 3))(f1)
    return (logits, [f1, logits]) if return_features else logits


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  mask = np.zeros((BATCH, SIZE, SIZE, 1), np.float32)
  mask[:, 3:11, 4:12] = 1.0
  return {"image": jnp.asarray(image), "mask": jnp.asarray(mask)}


@pytest.mark.parametrize("discriminator_input", ["output", "composite"])
def test_conditional_discriminator_feature_matching_and_nsgan(discriminator_input):
  g, d = EdgeToyGenerator(), ConditionalToyDiscriminator()
  g_tx, d_tx = optax.adam(1e-3), optax.adam(0.0)  # D frozen: its losses are checkable after
  state = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, g_tx, d_tx,
                                 image_size=SIZE)  # initialises D on 2 channels
  cfg = steps.LossConfig(reconstruction_weight=0.0, adversarial="nsgan",
                         discriminator_input=discriminator_input, feature_matching_weight=10.0)
  step = jax.jit(steps.make_train_step(g, d, g_tx, d_tx, cfg), static_argnames="phase")
  batch = _batch()
  _, metrics = step(state, batch, phase=Phase.JOINT)
  metrics = {k: float(v) for k, v in metrics.compute().items()}

  outs = g.apply(state.g_vars, batch["image"], batch["mask"], train=True)
  fake = outs["output"]
  if discriminator_input == "composite":
    fake = fake * batch["mask"] + outs["target"] * (1 - batch["mask"])
  critic = lambda x: d.apply(state.d_vars, jnp.concatenate([outs["condition"], x], -1), None,
                             train=False, return_features=True)
  real_logits, real_feats = critic(outs["target"])
  fake_logits, fake_feats = critic(fake)
  bce = lambda logits, label: -np.mean(label * np.log(jax.nn.sigmoid(logits)) +
                                       (1 - label) * np.log(1 - jax.nn.sigmoid(logits)))
  np.testing.assert_allclose(metrics["d_loss"], 0.5 * (bce(real_logits, 1) + bce(fake_logits, 0)),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["g_adv_loss"], bce(fake_logits, 1), rtol=1e-5)
  fm = 10 * sum(np.mean(np.abs(f - r)) for f, r in zip(fake_feats, real_feats))
  np.testing.assert_allclose(metrics["feature_matching_loss"], fm, rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], metrics["g_adv_loss"] + fm, rtol=1e-5)
  assert metrics["recon_loss"] == 0.0


def test_unknown_discriminator_input_is_refused():
  with pytest.raises(ValueError, match="discriminator_input"):
    steps.LossConfig(discriminator_input="raw")


def test_l1_over_hole_and_nsgan():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
  mask = np.zeros((2, 4, 4, 1))
  mask[:, 1:3, 1:3] = 1  # a quarter of the pixels
  got = losses.l1_over_hole(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
  np.testing.assert_allclose(got, np.mean(np.abs(pred - target)) / 0.25, rtol=1e-6)
  assert np.isfinite(losses.l1_over_hole(jnp.asarray(pred), jnp.asarray(target),
                                         jnp.zeros_like(jnp.asarray(mask))))
  real, fake = jnp.asarray(rng.normal(size=(8,))), jnp.asarray(rng.normal(size=(8,)))
  d_loss, g_loss = losses.ADVERSARIAL["nsgan"]
  np.testing.assert_allclose(d_loss(real, fake), 0.5 * losses.bce_d(real, fake), rtol=1e-6)
  assert g_loss is losses.bce_g


def test_edge_connect_vgg_losses_against_torch():
  torch = pytest.importorskip("torch", reason="torch is an optional extra")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  net = torchvision.models.vgg19(weights=None).features.eval()
  params = vgg.from_torchvision({f"features.{k}": v.numpy() for k, v in net.state_dict().items()},
                                19)
  rng = np.random.default_rng(0)
  out = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  gt = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  mask = np.zeros((2, 32, 32, 1), np.float32)
  mask[:, 8:24, 4:20] = 1

  # EdgeConnect's PerceptualLoss and StyleLoss, written from its loss.py's definitions: VGG-19
  # on [0, 1] images as they are; L1 of relu1_1 ... relu5_1; L1 of Gram matrices (/ C H W) of
  # relu2_2, relu3_4, relu4_4, relu5_2 of out * M and gt * M.
  names = {1: "relu1_1", 3: "relu1_2", 6: "relu2_1", 8: "relu2_2", 11: "relu3_1", 17: "relu3_4",
           20: "relu4_1", 26: "relu4_4", 29: "relu5_1", 31: "relu5_2"}

  def feats(x01):
    h, got = torch.from_numpy(x01.transpose(0, 3, 1, 2)), {}
    for i, layer in enumerate(net):
      h = layer(h)
      if i in names:
        got[names[i]] = h
      if i == 31:
        return got

  def gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)

  with torch.no_grad():
    o01, g01 = (out + 1) / 2, (gt + 1) / 2
    fo, fg = feats(o01), feats(g01)
    content = sum(float((fo[n] - fg[n]).abs().mean())
                  for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    fo, fg = feats(o01 * mask), feats(g01 * mask)
    style = sum(float((gram(fo[n]) - gram(fg[n])).abs().mean())
                for n in ("relu2_2", "relu3_4", "relu4_4", "relu5_2"))

  cfg = fl.FeatureLossConfig("edge_connect", perceptual_weight=0.1, style_weight=250.0)
  got = fl.feature_losses(cfg, params, {"output": jnp.asarray(out)}, jnp.asarray(gt),
                          jnp.asarray(gt), jnp.asarray(mask))
  np.testing.assert_allclose(got["perceptual_loss"], 0.1 * content, rtol=2e-4)
  np.testing.assert_allclose(got["style_loss"], 250.0 * style, rtol=2e-4)
  assert float(got["correctness_loss"]) == 0.0

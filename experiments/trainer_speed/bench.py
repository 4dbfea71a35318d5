r"""DeepFill v2 train step on the CPU: flowinpaint next to the PyTorch port, interleaved.

  python experiments/trainer_speed/bench.py --peer-dir /path/to/deepfillv2-pytorch \
      --rounds 5 --parts --jsonl experiments/trainer_speed/cpu.jsonl

Three systems take turns in one process, round after round (the order rotates), so that a
loaded machine slows them alike: `fi` (flowinpaint's train step as the library builds it,
`flowinpaint.bench.prepare`), `fi_xla` (the same step traced with XLA's own convolution
gradients, `lax.conv_general_dilated` in place of `flowinpaint.layers.conv`: the formulation
before this study) and `port` (the PyTorch port's generator and SN-PatchGAN discriminator,
imported at run time from the checkout that --peer-dir names, never copied; its train.py's
step: D hinge loss on real and completed images in one batch, Adam; then G with L1 of both
stages + the hinge G loss, Adam; lr 1e-4, betas (0.5, 0.999), as configs/deepfill_v2.py).
Random weights and inputs, a centred square hole of a quarter of the area, fp32, both
libraries on every core the process may use (XLA's pool is its core count; torch gets
--threads, that count by default). Each round prints every system's ms per image and the ratios;
the summary gives medians over rounds, and the median of the per-round ratios.

--parts adds the pieces (generator forward + backward, discriminator forward + backward on the
real and fake batch, contextual attention forward + backward at 64x64x96) for the three systems,
interleaved the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from unittest import mock

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def xla_convs():
  """Traces flowinpaint's layers with XLA's own conv gradients (the old formulation)."""
  from jax import lax

  from flowinpaint.layers import conv as conv_lib
  with mock.patch.object(conv_lib, "conv_general_dilated", lax.conv_general_dilated):
    yield


class Port:
  """The port's train step (and its pieces) on the CPU."""

  def __init__(self, peer_dir: str, size: int, batch: int):
    import torch
    sys.path.insert(0, os.path.abspath(peer_dir))
    from model.networks import ContextualAttention, Discriminator, Generator  # Run, not copied.
    torch.manual_seed(0)
    self.torch, self.batch = torch, batch
    self.g = Generator(cnum_in=5, cnum_out=3, cnum=48, return_flow=False).train()
    self.d = Discriminator(cnum_in=4, cnum=64).train()
    self.ca = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10,
                                  fuse=True, n_down=2)
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=1e-4, betas=(0.5, 0.999))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=1e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    self.image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    self.mask = torch.zeros(batch, 1, size, size)
    self.mask[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    ones = torch.ones_like(self.mask)
    self.x = torch.cat([self.image * (1 - self.mask), ones, ones * self.mask], dim=1)
    self.feat = torch.randn(batch, 96, size // 4, size // 4, generator=gen, requires_grad=True)
    self.count = lambda m: sum(p.numel() for p in m.parameters())

  def step(self):
    torch, relu = self.torch, self.torch.nn.functional.relu
    x1, x2 = self.g(self.x, self.mask)
    complete = x2 * self.mask + self.image * (1 - self.mask)
    both = torch.cat([torch.cat([self.image, self.mask], 1),
                      torch.cat([complete.detach(), self.mask], 1)])
    d_real, d_fake = torch.split(self.d(both), self.batch)
    d_loss = 0.5 * relu(1 - d_real).mean() + 0.5 * relu(1 + d_fake).mean()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    recon = (self.image - x1).abs().mean() + (self.image - x2).abs().mean()
    g_loss = -self.d(torch.cat([complete, self.mask], 1)).mean() + recon
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    return float(g_loss.detach())

  def parts(self) -> dict:
    torch = self.torch

    def g_fb():
      x1, x2 = self.g(self.x, self.mask)
      ((self.image - x1).abs().mean() + (self.image - x2).abs().mean()).backward()

    def d_fb():
      both = torch.cat([torch.cat([self.image, self.mask], 1),
                        torch.cat([self.image * 0.5, self.mask], 1)])
      self.d(both).mean().backward()

    def ca_fb():
      y, _ = self.ca(self.feat, self.feat, self.mask)
      (y ** 2).sum().backward()

    return {"G fwd+bwd": g_fb, "D fwd+bwd (2B)": d_fb, "CA fwd+bwd": ca_fb}


def fi_step(size: int, batch: int, xla: bool):
  """flowinpaint's compiled train step (bench.prepare), with the fast or the XLA conv grads."""
  from flowinpaint import bench
  config = bench.load_config("deepfill_v2")
  with xla_convs() if xla else contextlib.nullcontext():
    fn, info = bench.prepare(config, "train", size, batch, "float32")
  return fn, info


def fi_parts(size: int, batch: int, xla: bool) -> dict:
  """Compiled pieces of flowinpaint's step, with the same inputs as the port's."""
  import jax
  import jax.numpy as jnp

  from flowinpaint import bench
  from flowinpaint.layers.contextual_attention import contextual_attention
  from flowinpaint.train import train
  from flowinpaint.train import state as state_lib
  config = bench.load_config("deepfill_v2")
  config.image_size, config.batch_size = size, batch
  models = train.Models(config)
  arrays = bench._inputs(config, size, batch)
  image, mask = jnp.asarray(arrays["image"]), jnp.asarray(arrays["mask"])
  example = {k: v[:1] for k, v in arrays.items()}
  state = state_lib.create_state(jax.random.key_data(jax.random.key(0)), models.generator,
                                 models.discriminator, models.g_tx, models.d_tx,
                                 example_batch=example)
  g, d, gv, dv = models.generator, models.discriminator, state.g_vars, state.d_vars
  feat = jax.random.normal(jax.random.key(1), (batch, size // 4, size // 4, 96))
  small_mask = mask[:, ::4, ::4]

  def g_fb(p):
    def loss(p):
      out = g.apply({**gv, "params": p}, image, mask, train=True)
      return jnp.mean(jnp.abs(out["output"] - image)) + jnp.mean(jnp.abs(out["coarse"] - image))
    return jax.grad(loss)(p)

  def d_fb(p):
    both = jnp.stack([image, image * 0.5], 1).reshape((2 * batch,) + image.shape[1:])
    def loss(p):
      logits, _ = d.apply({**dv, "params": p}, both, jnp.repeat(mask, 2, 0), train=True,
                          mutable=["batch_stats"])
      return jnp.mean(logits)
    return jax.grad(loss)(p)

  def ca_fb(f):
    return jax.grad(lambda f: jnp.sum(contextual_attention(f, f, small_mask)[0] ** 2))(f)

  out = {}
  with xla_convs() if xla else contextlib.nullcontext():
    for name, f, arg in (("G fwd+bwd", g_fb, gv["params"]), ("D fwd+bwd (2B)", d_fb,
                         dv["params"]), ("CA fwd+bwd", ca_fb, feat)):
      compiled = jax.jit(f).lower(arg).compile()
      out[name] = lambda c=compiled, a=arg: c(a)
  return out


def _timed(fn, block) -> float:
  t0 = time.perf_counter()
  block(fn())
  return time.perf_counter() - t0


def interleave(systems: dict, rounds: int, block: dict, per: int, label: str, log) -> dict:
  """Runs every system once per round, rotating the order; returns ms per image lists."""
  names = list(systems)
  times = {n: [] for n in names}
  for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    row = {}
    for n in order:
      row[n] = _timed(systems[n], block[n]) * 1e3 / per
      times[n].append(row[n])
    ratios = {f"{n}/fi": row[n] / row["fi"] for n in names if n != "fi"}
    log({"event": "round", "what": label, "round": r, "ms_per_image": row, "ratios": ratios})
  return times


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--peer-dir", required=True,
                 help="checkout of the PyTorch port (nipponjo/deepfillv2-pytorch)")
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch.set_num_threads; XLA's CPU pool takes every core the process may "
                 "use, so keep the default, and pin fewer cores with taskset if need be")
  p.add_argument("--parts", action="store_true", help="also time the step's pieces")
  p.add_argument("--no-xla", action="store_true", help="skip the old-formulation row")
  p.add_argument("--jsonl", default=None, help="append every round and the summary here")
  args = p.parse_args(argv)
  if not os.path.isfile(os.path.join(args.peer_dir, "model", "networks.py")):
    raise SystemExit(f"error: --peer-dir {args.peer_dir} has no model/networks.py (give a "
                     "checkout of the port's repository)")
  if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
  import jax
  import torch
  torch.set_num_threads(args.threads)

  def log(row):
    print(json.dumps(row), flush=True)
    if args.jsonl:
      with open(args.jsonl, "a") as f:
        f.write(json.dumps(row) + "\n")

  port = Port(args.peer_dir, args.size, args.batch)
  systems, block = {}, {}
  systems["fi"], info = fi_step(args.size, args.batch, xla=False)
  if not args.no_xla:
    systems["fi_xla"], _ = fi_step(args.size, args.batch, xla=True)
  systems["port"] = port.step
  for n in systems:
    block[n] = (lambda out: None) if n == "port" else jax.block_until_ready
  log({"event": "setup", "size": args.size, "batch": args.batch, "dtype": "float32",
       "threads": args.threads, "jax": jax.__version__, "torch": torch.__version__,
       "fi_g_params": info["g_params"], "fi_d_params": info["d_params"],
       "port_g_params": port.count(port.g), "port_d_params": port.count(port.d),
       "fi_compile_s": info["compile_s"], "load": os.getloadavg()})
  for _ in range(args.warmup):
    for n in systems:
      block[n](systems[n]())
  times = interleave(systems, args.rounds, block, args.batch, "train step", log)
  summaries = [("train step", times)]
  if args.parts:
    variants = {"fi": fi_parts(args.size, args.batch, False), "port": port.parts()}
    if not args.no_xla:
      variants["fi_xla"] = fi_parts(args.size, args.batch, True)
    for piece in variants["fi"]:
      ps = {n: v[piece] for n, v in variants.items()}
      pb = {n: block[n] for n in ps}
      for n in ps:
        pb[n](ps[n]())
      summaries.append((piece, interleave(ps, args.rounds, pb, args.batch, piece, log)))
  for what, t in summaries:
    med = {n: statistics.median(v) for n, v in t.items()}
    ratio = statistics.median(p / f for p, f in zip(t["port"], t["fi"]))
    row = {"event": "summary", "what": what, "median_ms_per_image": med,
           "port_over_fi_median_of_rounds": ratio, "rounds": args.rounds,
           "load": os.getloadavg()}
    if "fi_xla" in t:
      row["fi_xla_over_fi_median_of_rounds"] = statistics.median(
          o / f for o, f in zip(t["fi_xla"], t["fi"]))
    log(row)
  return 0


if __name__ == "__main__":
  sys.exit(main())

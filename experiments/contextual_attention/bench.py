"""Time and peak memory of contextual attention, alone and inside DeepFill v2, per size/variant.

  PYTHONPATH=. python experiments/contextual_attention/bench.py --what layer --size 1024 \
      --variants fuse:max:default nofuse:add:default --json experiments/contextual_attention/results.jsonl
  PYTHONPATH=. python experiments/contextual_attention/bench.py --what generator --size 2048

`--size` is the image side. `layer` runs `contextual_attention(f, f, mask)` on DeepFill v2's
attention input for that image (f = [1, size/4, size/4, 96]: cnum 48, the paper width);
`generator` runs the whole DeepFill v2 generator (cnum 48, random weights: time and memory do not
depend on them) on a random image. The hole is a centred square of half the side. A variant is
`fuse|nofuse : max|add : default|none|BYTES` (score fusion, patch norm, `max_score_bytes`;
`fuse:max` is the TF reference, `nofuse:add` the PyTorch port). Several variants in one process
run interleaved (ratios side by side); the peak RSS (ru_maxrss, whole process: compilation
included) belongs to one variant only when the process runs one. `--compile-only` reports
XLA's memory analysis (GB of arguments, outputs, temporaries) without running: the estimate for
sizes this machine cannot hold. `cpu_s` is the process CPU time of each run (all XLA threads):
on a loaded machine it tracks the work done better than the wall time `run_s`. Prints one JSON
line per variant and appends it to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np


def parse_variant(text: str) -> dict:
  fuse, norm, budget = text.split(':')
  kw = dict(fuse=fuse == 'fuse', patch_norm=norm)
  if budget == 'none':
    kw['max_score_bytes'] = None
  elif budget != 'default':
    kw['max_score_bytes'] = int(float(budget))
  return kw


def build(what: str, size: int, kw: dict, cnum: int):
  """(jitted function, its arguments, chosen tile or None)."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.layers import attention_tiles
  from flowinpaint.layers.contextual_attention import DEFAULT_MAX_SCORE_BYTES
  from flowinpaint.layers.contextual_attention import contextual_attention
  rng = np.random.default_rng(0)
  hole = np.zeros((1, size, size, 1), np.float32)
  hole[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.
  s, c = size // 4, 2 * cnum  # the attention map of DeepFill v2
  fh = s // 2
  budget = kw.get('max_score_bytes', DEFAULT_MAX_SCORE_BYTES)
  tile = attention_tiles.choose_tile(
      fh, fh, 3 if kw['fuse'] else 1, score_row_bytes=4 * fh * fh, match_depth=9 * c,
      paste_depth=16 * c, max_bytes=budget)
  if what == 'layer':
    f = jnp.asarray(rng.standard_normal((1, s, s, c)).astype(np.float32))
    m = jnp.asarray(hole[:, ::4, ::4])
    fn = jax.jit(lambda f, m: contextual_attention(f, f, m, rate=2, **kw))
    return fn, (f, m), tile
  from flowinpaint.models.deepfill_v2 import DeepFillV2Generator
  gen = DeepFillV2Generator(cnum=cnum, ca_fuse=kw['fuse'], ca_patch_norm=kw['patch_norm'],
                            ca_max_score_bytes=budget)
  small = jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 1))
  variables = jax.jit(lambda k: gen.init(k, *small, train=False))(jax.random.key(0))
  image = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
  fn = jax.jit(lambda v, x, m: gen.apply(v, x, m, train=False)['output'])
  return fn, (variables, image, jnp.asarray(hole)), tile


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--what', choices=('layer', 'generator'), default='layer')
  p.add_argument('--size', type=int, default=1024, help='image side (multiple of 16)')
  p.add_argument('--cnum', type=int, default=48)
  p.add_argument('--variants', nargs='+', default=['fuse:max:default'])
  p.add_argument('--repeats', type=int, default=2, help='timed runs per variant, after one '
                 'untimed warm-up run (0: none; then the single run is timed)')
  p.add_argument('--compile-only', action='store_true', help='compile and report XLA\'s memory '
                 'analysis (arguments, outputs, temporaries) without running')
  p.add_argument('--json', default='')
  a = p.parse_args()
  import jax
  load0 = os.getloadavg()[0]
  runs = []
  for text in a.variants:
    kw = parse_variant(text)
    fn, args, tile = build(a.what, a.size, kw, a.cnum)
    t = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t
    analysis = compiled.memory_analysis()
    sizes = None
    if analysis:
      sizes = {key: round(getattr(analysis, f'{key}_size_in_bytes') / 1e9, 3)
               for key in ('argument', 'output', 'temp', 'generated_code')}
    runs.append(dict(variant=text, compiled=compiled, args=args, tile=tile, compile_s=compile_s,
                     temp_gb=analysis.temp_size_in_bytes / 1e9 if analysis else None,
                     xla_gb=sizes, times=[], cpu=[]))
  for rep in range(0 if a.compile_only else a.repeats + 1):
    for r in runs:
      t, cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(r['compiled'](*r['args']))
      if rep > 0 or a.repeats == 0:
        r['times'].append(round(time.perf_counter() - t, 2))
        r['cpu'].append(round(time.process_time() - cpu, 2))
  for r in runs:
    row = dict(what=a.what, size=a.size, cnum=a.cnum, variant=r['variant'],
               tile=r['tile'], compile_s=round(r['compile_s'], 1), run_s=r['times'],
               cpu_s=r['cpu'],
               xla_temp_gb=r['temp_gb'] and round(r['temp_gb'], 3), xla_gb=r['xla_gb'],
               peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
               variants_in_process=len(runs), jax=jax.__version__,
               cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
               load_avg=[round(load0, 1), round(os.getloadavg()[0], 1)])
    print(json.dumps(row), flush=True)
    if a.json:
      with open(a.json, 'a') as fh:
        fh.write(json.dumps(row) + '\n')


if __name__ == '__main__':
  main()

"""Every contextual attention variant (fusion on/off, each patch norm, tiled or not) at several
sizes, each size in its own process: a crash in XLA (issue 18: jaxlib 0.10.2 segfaulted on
`fuse=False` at 128x128) fails the test instead of killing the test run."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.layers.contextual_attention_numpy import reference
from tests.layers.contextual_attention_test import _inputs, _ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('shape,stride,fuse,norm', [
    ((2, 10, 6, 3), 1, True, 'max'), ((2, 12, 8, 2), 2, True, 'add'),
    ((1, 9, 7, 2), 1, True, 'max'), ((2, 8, 8, 3), 1, False, 'add')])
def test_numpy_reference_matches_loops(shape, stride, fuse, norm):
  f, mask = _inputs(shape, seed=1)
  b, _ = _inputs(shape, seed=2)
  b[0, :2] = 0.
  y, off = reference(f, b, mask, stride=stride, fuse=fuse, patch_norm=norm)
  y_loop, off_loop = _ref(f, b, mask, stride=stride, fuse=fuse, patch_norm=norm)
  np.testing.assert_allclose(y, y_loop, atol=1e-12)
  np.testing.assert_array_equal(off, off_loop)


@pytest.mark.slow
@pytest.mark.parametrize('bsz,h,w,c', [
    (2, 24, 20, 8), (1, 64, 64, 96), (1, 128, 128, 96), (1, 100, 76, 32)])
def test_variants_run_and_match_numpy(bsz, h, w, c):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
             JAX_PLATFORMS='cpu')
  res = subprocess.run(
      [sys.executable, '-m', 'tests.layers.contextual_attention_variants_child',
       *map(str, (bsz, h, w, c))], capture_output=True, text=True, env=env, cwd=ROOT,
      timeout=3600)
  assert res.returncode == 0, (
      f'exit status {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}')
  assert sum(line.startswith('ok ') for line in res.stdout.splitlines()) == 16, res.stdout

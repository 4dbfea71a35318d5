"""Running the command-line tools in subprocesses, and checking their one-line errors."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_module(module: str, *args, cwd=None, timeout: int = 300) -> subprocess.CompletedProcess:
  """`python -m module args...` on the CPU with this checkout importable; output captured."""
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                        text=True, env=env, cwd=cwd, timeout=timeout)


def assert_user_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
  """Exit status 2, no traceback, exactly one `error:` line holding every fragment; returns it."""
  assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
  assert "Traceback" not in res.stderr, res.stderr
  lines = [l for l in res.stderr.strip().splitlines() if l.startswith("error:")]
  assert len(lines) == 1, res.stderr
  for f in fragments:
    assert f in lines[0], (f, lines[0])
  return lines[0]

"""The README's first-contact promises: times stated as measured, commands that fit each other."""

import os
import re

from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_section() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  return text.split("## Set-up", 1)[1].split("\n## ", 1)[0]


def test_setup_states_the_run_and_test_times_as_measured():
  setup = " ".join(_setup_section().split())
  run, tests = setup.split("2. Run the tests", 1)
  # Command 1: the time alone and the time on a busy machine, not one optimistic figure.
  assert re.search(r"\d+ minutes with the machine to itself", run), run
  assert re.search(r"\d+ minutes on a busy one", run), run
  assert "about 10 minutes" not in run
  assert re.search(r"\(\d+ to \d+ minutes on a 2-core CPU", tests), tests


def test_commands_on_the_first_run_use_its_image_size():
  # `evaluate --size N` against command 1's workdir would score at another size than it learnt.
  with open(os.path.join(ROOT, "README.md")) as f:
    lines = [l for l in f if "flowinpaint.evaluate" in l and "/tmp/flowinpaint_run" in l]
  assert lines
  size = default.get_config().image_size
  for line in lines:
    m = re.search(r"--size[ =](\d+)", line)
    assert m is None or int(m.group(1)) == size, line

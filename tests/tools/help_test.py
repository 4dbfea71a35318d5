"""`--help` of every command-line tool: exit 0, usage named as it is typed, every option
described, examples shown once, and no runs of spaces left by line continuations."""

import os
import re
import subprocess
import sys

import pytest

from tests.tools import cli

pytestmark = pytest.mark.slow

TOOLS = ("main", "inpaint", "evaluate", "serve", "remove", "convert", "bench", "pretrained")
# An argparse option row: the options, then (after 2+ spaces) the start of their help.
_OPTION_ROW = re.compile(r"^  (-\S.*?)(?:  +(\S.*))?$")


@pytest.fixture(scope="module")
def helps():
  """{tool: CompletedProcess of `python -m flowinpaint.TOOL --help`}, run side by side."""
  env = dict(os.environ, PYTHONPATH=cli.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  procs = {t: subprocess.Popen([sys.executable, "-m", f"flowinpaint.{t}", "--help"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=cli.ROOT) for t in TOOLS}
  out = {}
  for tool, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=300)
    out[tool] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
  return out


def _prose(line: str) -> str:
  """A help line without its indentation and without argparse's column gap."""
  m = _OPTION_ROW.match(line)
  if m:
    return f"{m.group(1)} {m.group(2) or ''}".strip()
  return line.strip()


@pytest.mark.parametrize("tool", TOOLS)
def test_help_exits_0_and_reads_cleanly(helps, tool):
  res = helps[tool]
  assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
  text = res.stdout
  assert f"python -m flowinpaint.{tool}" in text
  assert "Traceback" not in res.stderr and "(default: 'None')" not in text
  for line in text.splitlines():
    assert "  " not in _prose(line), (tool, line)  # e.g. a `\` continuation in a docstring
  first = text.split("\n\n")[1].strip() if tool != "main" else text.splitlines()[0]
  assert text.count(first) == 1, (tool, first)  # The description is not printed twice.


@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "main"])
def test_every_option_has_help(helps, tool):
  lines = helps[tool].stdout.splitlines()
  for i, line in enumerate(lines):
    m = _OPTION_ROW.match(line)
    if m and not m.group(2):  # A long option's help starts on the next, indented line.
      follows = lines[i + 1] if i + 1 < len(lines) else ""
      assert re.match(r"^ {20,}\S", follows), (tool, line)


def test_usage_and_examples(helps):
  for tool in ("inpaint", "evaluate", "serve"):
    usage = helps[tool].stdout.split("\n\n")[0]
    # One of the two is required: argparse draws a required group in parentheses.
    assert re.search(r"\(--checkpoint CHECKPOINT \|\s+--method", usage), (tool, usage)
  assert "python -m flowinpaint.inpaint --method telea --image photo.jpg" in helps[
      "inpaint"].stdout
  evaluate = helps["evaluate"].stdout
  assert "free_form,box,glcic_box,free_form_and_box" in evaluate  # The mask kinds.
  assert "--save-images DIR" in evaluate
  main = helps["main"].stdout
  assert "--config FILE" in main and "--workdir DIR" in main


def test_missing_checkpoint_or_method_is_still_one_clear_line(tmp_path):
  res = cli.run_module("flowinpaint.inpaint", "--image", tmp_path / "a.png", "--mask",
                       tmp_path / "m.png", "--output", tmp_path / "o.png")
  cli.assert_user_error(res, "choose how to fill: --method telea", "--checkpoint DIR")
  res = cli.run_module("flowinpaint.evaluate", "--images", tmp_path)
  cli.assert_user_error(res, "choose what to evaluate: --method", "--checkpoint DIR")

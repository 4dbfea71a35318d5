"""The Colab notebooks: conventions (badge, form fields, TINY switch) and a run top to bottom.

The runs execute every cell with nbclient in a fresh kernel at tiny sizes (the `TINY` form field
switched on), in a temporary working directory, so a notebook that breaks fails here.
"""

import os
import re
import tempfile
import time

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "colab")
NOTEBOOKS = ("quickstart.ipynb", "train.ipynb", "video.ipynb")
TINY_LINE = 'TINY = False  #@param {type:"boolean"}'
# What each run must leave in its working directory.
ARTIFACTS = {
    "quickstart.ipynb": ("inpainted.png",),
    "train.ipynb": ("flowinpaint_run/metrics.jsonl", "flowinpaint_run/checkpoints"),
    "video.ipynb": ("removed.mp4", "side_by_side.mp4"),
}
# What each run must have displayed (HTML outputs).
SHOWN = {
    "quickstart.ipynb": ("<img", "after"),
    "train.ipynb": ("<polyline", "step_0000002.png", "evaluation at step 2", "trained here"),
    "video.ipynb": ("<video", "data:video/mp4;base64,"),
}


def _read(name):
  return nbformat.read(os.path.join(COLAB, name), as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_conventions(name):
  nb = _read(name)
  nbformat.validate(nb)
  first = nb.cells[0]
  assert first.cell_type == "markdown"
  badge = "https://colab.research.google.com/github/"
  assert "colab-badge.svg" in first.source and badge in first.source
  assert first.source.split(badge, 1)[1].split(")", 1)[0].endswith(f"/colab/{name}")
  code = [c for c in nb.cells if c.cell_type == "code"]
  # Install first (skipped when flowinpaint imports), then the TINY switch.
  assert 'find_spec("flowinpaint") is None' in code[0].source
  assert "pip" in code[0].source and "FLOWINPAINT_REF" in code[0].source
  assert sum(TINY_LINE in c.source for c in code[:3]) == 1
  assert sum(len(re.findall(r"#@param", c.source)) for c in code) >= 4
  # Committed without outputs: diffs stay readable and no stale results are shown.
  assert all(not c.outputs and c.execution_count is None for c in code)


def test_readme_lists_every_notebook():
  with open(os.path.join(COLAB, "README.md")) as f:
    readme = f.read()
  for name in NOTEBOOKS:
    assert f"blob/main/colab/{name}" in readme, name


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_top_to_bottom_at_tiny_sizes(name, tmp_path, monkeypatch):
  nbclient = pytest.importorskip("nbclient")
  nb = _read(name)
  switched = 0
  for cell in nb.cells:
    if cell.cell_type == "code" and TINY_LINE in cell.source:
      cell.source = cell.source.replace(TINY_LINE, "TINY = True")
      switched += 1
  assert switched == 1
  # The kernel imports this checkout; it shares the tests' persistent compilation cache.
  monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # One device, as on Colab (not conftest's 8).
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.environ.get(
      "FLOWINPAINT_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "flowinpaint-jax-cache")))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  start = time.perf_counter()
  client.execute()  # Raises CellExecutionError (with the traceback) when a cell fails.
  seconds = time.perf_counter() - start
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      assert out.output_type != "error", out
  for path in ARTIFACTS[name]:
    assert os.path.exists(tmp_path / path), path
  shown = "".join(out.get("data", {}).get("text/html", "") for cell in nb.cells
                  for out in cell.get("outputs", []))
  for snippet in SHOWN[name]:
    assert snippet in shown, snippet
  print(f"{name}: {seconds:.1f} s")

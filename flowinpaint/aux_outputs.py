"""A generator's auxiliary outputs as files: `--save-structure DIR`, `--save-flow DIR` and
`--save-edges DIR`.

Shared by `flowinpaint.inpaint` (files named after the image's stem) and `flowinpaint.evaluate`
(named after the image's index). StructureFlow ('structure_flow', 'structure_flow_texture')
returns the structure and the flow, EdgeConnect ('edge_connect', 'edge_connect_inpaint') the
edges; asking a model for an output it does not return is a UserError. Files:

* `NAME_structure.png`: the structure the model inpainted with (StructureFlow: G_s's
  reconstructed RTV structure; stage 2: the mask-aware RTV of the masked image), uint8 RGB at
  the image's size. Not composited: every pixel is the model's.
* `NAME_flow.png`: the appearance flow colour-coded with `flow_vis.flow_to_rgb` (Middlebury
  wheel, fully saturated at the image's largest vector), each 1/4-resolution cell drawn as a
  4x4 block (nearest neighbour), cut to the image's size.
* `NAME_flow.npy`: the raw flow, float32 [ceil(H/4), ceil(W/4), 2] as (dx, dy) in image pixels
  (the model's quarter-resolution offsets x 4); cell (i, j) covers pixels [4i, 4i+4) x
  [4j, 4j+4). Kept on the model's grid: upsampling would add size, not information.
* `NAME_edges.png`: the edge map the model inpainted with, grayscale at the image's size, 255 =
  edge (EdgeConnect: its edge generator's soft edges inside the hole and the Canny edges of the
  known pixels outside, or the whole predicted map with merge_edges off; 'edge_connect_inpaint':
  the Canny edges of the known pixels). Not composited.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np

from flowinpaint.errors import UserError

# Output key -> the command-line option that saves it.
OPTIONS = {"structure": "--save-structure", "flow": "--save-flow", "edges": "--save-edges"}
# StructureFlow's flow lives on the 1/4-resolution feature grid.
FLOW_STRIDE = 4
_STRUCTURE_FLOW = "a StructureFlow checkpoint (model 'structure_flow' or 'structure_flow_texture')"
_MODELS_HINT = {"structure": _STRUCTURE_FLOW, "flow": _STRUCTURE_FLOW,
                "edges": "an EdgeConnect checkpoint (model 'edge_connect' or "
                         "'edge_connect_inpaint')"}


def requested(args: Any) -> dict[str, str]:
  """{'structure': DIR, 'flow': DIR, 'edges': DIR} for the options given (a namespace without
  them: {})."""
  dirs = {key: getattr(args, option[2:].replace("-", "_"), None)
          for key, option in OPTIONS.items()}
  return {k: os.fspath(v) for k, v in dirs.items() if v}


def check_request(dirs: dict[str, str], method: Optional[str]) -> None:
  """UserError before any work: a classical --method, or a DIR that is an existing file."""
  for key, folder in dirs.items():
    if method:
      raise UserError(f"{OPTIONS[key]} needs a model that returns {_what(key)}: --method {method} "
                      f"has none; use {_MODELS_HINT[key]} with --checkpoint")
    if os.path.exists(folder) and not os.path.isdir(folder):
      raise UserError(f"{OPTIONS[key]} {folder!r} is a file; give a folder (created if missing)")


def check_model(inpainter: Any, dirs: dict[str, str], source: str) -> None:
  """UserError if the loaded model does not return every requested output."""
  aux_keys = getattr(inpainter, "aux_keys", None)
  available = aux_keys() if aux_keys is not None else ()
  name = getattr(inpainter, "model_name", type(inpainter).__name__)
  for key in dirs:
    if key not in available:
      hint = (" (its inpainted output is itself the structure)"
              if name == "structure_flow_structure" and key == "structure" else "")
      raise UserError(f"{OPTIONS[key]}: {source} (model {name!r}) returns no {key}{hint}; "
                      f"use {_MODELS_HINT[key]}")


def _what(key: str) -> str:
  return "edges" if key == "edges" else f"a {key}"


def paths(dirs: dict[str, str], name: str) -> list[str]:
  """Every file the requested outputs write for one image called `name`."""
  out = []
  if "structure" in dirs:
    out.append(os.path.join(dirs["structure"], f"{name}_structure.png"))
  if "flow" in dirs:
    out += [os.path.join(dirs["flow"], f"{name}_flow.png"),
            os.path.join(dirs["flow"], f"{name}_flow.npy")]
  if "edges" in dirs:
    out.append(os.path.join(dirs["edges"], f"{name}_edges.png"))
  return out


def check_not_inputs(paths: Sequence[str], inputs: Sequence[str]) -> None:
  """UserError if writing one of `paths` would overwrite one of `inputs`."""
  from flowinpaint import image_io
  inputs = image_io.InputFiles(inputs) if not isinstance(inputs, image_io.InputFiles) else inputs
  for path in paths:
    image_io.check_not_input(path, inputs)


def _check_grid(flow: np.ndarray, shape: Sequence[int]) -> None:
  h, w = shape[:2]
  want = (-(-h // FLOW_STRIDE), -(-w // FLOW_STRIDE), 2)
  if flow.shape != want:
    raise ValueError(f"flow {flow.shape} is not the 1/{FLOW_STRIDE} grid {want} of a {h}x{w} "
                     "image")


def flow_picture(flow: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """float [ceil(H/4), ceil(W/4), 2] flow -> uint8 [H, W, 3] picture (cells as 4x4 blocks)."""
  from flowinpaint.flow_vis import flow_to_rgb
  flow = np.asarray(flow)
  _check_grid(flow, shape)
  rgb = flow_to_rgb(flow)
  rgb = np.repeat(np.repeat(rgb, FLOW_STRIDE, axis=0), FLOW_STRIDE, axis=1)
  return np.ascontiguousarray(rgb[:shape[0], :shape[1]])


def flow_in_pixels(flow: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """The model's quarter-resolution flow [ceil(H/4), ceil(W/4), 2] in image pixels (float32)."""
  flow = np.asarray(flow, np.float32)
  _check_grid(flow, shape)
  return flow * np.float32(FLOW_STRIDE)


def write(aux: dict[str, np.ndarray], dirs: dict[str, str], name: str, shape: Sequence[int], *,
          inputs: Sequence[str] = ()) -> list[str]:
  """Writes one image's requested outputs (see the module docstring); returns the paths.

  Args:
    aux: `ModelInpainter.inpaint_with_aux`'s dict for one image: 'structure' uint8 [H, W, 3],
      'flow' float32 [ceil(H/4), ceil(W/4), 2] in quarter-resolution pixels, 'edges' uint8
      [H, W].
    dirs: `requested(args)`; folders are created if missing.
    name: the file name prefix (an image's stem, an index).
    shape: the image's (H, W).
    inputs: files never to overwrite (UserError).
  """
  from flowinpaint import image_io
  written = []
  if "structure" in dirs:
    (path,) = paths({"structure": dirs["structure"]}, name)
    image_io.write_image(path, aux["structure"], inputs=inputs)
    written.append(path)
  if "flow" in dirs:
    png, npy = paths({"flow": dirs["flow"]}, name)
    image_io.write_image(png, flow_picture(aux["flow"], shape), inputs=inputs)
    image_io.check_not_input(npy, inputs)
    try:
      np.save(npy, flow_in_pixels(aux["flow"], shape))
    except OSError as e:
      raise UserError(f"cannot write {npy!r} ({e})") from e
    written += [png, npy]
  if "edges" in dirs:
    (path,) = paths({"edges": dirs["edges"]}, name)
    edges = np.asarray(aux["edges"], np.uint8)
    image_io.write_image(path, np.repeat(edges[..., None], 3, axis=-1), mode="L", inputs=inputs)
    written.append(path)
  return written

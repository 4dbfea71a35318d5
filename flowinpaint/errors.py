"""User-facing errors: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
  """Bad input from the user: the message says what is wrong and how to fix it."""


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
  """Wraps a CLI main so that a UserError prints `error: ...` and exits with status 2."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs) -> int:
    try:
      return main(*args, **kwargs) or 0
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      return 130

  return wrapped

"""Entry-point error policy: a DarklightError is one clear line on stderr and exit status 2."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, TypeVar

from .errors import DarklightError

F = TypeVar("F", bound=Callable[..., int | None])


def exit_on_darklight_error(main: F) -> F:
    """Wrap a CLI `main`: a DarklightError prints `darklight_dist: error: <message>` (no traceback), exits 2.

    Anything else propagates with its traceback: it is a bug, and the trace is what a bug
    report needs.
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except DarklightError as e:
            for handler in logging.getLogger().handlers:  # the error must be the last line out
                try:
                    handler.flush()
                except (OSError, ValueError):  # a handler on a closed stream must not hide the error
                    pass
            print(f"darklight_dist: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(e.exit_code) from None
    return wrapper  # type: ignore[return-value]

"""The user-facing error hierarchy: bad input is a DarklightError, anything else is a bug."""

from __future__ import annotations


class DarklightError(Exception):
    """Bad input or configuration: printed once without a traceback, exit status 2."""

    exit_code: int = 2
    rank_local: bool = False
    """True when only the raising rank can know it (a file in its own data shard): that rank prints it."""


class ConfigError(DarklightError):
    """A flag, recipe or combination of options is invalid."""


class DataError(DarklightError):
    """The data set is missing, empty, malformed or holds an undecodable file."""


class ShardDataError(DataError):
    """A bad file met while reading this rank's shard: the other ranks do not see it."""

    rank_local = True


class TeacherError(DarklightError):
    """The teacher cannot be built, loaded or run (bad ONNX, engine, weights, shapes)."""


class CheckpointError(DarklightError):
    """A checkpoint is missing, corrupt, unsafe or belongs to another run."""


class NonFiniteLossError(DarklightError):
    """The loss became NaN or infinite; the run stops before writing anything bad."""

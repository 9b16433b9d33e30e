"""The one root of the errors a user can cause (bad config, data, prompts, checkpoint, device,
run directory): every command catches ``DfpirError``, prints ``error: <message>`` and exits
with status 2. Anything else that escapes is a bug and keeps its traceback.

Each subclass also derives from the built-in type it used to be (``ValueError``,
``RuntimeError``), so code that caught those still works.
"""

from __future__ import annotations


class DfpirError(Exception):
    """A problem the user can fix; the message names the thing at fault and what was expected."""


class ConfigError(DfpirError, ValueError):
    """A config that cannot be read or does not fit the schema."""


class DeviceError(DfpirError, ValueError):
    """A device name that is not valid, or names a device this machine does not have."""


class PromptError(DfpirError, ValueError):
    """An unknown degradation, prompt style or encoder, or an encoder that cannot run here
    (no CLIP weights and no download)."""


class FigureError(DfpirError, ValueError):
    """A figure that cannot be drawn for this model or data (no DGPB, unknown module, ...)."""


class ResultsError(DfpirError, ValueError):
    """A folder or file that is not an evaluation result written by ``dfpir eval``."""


class TrainingError(DfpirError, RuntimeError):
    """A training run that cannot start or cannot go on (too little data, a diverged loss)."""


class OutputPlaceError(DfpirError, OSError):
    """A place for results (folder or file) that cannot be written: a file where a folder is
    expected (or the reverse), read-only, under a file, or on a full disk."""


class OutputWriteError(OutputPlaceError):
    """A result that could not be written mid-run (the disk or quota filled up)."""

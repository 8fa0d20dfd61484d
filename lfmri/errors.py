"""Exceptions for mistakes a user can fix by changing an option (not bugs).

The entry points (``train.py``, ``evaluate.py``, ``lfmri-predict``) turn these into one line
``<prog>: error: <message>`` and exit status 2, like argparse does for a bad option; anything
else keeps its traceback. Each class also derives from the built-in type code used to raise, so
``except ValueError`` / ``except FileExistsError`` callers keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors whose message names the option and the fix."""


class ConfigError(UserError, ValueError):
    """An option value that cannot work (e.g. ``degradation.hr_size`` not divisible by ``scale``)."""


class MissingFileError(UserError, FileNotFoundError):
    """A path given in an option does not exist (data pattern, checkpoint, run to resume)."""


class ExistingOutputError(UserError, FileExistsError):
    """Outputs or a run directory already exist and would be replaced."""


class DivergedError(UserError, FloatingPointError):
    """Training produced a NaN or Inf loss: stopped there (a learning rate, data or initialisation to change)."""


class DataError(UserError, ValueError):
    """Input data that reads but cannot be trained or scored on (a constant volume, a paired
    collection that fails validation, a split without slices); the message names the files."""


class StorageError(UserError, OSError):
    """A file could not be written: the disk is full, or the folder is not writable (the message
    names the file; what was there before is left as it was)."""

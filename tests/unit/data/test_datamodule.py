"""The files a data module writes are declared, so a stored config never names one (StoredRun.datamodule)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import lfmri.data
from lfmri.data.datamodule import SliceDataModule


def test_every_file_a_data_module_writes_is_an_output_option():
    """A stored data.report_file made evaluate overwrite any file: every ``*_file`` option is one it writes,
    listed in OUTPUT_OPTIONS, which StoredRun.datamodule never takes from a checkpoint."""
    classes = set()
    for info in pkgutil.iter_modules(lfmri.data.__path__):
        module = importlib.import_module(f"lfmri.data.{info.name}")
        classes |= {c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, SliceDataModule)}
    assert len(classes) >= 5
    for cls in classes:
        names = {name for klass in cls.__mro__ if klass.__init__ is not object.__init__
                 for name in inspect.signature(klass.__init__).parameters}
        files = {n for n in names if n.endswith(("_file", "_dir"))}
        assert files <= set(cls.OUTPUT_OPTIONS), f"{cls.__name__}: {files - set(cls.OUTPUT_OPTIONS)} not in OUTPUT_OPTIONS"
        assert set(cls.OUTPUT_OPTIONS) <= names

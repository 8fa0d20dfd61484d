"""Download the IXI data set: ``python -m lfmri.cli.ixi download modality=T1|T2|PD dest=DIR``.

Fetches the official tarball into ``DIR/IXI-<modality>.tar`` (resuming an interrupted download),
checks its MD5 (``md5=`` overrides the published one) and extracts it into ``DIR/IXI-<modality>/``,
never overwriting a file that is already there (:func:`lfmri.data.ixi.download`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from lfmri.cli.options import fail, parse_command
from lfmri.data.ixi import BASE_URL, MODALITIES, download

PROG = "python -m lfmri.cli.ixi"


@dataclass
class DownloadOptions:
    modality: str = MISSING  # T1, T2 or PD
    dest: str = MISSING  # folder for the tarball and the extracted volumes
    url: Optional[str] = None  # tarball URL (default BASE_URL/IXI-<modality>.tar)
    md5: Optional[str] = None  # expected MD5 (default: the published one)


def main(argv: Sequence[str] | None = None) -> int:
    command, options = parse_command(PROG, {"download": (DownloadOptions, {"required": ["modality", "dest"]})},
                                     sys.argv[1:] if argv is None else argv, __doc__.replace("BASE_URL", BASE_URL))
    if options.modality not in MODALITIES:
        fail(f"{PROG} {command}", f"bad value for option 'modality': {options.modality!r}; expected one of {', '.join(MODALITIES)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        download(options.modality, options.dest, options.url, options.md5)
    except (ConnectionError, ValueError, OSError) as err:
        print(f"{PROG} {command}: error: {err}", file=sys.stderr)
        return 1  # a network or disk problem, not a usage mistake: exit 1 as before
    return 0


if __name__ == "__main__":
    sys.exit(main())

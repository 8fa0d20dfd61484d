"""``python -m lfmri.pretrained``, the old name of ``lfmri-pretrained`` (:mod:`lfmri.cli.pretrained`).

The command line moved into ``lfmri/cli/`` with the other tools. This shim runs the new command in
this process's place rather than importing it: ``lfmri.pretrained`` sits below ``lfmri.cli`` and
never imports from it (``tests/unit/test_layers.py``).
"""

import os
import sys

print("note: 'python -m lfmri.pretrained' is now 'lfmri-pretrained' (or python -m lfmri.cli.pretrained)", file=sys.stderr, flush=True)
os.execv(sys.executable, [sys.executable, "-m", "lfmri.cli.pretrained", *sys.argv[1:]])

"""Evaluate checkpoints against zero-filling and bicubic: ``python evaluate.py ckpt_path=PATH [key=value ...]``.

The same as the console script ``lfmri-evaluate`` (:mod:`lfmri.cli.evaluate`); ``--help`` lists the options.
"""

from lfmri.cli.evaluate import main

if __name__ == "__main__":
    main()

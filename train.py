"""Train a super-resolution network: ``python train.py [group=option ...] [key=value ...]``.

The same as the console script ``lfmri-train`` (:mod:`lfmri.cli.train`); ``--help`` lists the options.
"""

from lfmri.cli.train import main

if __name__ == "__main__":
    main()

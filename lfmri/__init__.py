"""lfmri: super-resolution of low-field MRI with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

from lfmri import resolvers as _resolvers  # noqa: E402,F401  (config resolvers: ${lfmri.multiple:...}, ${metric_mode:...})

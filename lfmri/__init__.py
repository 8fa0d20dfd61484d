"""lfmri: super-resolution of low-field MRI with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

"""lfmri: super-resolution of low-field MRI with PyTorch Lightning and Hydra."""

from omegaconf import OmegaConf

__version__ = "0.1.0"


def _metric_mode(name: str) -> str:
    from lfmri.metrics import metric_mode  # imported on use: keeps `import lfmri` light

    return metric_mode(name)


# configs write `mode: ${metric_mode:${monitor}}`: the direction follows the metric (min for errors)
if not OmegaConf.has_resolver("metric_mode"):
    OmegaConf.register_new_resolver("metric_mode", _metric_mode)

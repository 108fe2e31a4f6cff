"""darklight_dist: knowledge distillation of image classifiers on many GPUs."""

__version__ = "0.1.0"

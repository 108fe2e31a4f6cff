"""darklight_dist: knowledge distillation of image classifiers on many GPUs."""

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: `import darklight_dist` stays cheap for the CLI's --help
    if name in ("Distiller", "StudentTrainer"):
        from . import api
        return getattr(api, name)
    if name == "Config":
        from .config import Config
        return Config
    raise AttributeError(name)

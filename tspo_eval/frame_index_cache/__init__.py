"""Caches of frame-selection work: CLIP frame features (:class:`FeatureCache`) and frame-index
files (``tspo_eval.frame_index_cache.index_store``, imported by its full path)."""
from tspo_eval.frame_index_cache.feature_cache import FeatureCache, default_cache_root

__all__ = ["FeatureCache", "default_cache_root"]

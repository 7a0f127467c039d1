"""Caches of frame-selection work: CLIP frame features (:class:`FeatureCache`, keyed by
:class:`CacheKey`) and frame-index files (``tspo_eval.frame_index_cache.index_store``, imported
by its full path)."""
from tspo_eval.frame_index_cache.feature_cache import (
    CacheKey,
    FeatureCache,
    default_cache_root,
)

__all__ = ["CacheKey", "FeatureCache", "default_cache_root"]

"""Streaming signal processing: MNE-designed causal filters and governed data products.

One `StreamPipeline` runs per device stream. It filters each chunk once with filters whose
state carries across chunks (`StreamingFilter`, `FilterChain`, `Reference`) and computes
every product once (`PRODUCT_NAMES`), whatever the number of consumers. Each product has a
finest `Resolution`; `ResolutionReducer` and `reduce_frame` coarsen frames to the
resolution a consumer's purpose allows.

This package knows nothing of HTTP, databases or consent.
"""

from .filters import (
    ChunkStep,
    FilterChain,
    Reference,
    StreamingFilter,
    design_iir_sos,
    filter_offline,
    steady_state,
)
from .frames import CHANNEL_LEVELS, ChannelLevel, Frame, Resolution
from .pipeline import ProductBatch, StreamPipeline
from .products import (
    BANDS,
    PRODUCT_NAMES,
    PRODUCTS,
    QUALITY_COLUMNS,
    ProductSpec,
    QualityThresholds,
    WelchEstimator,
    band_edges,
    focus_index,
    relaxation_index,
    signal_quality,
)
from .resolution import REGIONS, ResolutionReducer, aggregate_channels, reduce_frame, region_of

__all__ = [
    "BANDS",
    "CHANNEL_LEVELS",
    "ChannelLevel",
    "ChunkStep",
    "FilterChain",
    "Frame",
    "PRODUCTS",
    "PRODUCT_NAMES",
    "ProductBatch",
    "ProductSpec",
    "QUALITY_COLUMNS",
    "QualityThresholds",
    "REGIONS",
    "Reference",
    "Resolution",
    "ResolutionReducer",
    "StreamPipeline",
    "StreamingFilter",
    "WelchEstimator",
    "aggregate_channels",
    "band_edges",
    "design_iir_sos",
    "filter_offline",
    "focus_index",
    "reduce_frame",
    "region_of",
    "relaxation_index",
    "signal_quality",
    "steady_state",
]

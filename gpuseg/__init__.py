"""gpuseg: customer segmentation at scale with streamed K-means on CPU and GPU.

The model file loads with the package; the rest of the public API, the estimator included, is
imported on first use (``gpuseg.KMeans`` imports scikit-learn and ``gpuseg.compute_rfm`` Dask only
when they are asked for), so that commands which need neither start in a fraction of a second.

Examples
--------
>>> import gpuseg
>>> sorted(n for n in gpuseg.__all__ if n[0].isupper())[:3]
['ColumnSpec', 'DaskSource', 'DataError']
"""

from importlib import import_module

__version__ = "0.1.0"

from gpuseg.model import SegmentationModel, load

# Public name -> the module that defines it.
_LAZY = {
    "KMeans": "gpuseg.estimator",
    "ParquetSource": "gpuseg.parquet",
    "DaskSource": "gpuseg.distributed",
    "DataError": "gpuseg.errors",
    "assign": "gpuseg.pipeline",
    "compute_rfm": "gpuseg.rfm",
    "rfm_scores": "gpuseg.rfm_segments",
    "segment_rfm": "gpuseg.rfm_segments",
    "FeaturePlan": "gpuseg.plan",
    "ColumnSpec": "gpuseg.plan",
    "default_rfm_plan": "gpuseg.plan",
    "ProfileAccumulator": "gpuseg.profiles",
    "profile_frame": "gpuseg.profiles",
    "describe_segments": "gpuseg.naming",
    "evaluate_k": "gpuseg.choose_k",
    "merge_segments": "gpuseg.hierarchy",
    "stability": "gpuseg.stability",
    "migration_matrix": "gpuseg.drift",
    "psi": "gpuseg.drift",
    "centre_shift": "gpuseg.drift",
    "spread_over": "gpuseg.drift",
    "score_customers": "gpuseg.prospects",
    "train_prospect_classifier": "gpuseg.prospects",
    "predict_prospects": "gpuseg.prospects",
    "make_customers": "gpuseg.datasets",
    "make_transactions": "gpuseg.retail",
}

__all__ = ["SegmentationModel", "__version__", "load", *sorted(_LAZY)]


def __getattr__(name: str):
    """Import a public name's module on first use."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gpuseg' has no attribute {name!r}")

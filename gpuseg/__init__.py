"""gpuseg: customer segmentation at scale with streamed K-means on CPU and GPU."""

from gpuseg.estimator import KMeans

__version__ = "0.1.0"

__all__ = ["KMeans", "__version__"]

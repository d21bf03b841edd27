"""gpuseg: customer segmentation at scale with streamed K-means on CPU and GPU."""

__version__ = "0.1.0"

from gpuseg.estimator import KMeans
from gpuseg.model import SegmentationModel, load

__all__ = ["KMeans", "SegmentationModel", "__version__", "load"]

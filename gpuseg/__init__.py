"""gpuseg: customer segmentation at scale with streamed K-means on CPU and GPU."""

__version__ = "0.1.0"

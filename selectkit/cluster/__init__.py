"""k-means: rejection-sampling seeding, Lloyd on faiss, fit-on-sample + streaming assignment,
hierarchical k-means."""

from selectkit.cluster.hierarchical import hierarchical_kmeans
from selectkit.cluster.kmeans import KMeansResult, assign, kmeans, lloyd
from selectkit.cluster.pipeline import cluster_file
from selectkit.cluster.seeding import SEEDERS, Seeds, potential, seed

__all__ = [
    "SEEDERS",
    "KMeansResult",
    "Seeds",
    "assign",
    "cluster_file",
    "hierarchical_kmeans",
    "kmeans",
    "lloyd",
    "potential",
    "seed",
]

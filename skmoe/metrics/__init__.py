"""Losses between fitted and true mixture-of-experts parameters."""

from ._voronoi import voronoi_cells, voronoi_loss

__all__ = ["voronoi_cells", "voronoi_loss"]

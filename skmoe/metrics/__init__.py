"""Losses between fitted and true mixture-of-experts parameters."""

from ._voronoi import merge_cell, voronoi_cells, voronoi_loss, voronoi_parameter_errors

__all__ = ["merge_cell", "voronoi_cells", "voronoi_loss", "voronoi_parameter_errors"]

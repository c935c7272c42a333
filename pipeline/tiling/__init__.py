"""Tiled, chunking-invariant execution of the diffusion with Dask (see :mod:`.tiles`)."""

from pipeline.tiling.tiles import (
    FrameScalars,
    TiledResult,
    TileMetrics,
    default_halo,
    frame_scalars,
    lockstep_diffuse,
    TiledRun,
    remove_stars_dask,
    run_tiled,
    tile_grid,
)

__all__ = ["FrameScalars", "TiledResult", "TileMetrics", "default_halo", "frame_scalars",
           "lockstep_diffuse", "remove_stars_dask", "run_tiled", "TiledRun", "tile_grid"]

"""Tiled, chunking-invariant execution of the diffusion with Dask (see :mod:`.tiles`)."""

from pipeline.tiling.tiles import (
    STREAMED_TILE_TASK,
    FrameScalars,
    TiledResult,
    TiledRun,
    TileMetrics,
    default_halo,
    frame_scalars,
    lockstep_diffuse,
    remove_stars_dask,
    run_tiled,
    sample_grid,
    stream_tile,
    stream_tiles,
    threshold_sequence,
    tile_grid,
)

__all__ = ["STREAMED_TILE_TASK", "FrameScalars", "TiledResult", "TileMetrics", "default_halo", "frame_scalars",
           "lockstep_diffuse", "remove_stars_dask", "run_tiled", "sample_grid",
           "stream_tile", "stream_tiles", "threshold_sequence", "TiledRun", "tile_grid"]

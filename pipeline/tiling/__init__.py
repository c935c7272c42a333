"""Tiled, chunking-invariant execution with Dask: the diffusion (:mod:`.tiles`) and
PSF fitting (:mod:`.fitted`)."""

from pipeline.tiling.tiles import (
    FIT_HALO,
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
    streams_tiles,
    threshold_sequence,
    tile_grid,
)
from pipeline.tiling.threads import tile_warning_filters

__all__ = ["FIT_HALO", "STREAMED_TILE_TASK", "FrameScalars", "TiledResult", "TileMetrics",
           "default_halo", "frame_scalars", "lockstep_diffuse", "remove_stars_dask",
           "run_tiled", "sample_grid", "stream_tile", "stream_tiles", "streams_tiles",
           "threshold_sequence", "TiledRun", "tile_grid",
           "tile_warning_filters"]

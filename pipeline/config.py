"""Run configurations: the YAML files of ``destar run CONFIG`` and ``destar remove --config``.

Schema (every key optional unless said; unknown keys are errors naming the key and the
file)::

    inputs:            # destar run: required; files, globs and folders
      - raw/night1/*.fits
      - raw/extra/frame_0042.fits
      - raw/night2/            # every image file in the folder (not recursive)
    output: starless/  # destar run: required; folder of the results (created)
    format: zarr       # zarr (default) | fits | tif | npy | png
    preset: paper      # a name of pipeline.PRESETS (default: survey)
    parameters:        # DiffusionParameters fields over the preset
      n_iter: 200
    chunk: 2048        # tile side in pixels, or "full"
    hdu: SCI           # FITS HDU index or EXTNAME
    plane: 0           # plane of 3-D cubes
    checkpoint_every: 25   # iterations between checkpoints (0: none); zarr only
    frames_at_once: 4  # destar run: frames processed side by side (default 1)
    scheduler: tcp://head-node:8786   # a running Dask scheduler...
    cluster:           # ...or a dask-jobqueue cluster (see pipeline.cluster)
      kind: slurm
      cores: 8
      memory: 32GB

Relative paths (``inputs``, ``output``) are relative to the folder of the config file.
Options on the command line override the file.  Errors are :class:`ConfigError` (a
``ValueError``) whose message starts with the file and names the offending key.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "RunConfig", "load_config", "expand_inputs", "FORMATS",
           "TOP_LEVEL_KEYS"]

#: ``format:`` values and the extension of the outputs they write.
FORMATS = {"zarr": ".zarr", "fits": ".fits", "tif": ".tif", "npy": ".npy", "png": ".png"}

#: Keys allowed at the top of a config file.
TOP_LEVEL_KEYS = ("inputs", "output", "format", "preset", "parameters", "chunk", "hdu",
                  "plane", "checkpoint_every", "frames_at_once", "scheduler", "cluster")


class ConfigError(ValueError):
    """A config file that cannot be used (one line: the file, the key, the problem)."""


@dataclass
class RunConfig:
    """A validated config file (``None`` where the file does not set a value)."""

    path: Path | None = None
    inputs: list[str] = field(default_factory=list)
    output: Path | None = None
    format: str | None = None
    preset: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    chunk: int | str | None = None
    hdu: int | str | None = None
    plane: int | None = None
    checkpoint_every: int | None = None
    frames_at_once: int | None = None
    scheduler: str | None = None
    cluster: dict[str, Any] | None = None

    def params(self):
        """The resolved :class:`~pipeline.core.params.DiffusionParameters`."""
        from pipeline.core.params import DEFAULT_PRESET, resolve_parameters

        return resolve_parameters(self.preset or DEFAULT_PRESET, **self.parameters)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_parameters(where: str, preset: str | None, parameters: Any) -> dict[str, Any]:
    import dataclasses

    from pipeline.core.params import DEFAULT_PRESET, DiffusionParameters, resolve_parameters

    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ConfigError(f"{where}: parameters: expected a mapping of parameter names "
                          f"to values, got {type(parameters).__name__}")
    known = {f.name for f in dataclasses.fields(DiffusionParameters)}
    for key in parameters:
        if key not in known:
            raise ConfigError(f"{where}: parameters.{key}: unknown parameter; known: "
                              f"{', '.join(sorted(known))}")
    try:
        resolve_parameters(preset or DEFAULT_PRESET)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: preset: {exc}") from None
    # One key at a time, so the message names the key that is wrong.
    for key, value in parameters.items():
        try:
            resolve_parameters(preset or DEFAULT_PRESET, **{key: value})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: parameters.{key}: {exc}") from None
    try:
        params = resolve_parameters(preset or DEFAULT_PRESET, **parameters)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: parameters: {exc}") from None
    if params.stop != "fixed":
        # Files run in tiles, which need n_iter fixed: every frame would fail.
        raise ConfigError(f"{where}: parameters.stop: {params.stop!r} needs a whole-frame "
                          "run in Python (remove_stars or diagnose on a NumPy array); "
                          "files run in tiles with a fixed n_iter")
    return dict(parameters)


def parse_config(data: Any, where: str, base: Path | None = None) -> RunConfig:
    """Validate the mapping read from a config; ``where`` names it in errors."""
    from pipeline.cluster import validate_cluster

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings at the top level, "
                          f"got {type(data).__name__}")
    unknown = [str(k) for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(TOP_LEVEL_KEYS)}")
    base = base or Path.cwd()
    config = RunConfig(path=Path(where) if where else None)

    inputs = data.get("inputs")
    if inputs is not None:
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise ConfigError(f"{where}: inputs: expected a list of files, globs or "
                              f"folders, got {inputs!r}")
        config.inputs = [str(base / os.path.expanduser(i)) for i in inputs]
    if data.get("output") is not None:
        if not isinstance(data["output"], str):
            raise ConfigError(f"{where}: output: expected a folder, got {data['output']!r}")
        config.output = base / os.path.expanduser(data["output"])
    if data.get("format") is not None:
        if data["format"] not in FORMATS:
            raise ConfigError(f"{where}: format: {data['format']!r} is not one of "
                              f"{', '.join(FORMATS)}")
        config.format = data["format"]
    if data.get("preset") is not None:
        if not isinstance(data["preset"], str):
            raise ConfigError(f"{where}: preset: expected a preset name, "
                              f"got {data['preset']!r}")
        config.preset = data["preset"]
    config.parameters = _check_parameters(where, config.preset, data.get("parameters"))

    chunk = data.get("chunk")
    if chunk is not None:
        if isinstance(chunk, str) and chunk.strip().lower() == "full":
            chunk = "full"
        elif not _is_int(chunk) or chunk < 1:
            raise ConfigError(f"{where}: chunk: expected a positive number of pixels or "
                              f"'full', got {chunk!r}")
        config.chunk = chunk
    hdu = data.get("hdu")
    if hdu is not None and not (_is_int(hdu) or isinstance(hdu, str)):
        raise ConfigError(f"{where}: hdu: expected an index or an EXTNAME, got {hdu!r}")
    config.hdu = hdu
    plane = data.get("plane")
    if plane is not None and not _is_int(plane):
        raise ConfigError(f"{where}: plane: expected an integer, got {plane!r}")
    config.plane = plane
    every = data.get("checkpoint_every")
    if every is not None and (not _is_int(every) or every < 0):
        raise ConfigError(f"{where}: checkpoint_every: expected an integer >= 0 "
                          f"(0: no checkpoints), got {every!r}")
    config.checkpoint_every = every
    at_once = data.get("frames_at_once")
    if at_once is not None and (not _is_int(at_once) or at_once < 1):
        raise ConfigError(f"{where}: frames_at_once: expected an integer >= 1, "
                          f"got {at_once!r}")
    config.frames_at_once = at_once
    scheduler = data.get("scheduler")
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise ConfigError(f"{where}: scheduler: expected an address such as "
                          f"tcp://host:8786, got {scheduler!r}")
    config.scheduler = scheduler
    if data.get("cluster") is not None:
        try:
            config.cluster = validate_cluster(data["cluster"], f"{where}: cluster")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.scheduler and config.cluster:
        raise ConfigError(f"{where}: scheduler and cluster: give one or the other")
    return config


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a YAML config file (``yaml.safe_load``)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file "
                          f"({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from None
    return parse_config(data, str(path), base=path.resolve().parent)


def expand_inputs(inputs: list[str], where: str = "inputs") -> list[Path]:
    """Files named by ``inputs``: files as given, globs sorted, folders' image files.

    A glob that matches nothing or a folder without images raises :class:`ConfigError`;
    a plain file name is kept even if it does not exist (it fails as its own frame).
    Duplicates are dropped, the first occurrence kept.
    """
    from pipeline.io.meta import _match_extension

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True)
                             if Path(m).is_file())
            if not matches:
                raise ConfigError(f"{where}: {item}: no file matches this pattern")
            files.extend(matches)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir()
                             if p.is_file() and _match_extension(p) is not None)
            if not matches:
                raise ConfigError(f"{where}: {item}: folder holds no image files")
            files.extend(matches)
        else:
            files.append(path)
    seen, unique = set(), []
    for f in files:
        key = os.path.abspath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique

"""The ``destar`` command.

One subcommand per function: ``add_<name>_parser(subparsers)`` declares its options and
points ``func`` at ``cmd_<name>(args) -> int``.  The work itself lives in library
modules (:mod:`pipeline.reports` for the two report commands), so this module only
parses, calls and prints.

Expected failures (bad input, missing files, bad parameters, interrupt) end with one
line ``destar: error: <message>`` on stderr and a non-zero exit code; ``--debug`` adds
the traceback.  Anything else is a bug and propagates with its traceback.

Subcommands:

- ``destar reproduce-paper``: recompute the paper's Table 2 and a Figure-7-like panel;
- ``destar demo``: remove the stars of a simulated survey frame and score the result;
- ``destar remove``: remove the stars of one image file (:mod:`pipeline.run`), with
  progress, checkpoints and resume, optionally on a Dask cluster;
- ``destar run``: process every input of a YAML config (:mod:`pipeline.config`),
  skipping finished outputs and reporting failed frames;
- ``destar info``: what a result store holds.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from pipeline.cluster import ClusterError  # a light module: no Dask import

__all__ = ["main", "build_parser"]

PROG = "destar"

#: Errors that are the user's input or environment, not bugs: reported in one line.
EXPECTED_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, OSError,
                   ClusterError)

#: Exit codes.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command-line parsing error (reported like any other error, exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of printing usage and calling sys.exit."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    message = str(exc) or type(exc).__name__
    return " ".join(message.split())  # exactly one line


# --------------------------------------------------------------------------- reproduce-paper
def add_reproduce_paper_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "reproduce-paper",
        parents=parents,
        help="recompute Table 2 of Cohen & Lu from the paper's images",
        description=(
            "Recompute Table 2 of the paper from figure2d.jpg (input) and figure2a.jpg "
            "(truth): Perona-Malik, Chao-Tsai, the new method (authors' code and 'paper' "
            "preset), the paper's saved output figure7e.jpg and the input itself, beside "
            "the paper's numbers.  Writes table2.csv, table2.md and figure7.png."
        ),
    )
    p.add_argument("--paper-dir", default=None,
                   help="folder with the paper's figure2a/2d/7e.jpg (default: "
                        "../shared/paper, else the shared/paper folder beside the repository)")
    p.add_argument("--output", default="paper-output",
                   help="folder for table2.csv, table2.md and figure7.png "
                        "(default: %(default)s; created if missing)")
    p.add_argument("--n-iter", type=int, default=200,
                   help="iterations of the new method (default: %(default)s)")
    p.set_defaults(func=cmd_reproduce_paper)


def cmd_reproduce_paper(args) -> int:
    from pipeline import reports

    reports.prepare_output_dir(args.output, create=False)  # fail before the work
    result = reports.reproduce_table2(args.paper_dir, n_iter=args.n_iter)
    out = reports.prepare_output_dir(args.output)
    print(reports.format_table2(result))
    written = [
        reports.write_table2_csv(result, out / "table2.csv"),
        reports.write_table2_markdown(result, out / "table2.md"),
        reports.write_figure7(result, out / "figure7.png"),
    ]
    print()
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


# --------------------------------------------------------------------------- demo
def add_demo_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "demo",
        parents=parents,
        help="remove the stars of a built-in simulated survey frame",
        description=(
            "Simulate a survey-like frame (stars, galaxies, a nebula, noise) with a known "
            "starless truth, remove its stars with the default preset, print the scores "
            "and write before_after.png and metrics.json."
        ),
    )
    p.add_argument("--output", default="demo-output",
                   help="folder for before_after.png and metrics.json "
                        "(default: %(default)s; created if missing)")
    p.add_argument("--size", type=int, default=512,
                   help="side of the square frame in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the simulated frame (default: %(default)s)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from pipeline import reports

    reports.prepare_output_dir(args.output, create=False)  # fail before the work
    result = reports.run_demo(size=args.size, seed=args.seed)
    out = reports.prepare_output_dir(args.output)
    print(reports.format_demo(result))
    written = [
        reports.write_before_after(result, out / "before_after.png"),
        reports.write_demo_json(result, out / "metrics.json"),
    ]
    print()
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


# --------------------------------------------------------------------------- remove
def _chunk_arg(text: str):
    """``--chunk``: a positive integer or 'full'."""
    if text.strip().lower() == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of pixels or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {value}")
    return value


def _hdu_arg(text: str):
    """``--hdu``: an index or an EXTNAME."""
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _int_at_least(minimum: int):
    """An argparse ``type``: an integer no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _add_run_options(p, *, single: bool) -> None:
    """Options shared by ``remove`` and ``run``; ``None`` defaults so a config can fill in."""
    p.add_argument("--chunk", type=_chunk_arg, default=None, metavar="N|full",
                   help="tile side in pixels, or 'full' for one tile (default: whole "
                        "axes up to 4096 px, else 2048-px tiles)")
    p.add_argument("--preset", default=None,
                   help="parameter preset: survey, paper or reference (default: the "
                        "config's, else survey)")
    p.add_argument("--n-iter", type=int, default=None, metavar="N",
                   help="diffusion iterations (default: the config's, else the preset's)")
    p.add_argument("--asinh-knee", type=float, default=None, metavar="K",
                   help="the image is shown through a known asinh stretch of knee K "
                        "in its units (85.05 for an 8-bit AsinhStretch(0.1)); the "
                        "survey fit runs on its linear scale (default: none)")
    p.add_argument("--hdu", type=_hdu_arg, default=None, metavar="H",
                   help="FITS HDU index or EXTNAME (default: the first with image data)")
    p.add_argument("--plane", type=int, default=None, metavar="P",
                   help="plane of a 3-D cube or stack")
    p.add_argument("--checkpoint-every", type=_int_at_least(0), default=None, metavar="N",
                   help="iterations between checkpoints of a .zarr run, which let the "
                        "same command resume after a kill (0: none; default: "
                        "max(10, n_iter // 4))")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the tiles on a Dask cluster, e.g. tcp://head:8786 "
                        "(default: the config's, else this machine)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output" if single else
                        "reprocess and replace outputs that are already complete")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars and no summary" if single else
                        "no progress bars (failures and the summary are still printed)")


def add_remove_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "remove",
        parents=parents,
        help="remove the stars of one image file",
        description=(
            "Remove the background stars of one image and write the starless image.  "
            "The output's extension chooses the format: .zarr (starless, stars, mask, "
            "per-tile metrics and provenance), .fits (input header and WCS kept, "
            "parameters as DS_* keywords), .tif, .npy, or a .png/.jpg picture.  A .zarr "
            "run is checkpointed beside the output (OUT.checkpoint): the same command "
            "started again after a kill resumes from the last checkpoint."
        ),
    )
    p.add_argument("input", metavar="INPUT",
                   help="FITS, TIFF, PNG/JPEG or NPY image (never modified)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file or store (.zarr, .fits, .tif, .png, .jpg, .npy)")
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="take preset, parameters, chunk, hdu, plane, checkpoint_every, "
                        "scheduler and cluster from a config file (options given here "
                        "override it; its inputs, output, format and frames_at_once are not "
                        "used)")
    _add_run_options(p, single=True)
    p.set_defaults(func=cmd_remove)


def _merged_config(args):
    """The config file (if any) with the command-line options laid over it."""
    from pipeline.config import RunConfig, load_config

    config = load_config(args.config) if getattr(args, "config", None) else RunConfig()
    if args.preset is not None:
        config.preset = args.preset
        # The config's parameters now apply over the command line's preset.
    for name in ("n_iter", "asinh_knee"):
        if getattr(args, name) is not None:
            config.parameters = {**config.parameters, name: getattr(args, name)}
    for name in ("chunk", "hdu", "plane", "checkpoint_every"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.scheduler is not None:
        config.scheduler, config.cluster = args.scheduler, None
    return config


def cmd_remove(args) -> int:
    from pipeline import run
    from pipeline.core.params import DEFAULT_PRESET

    config = _merged_config(args)
    summary = run.remove_stars_file(
        args.input, args.output, preset=config.preset or DEFAULT_PRESET,
        overrides=config.parameters, chunk=config.chunk, hdu=config.hdu,
        plane=config.plane, overwrite=args.overwrite, progress=not args.quiet,
        checkpoint_every=config.checkpoint_every, scheduler=config.scheduler,
        cluster=config.cluster,
    )
    if not args.quiet:
        print(run.format_summary(summary))
    return 0


# --------------------------------------------------------------------------- run
def add_run_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "run",
        parents=parents,
        help="remove the stars of every input of a YAML config (batch)",
        description=(
            "Process every input of a YAML config (inputs: files, globs, folders) into "
            "its output folder.  Outputs that are already complete are skipped; a frame "
            "that fails is reported in one line and the batch goes on; a summary ends "
            "the run and the exit code is non-zero if any frame failed.  Unfinished "
            ".zarr outputs resume from their checkpoints."
        ),
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="the run's config file")
    p.add_argument("--output", default=None, metavar="FOLDER",
                   help="output folder (overrides the config's)")
    p.add_argument("--format", default=None, choices=("zarr", "fits", "tif", "npy", "png"),
                   help="output format (overrides the config's; default zarr)")
    p.add_argument("--frames-at-once", type=_int_at_least(1), default=None, metavar="N",
                   help="frames processed side by side, each in its own process, so "
                        "that a cluster's workers are not left idle by frames of few "
                        "tiles (default: the config's, else 1)")
    _add_run_options(p, single=False)
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from pathlib import Path

    from pipeline import run

    config = _merged_config(args)
    if args.output is not None:
        config.output = Path(args.output)
    if args.format is not None:
        config.format = args.format
    if args.frames_at_once is not None:
        config.frames_at_once = args.frames_at_once
    result = run.run_batch(config, overwrite=args.overwrite, progress=not args.quiet)
    print(run.format_batch_summary(result))
    return EXIT_ERROR if result["failed"] else 0


# --------------------------------------------------------------------------- info
def add_info_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "info",
        parents=parents,
        help="show what a result store holds",
        description=("Print a .zarr result store's variables (shape, dtype, chunks), "
                     "preset and parameters, provenance (version, input and SHA-256, "
                     "creation time, measured bavg/noise/k) and per-tile metrics."),
    )
    p.add_argument("store", metavar="STORE", help="a .zarr store written by destar")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    from pipeline.run import format_store_info

    print(format_store_info(args.store))
    return 0


# --------------------------------------------------------------------------- parser, main
#: Subcommands in the order they are listed by ``destar --help``.
SUBCOMMANDS = (add_reproduce_paper_parser, add_demo_parser, add_remove_parser,
               add_run_parser, add_info_parser)


def build_parser() -> argparse.ArgumentParser:
    from pipeline import __version__

    # --debug is accepted before or after the subcommand name.  The subcommands' copy
    # uses SUPPRESS so that it does not reset a --debug given before the name.
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")

    parser = _Parser(
        prog=PROG,
        description="Remove background stars from astronomical images: by default "
                    "the sources that the image's own PSF fits (preset survey), or by "
                    "the asymmetry-driven diffusion of Cohen & Lu (presets paper and "
                    "reference).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the full traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    subparsers.required = True
    for add in SUBCOMMANDS:
        add(subparsers, [common])
    return parser


def main(argv=None) -> int:
    """Run the ``destar`` command; return the exit code (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:
        print(f"{PROG}: error: {_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (*EXPECTED_ERRORS, KeyboardInterrupt) as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_error_line(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

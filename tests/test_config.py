"""Config files (pipeline.config), the example configs and the jobqueue cluster they start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from pipeline import cli
from pipeline.cluster import make_jobqueue_cluster, validate_cluster
from pipeline.config import ConfigError, expand_inputs, load_config
from pipeline.core.params import PRESETS
from pipeline.io import open_store, sha256_file
from pipeline.synthetic import make_survey_frame

from cli_checks import assert_one_line_error

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# A jobqueue cluster starts a local scheduler whose dashboard moves off a busy port 8787.
dashboard_port_busy = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _one_line_error(capsys, argv, *fragments):
    code = cli.main(argv)
    _, err = capsys.readouterr()
    return assert_one_line_error(code, err, *fragments)


def test_every_example_config_parses_and_validates():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {"survey-batch.yaml", "paper-reference.yaml", "slurm.yaml"} <= set(names)
    for path in CONFIGS.glob("*.yaml"):
        config = load_config(path)
        config.params()
        assert config.inputs and config.output is not None, path


def test_paper_reference_config_is_the_reference_preset():
    config = load_config(CONFIGS / "paper-reference.yaml")
    assert config.params() == PRESETS["reference"]
    assert config.chunk == "full" and config.format == "fits"


def test_survey_batch_config_runs_on_tiny_frames(tmp_path, capsys):
    data = yaml.safe_load((CONFIGS / "survey-batch.yaml").read_text())
    raw = tmp_path / "raw"
    raw.mkdir()
    for seed in (1, 2):
        image = make_survey_frame((128, 128), seed=seed, n_stars=30, n_galaxies=1).image
        fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(raw / f"f{seed}.fits")
    data["inputs"] = ["raw/*.fits"]  # relative to the config's folder
    data["output"] = "starless"
    data["parameters"]["n_iter"] = 10
    data["chunk"] = 64
    config = _write(tmp_path / "survey-batch.yaml", data)
    code = cli.main(["run", str(config), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 done, 0 skipped, 0 failed" in out
    ds = open_store(tmp_path / "starless" / "f1.zarr")
    assert ds.attrs["parameters"]["n_iter"] == 10
    assert ds.starless.encoding["chunks"] == (64, 64)
    assert ds.attrs["checkpoint_every"] == data["checkpoint_every"]


@dashboard_port_busy
def test_slurm_config_builds_the_job_script_without_submitting():
    config = load_config(CONFIGS / "slurm.yaml")
    cluster = make_jobqueue_cluster(config.cluster)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p regular" in script
    assert "#SBATCH -A astro123" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "#SBATCH --mem=30G" in script  # 32 GB = 29.8 GiB, rounded up by dask-jobqueue
    assert "--memory-limit 29.80GiB" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert "#SBATCH --constraint=cpu" in script
    assert "--nthreads 8" in script
    assert "--local-directory /tmp" in script


@dashboard_port_busy
@pytest.mark.parametrize("kind, marker", [("pbs", "#PBS -A astro"), ("sge", "#$ -P astro"),
                                          ("lsf", '#BSUB -P "astro"')])
def test_other_jobqueue_kinds_map_the_account(kind, marker):
    cluster = make_jobqueue_cluster({"kind": kind, "cores": 2, "memory": "4GB",
                                     "account": "astro", "queue": "q", "walltime": "01:00:00"})
    try:
        assert marker in cluster.job_script()
    finally:
        cluster.close()


@pytest.mark.parametrize("text, fragments", [
    ({"inputs": ["a.fits"], "outptu": "x"}, ["outptu", "unknown key"]),
    ({"parameters": {"n_iters": 5}}, ["parameters.n_iters", "unknown parameter"]),
    ({"parameters": {"n_iter": "ten"}}, ["parameters.n_iter", "integer"]),
    ({"parameters": {"gamma": 0.5}}, ["parameters.gamma", "stable range"]),
    ({"parameters": {"gamma": "0.2"}}, ["parameters.gamma", "real number"]),
    ({"preset": "paper", "parameters": {"stop": "auto"}}, ["parameters.stop", "whole-frame"]),
    ({"preset": "survey-fast"}, ["preset", "unknown preset"]),
    ({"format": "jpeg2000"}, ["format"]),
    ({"chunk": 0}, ["chunk"]),
    ({"checkpoint_every": -1}, ["checkpoint_every"]),
    ({"frames_at_once": 0}, ["frames_at_once", ">= 1"]),
    ({"frames_at_once": "all"}, ["frames_at_once", ">= 1"]),
    ({"scheduler": "head-node"}, ["scheduler", "tcp://"]),
    ({"cluster": {"kind": "slurm", "cores": 4, "memory": "8GB", "nodes": 2}},
     ["cluster", "nodes"]),
    ({"cluster": {"kind": "condor", "cores": 4, "memory": "8GB"}}, ["cluster.kind"]),
    ({"cluster": {"kind": "slurm", "cores": 4, "memory": "8GB", "walltime": 7200}},
     ["cluster.walltime"]),
    ("inputs: [a.fits\noutput: x\n", ["invalid YAML", "line"]),
    ("- just\n- a list\n", ["mapping"]),
])
def test_invalid_config_is_one_line_naming_file_and_key(tmp_path, capsys, text, fragments):
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    # The same through both commands: one line, no traceback, nothing written.
    source = tmp_path / "in.npy"
    np.save(source, np.ones((16, 16)))
    digest = sha256_file(source)
    _one_line_error(capsys, ["run", str(path)], str(path), *fragments)
    _one_line_error(capsys, ["remove", str(source), "-o", str(tmp_path / "o.zarr"),
                             "--config", str(path)], str(path), *fragments)
    assert not (tmp_path / "o.zarr").exists()
    assert sha256_file(source) == digest


def test_missing_config_is_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["run", str(tmp_path / "absent.yaml")], "no such config file")


def test_command_line_overrides_the_config(tmp_path, capsys):
    image = make_survey_frame((128, 128), seed=4, n_stars=30, n_galaxies=1).image
    source = tmp_path / "in.npy"
    np.save(source, image)
    config = _write(tmp_path / "c.yaml", {"preset": "paper", "parameters": {"n_iter": 7},
                                          "chunk": 32, "checkpoint_every": 0})
    out = tmp_path / "a.zarr"
    assert cli.main(["remove", str(source), "-o", str(out), "--config", str(config),
                     "--quiet"]) == 0
    ds = open_store(out)
    assert ds.attrs["parameters"]["n_iter"] == 7 and ds.attrs["chunks"] == [32, 32]
    assert ds.attrs["checkpoint_every"] == 0
    out = tmp_path / "b.zarr"
    assert cli.main(["remove", str(source), "-o", str(out), "--config", str(config),
                     "--preset", "paper", "--n-iter", "5", "--chunk", "64", "--quiet"]) == 0
    ds = open_store(out)
    assert ds.attrs["parameters"]["n_iter"] == 5 and ds.attrs["chunks"] == [64, 64]
    capsys.readouterr()


def test_inputs_expand_files_globs_and_folders(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("d/b.fits", "d/a.npy", "d/notes.txt", "c.fits"):
        (tmp_path / name).write_bytes(b"")
    files = expand_inputs([str(tmp_path / "d"), str(tmp_path / "*.fits"),
                           str(tmp_path / "d" / "a.npy"), str(tmp_path / "missing.fits")])
    assert [f.name for f in files] == ["a.npy", "b.fits", "c.fits", "missing.fits"]
    with pytest.raises(ConfigError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.tif")])


def test_cluster_section_validation():
    section = validate_cluster({"kind": "sge", "cores": 1, "memory": "1GB", "jobs": 3})
    assert section["jobs"] == 3
    with pytest.raises(ValueError, match="memory"):
        validate_cluster({"kind": "slurm", "cores": 1})

"""The ``destar`` command, run in-process through ``pipeline.cli.main``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from pipeline import cli, reports

from cli_checks import assert_one_line_error


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_png(path, min_side=100):
    assert path.is_file()
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert min(im.size) >= min_side


# --------------------------------------------------------------------------- reproduce-paper
@pytest.fixture(scope="module")
def reproduced(paper_dir, tmp_path_factory):
    """One reproduce-paper run shared by the tests below (about 1 s once compiled)."""
    out = tmp_path_factory.mktemp("paper-output")
    code = cli.main(["reproduce-paper", "--paper-dir", str(paper_dir), "--output", str(out)])
    assert code == 0
    with open(out / "table2.csv", newline="") as handle:
        rows = {r["key"]: r for r in csv.DictReader(handle)}
    return out, rows


def test_reproduce_paper_reference_row(reproduced):
    _, rows = reproduced
    ref = rows["reference"]
    # reference-semantics.md, "Table 2, as measured": 16.40 / 23.835 / 0.908.
    assert float(ref["rmse"]) == pytest.approx(16.40, abs=0.05)
    assert float(ref["psnr"]) == pytest.approx(23.835, abs=0.01)
    assert float(ref["ssim"]) == pytest.approx(0.908, abs=0.001)


def test_reproduce_paper_baselines_match_paper(reproduced):
    _, rows = reproduced
    pm, ct = rows["perona_malik"], rows["chao_tsai"]
    # Perona-Malik: measured 19.71 / 22.236 / 0.728; the paper prints 19.72 / 22.231 / 0.729.
    assert float(pm["rmse"]) == pytest.approx(19.71, abs=0.02)
    assert float(pm["psnr"]) == pytest.approx(22.236, abs=0.01)
    assert float(pm["ssim"]) == pytest.approx(0.728, abs=0.002)
    # Chao-Tsai: the paper prints 19.52 / 22.322 / 0.476.
    assert float(ct["rmse"]) == pytest.approx(19.52, abs=0.02)
    assert float(ct["psnr"]) == pytest.approx(22.322, abs=0.01)
    assert float(ct["ssim"]) == pytest.approx(0.476, abs=0.003)


def test_reproduce_paper_saved_output_and_input_rows(reproduced):
    _, rows = reproduced
    saved, inp = rows["figure7e"], rows["input"]
    # The paper's Table 2 (new method) was computed on its saved 8-bit figure7e.jpg.
    assert float(saved["rmse"]) == pytest.approx(15.96, abs=0.02)
    assert float(saved["psnr"]) == pytest.approx(24.068, abs=0.01)
    assert float(inp["rmse"]) == pytest.approx(27.67, abs=0.01)
    assert float(inp["psnr"]) == pytest.approx(19.292, abs=0.01)
    # Every row has MAE <= RMSE, which the paper's MAE column violates.
    for row in rows.values():
        assert float(row["mae"]) <= float(row["rmse"])
    # The paper-preset row exists and beats the input.
    assert float(rows["paper"]["psnr"]) > float(inp["psnr"]) + 3


def test_reproduce_paper_files(reproduced):
    out, rows = reproduced
    assert set(rows) == {"perona_malik", "chao_tsai", "reference", "paper", "figure7e", "input"}
    assert float(rows["perona_malik"]["paper_rmse"]) == 19.72
    assert rows["input"]["paper_rmse"] == ""
    md = (out / "table2.md").read_text()
    assert "MAE can never exceed RMSE" in md
    _assert_png(out / "figure7.png")


def test_reproduce_paper_prints_table_and_note(paper_dir, tmp_path, capsys):
    code, out, err = _run(capsys, ["reproduce-paper", "--paper-dir", str(paper_dir),
                                   "--output", str(tmp_path / "o"), "--n-iter", "20"])
    assert code == 0, err
    assert "Perona-Malik" in out and "Chao-Tsai" in out and "figure7e.jpg" in out
    assert "233.4" in out and "24.068" in out  # the paper's numbers are printed beside
    assert "MAE can never exceed RMSE" in out
    assert (tmp_path / "o" / "figure7.png").is_file()


def test_default_paper_dir_falls_back_beside_repository(paper_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/paper from here
    assert reports.default_paper_dir().resolve() == paper_dir.resolve()


# --------------------------------------------------------------------------- demo
def test_demo_writes_files_and_improves_psnr(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = _run(capsys, ["demo", "--output", str(out_dir), "--size", "256",
                                   "--seed", "1"])
    assert code == 0, err
    assert "PSNR" in out and "Mpx/s" in out
    _assert_png(out_dir / "before_after.png")
    doc = json.loads((out_dir / "metrics.json").read_text())
    before = doc["metrics"]["input_vs_truth"]
    after = doc["metrics"]["starless_vs_truth"]
    assert after["psnr"] > before["psnr"] + 3
    assert after["ssim"] > before["ssim"]
    assert abs(after["star_flux_left"]) < 0.3 * before["star_flux_left"]
    assert doc["frame"]["shape"] == [256, 256]
    assert doc["preset"] == "survey"
    assert doc["timing"]["seconds"] > 0


def test_demo_is_reproducible(tmp_path):
    a = reports.run_demo(size=256, seed=3)
    b = reports.run_demo(size=256, seed=3)
    np.testing.assert_array_equal(a.starless, b.starless)
    assert a.after == b.after


# --------------------------------------------------------------------------- errors
def test_missing_paper_dir_is_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    code, out, err = _run(capsys, ["reproduce-paper", "--paper-dir", str(missing),
                                   "--output", str(tmp_path / "o")])
    assert_one_line_error(code, err)
    assert str(missing) in err
    assert not (tmp_path / "o").exists()  # nothing written on failure


def test_paper_dir_without_images_is_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, ["reproduce-paper", "--paper-dir", str(empty),
                                 "--output", str(tmp_path / "o")])
    assert_one_line_error(code, err)
    assert "figure2d.jpg" in err


def test_output_that_is_a_file_is_one_line_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    code, _, err = _run(capsys, ["demo", "--output", str(target), "--size", "32"])
    assert_one_line_error(code, err)
    assert str(target) in err


def test_bad_parameter_is_one_line_error(tmp_path, capsys):
    code, _, err = _run(capsys, ["demo", "--output", str(tmp_path / "o"), "--size", "4"])
    assert_one_line_error(code, err)
    assert "size" in err


def test_usage_errors_are_one_line(capsys):
    for argv in ([], ["no-such-command"], ["demo", "--size", "abc"], ["demo", "--bogus"]):
        code, _, err = _run(capsys, argv)
        assert code == 2, argv
        assert_one_line_error(code, err)


def test_debug_flag_shows_traceback(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    for argv in (["--debug", "reproduce-paper", "--paper-dir", missing],
                 ["reproduce-paper", "--paper-dir", missing, "--debug"]):
        code, _, err = _run(capsys, argv)
        assert code == 1
        assert "Traceback" in err
        assert err.strip().splitlines()[-1].startswith("destar: error:")


def test_keyboard_interrupt_is_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.argparse.ArgumentParser, "parse_args",
                        lambda self, argv=None: cli.argparse.Namespace(func=interrupted))
    code, _, err = _run(capsys, ["demo"])
    assert code == 130
    assert_one_line_error(code, err)


def test_help_and_version_return_zero(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0 and "reproduce-paper" in out and "demo" in out
    code, out, _ = _run(capsys, ["--version"])
    assert code == 0 and out.startswith("destar ")

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.cli.main import main
from napari_bloodseg.io import read_mask, write_mask

TOP_KEYS = {"model", "schema", "n_images", "seconds", "device", "per_class", "pixel_accuracy", "images"}
CLASS_KEYS = {"jaccard", "dice", "jaccard_sem", "dice_sem"}


def _check_shape(report: dict, classes: list[str], n: int) -> None:
    """The report shape the issue asks for (extra keys such as ``errors`` or class-vs-rest accuracy are allowed)."""
    assert TOP_KEYS <= set(report)
    assert isinstance(report["seconds"], float) and report["seconds"] >= 0
    assert isinstance(report["device"], str) and isinstance(report["pixel_accuracy"], float)
    assert report["n_images"] == n == len(report["images"])
    assert list(report["per_class"]) == classes
    for entry in report["per_class"].values():
        assert CLASS_KEYS <= set(entry) and all(isinstance(entry[k], float) for k in ("jaccard", "dice"))
        # the SEM of one image is undefined: null, never a perfect 0.0
        assert all(isinstance(entry[k], float) if n > 1 else entry[k] is None for k in ("jaccard_sem", "dice_sem"))
    for image in report["images"]:
        assert {"name", "per_class"} <= set(image) and isinstance(image["name"], str)
        assert list(image["per_class"]) == classes
        assert all({"jaccard", "dice"} <= set(v) for v in image["per_class"].values())


def _truth(wbc_dir: Path, i: int) -> np.ndarray:
    return read_mask(wbc_dir / f"{i:03d}.png", "wbc")[0]


def _sem2(a: float, b: float) -> float:
    return abs(a - b) / 2  # SEM (ddof=1) of two values


def test_evaluate_pred_folder(wbc_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    t1, t2 = _truth(wbc_dir, 1), _truth(wbc_dir, 2)
    write_mask(pred / "001.png", t1, "wbc")  # perfect
    write_mask(pred / "002.png", np.where(t2 == 2, 1, t2), "wbc")  # nucleus called cytoplasm
    out = tmp_path / "report.json"
    rc = main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    _check_shape(report, ["cytoplasm", "nucleus", "cell"], 2)
    assert (report["model"], report["schema"], report["device"]) == (None, "wbc", "none")
    assert [im["name"] for im in report["images"]] == ["001", "002"]
    # image 002: cytoplasm TP = #cyto, FP = #nucleus, FN 0 -> J = #cyto / (#cyto + #nucleus); nucleus missed -> 0;
    # the cell is exact -> 1. Image 001 is perfect: every class 1.
    n_cyto, n_nuc = int((t2 == 1).sum()), int((t2 == 2).sum())
    j = n_cyto / (n_cyto + n_nuc)
    d = 2 * n_cyto / (2 * n_cyto + n_nuc)
    im2 = report["images"][1]["per_class"]
    assert im2["cytoplasm"]["jaccard"] == pytest.approx(j) and im2["cytoplasm"]["dice"] == pytest.approx(d)
    assert im2["nucleus"]["jaccard"] == 0.0 and im2["cell"]["jaccard"] == 1.0
    pc = report["per_class"]
    assert pc["cytoplasm"]["jaccard"] == pytest.approx((1 + j) / 2)
    assert pc["cytoplasm"]["jaccard_sem"] == pytest.approx(_sem2(1, j))
    assert pc["cytoplasm"]["dice_sem"] == pytest.approx(_sem2(1, d))
    assert pc["nucleus"]["jaccard"] == pytest.approx(0.5) and pc["nucleus"]["jaccard_sem"] == pytest.approx(0.5)
    assert pc["cell"]["jaccard"] == 1.0 and pc["cell"]["jaccard_sem"] == 0.0
    # the overall accuracy: 002 gets every pixel right except the nucleus
    acc2 = 1 - n_nuc / t2.size
    assert report["pixel_accuracy"] == pytest.approx((1 + acc2) / 2)
    captured = capsys.readouterr()
    assert "cytoplasm" in captured.out and "overall pixel accuracy" in captured.out
    assert "report written to" in captured.err


def test_evaluate_model_on_images(wbc_dir, constant_models, tmp_path):
    out = tmp_path / "r.json"
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", str(wbc_dir), "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    _check_shape(report, ["cytoplasm", "nucleus", "cell"], 3)
    assert report["model"] == "all-cyto" and report["schema"] == "wbc" and report["device"].startswith("cpu")
    # everything predicted cytoplasm: J(cyto) = #cyto / N, J(nucleus) = 0, J(cell) = #cell / N
    for image in report["images"]:
        t = _truth(wbc_dir, int(image["name"]))
        pc = image["per_class"]
        assert pc["cytoplasm"]["jaccard"] == pytest.approx((t == 1).mean())
        assert pc["nucleus"]["jaccard"] == 0.0
        assert pc["cell"]["jaccard"] == pytest.approx((t > 0).mean())
    expected = [(_truth(wbc_dir, i) == 1).mean() for i in (1, 2, 3)]
    assert report["per_class"]["cytoplasm"]["jaccard"] == pytest.approx(np.mean(expected))
    sem = np.std(expected, ddof=1) / np.sqrt(3)
    assert report["per_class"]["cytoplasm"]["jaccard_sem"] == pytest.approx(sem)


def test_evaluate_rbc_reports_cell_only(rbc_dir, constant_models, tmp_path):
    out = tmp_path / "r.json"
    argv = ["evaluate", "--masks", str(rbc_dir), "--model", "all-cell", "--images", str(rbc_dir), "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    _check_shape(report, ["cell"], 2)
    assert report["schema"] == "rbc"
    t = read_mask(rbc_dir / "field-0.png", "rbc")[0]
    assert report["images"][0]["per_class"]["cell"]["jaccard"] == pytest.approx(t.mean())


def test_evaluate_rbc_pred_folder_guesses_schema(rbc_dir, tmp_path):
    pred = tmp_path / "pred"
    for i in range(2):
        write_mask(pred / f"field-{i}.png", read_mask(rbc_dir / f"field-{i}.png", "rbc")[0], "rbc")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--masks", str(rbc_dir), "--pred", str(pred), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    _check_shape(report, ["cell"], 2)
    assert report["per_class"]["cell"]["jaccard"] == 1.0


def test_bad_files_are_reported_and_the_rest_scored(wbc_dir, tmp_path, capsys, clean_error):
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    write_mask(pred / "002.png", np.zeros((50, 50), np.uint8), "wbc")  # wrong size
    (pred / "003.png").write_bytes(b"\x89PNG broken")  # unreadable
    write_mask(pred / "077.png", np.zeros((10, 10), np.uint8), "wbc")  # no expert mask of that name
    out = tmp_path / "r.json"
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(out)]) == 2
    clean_error(
        capsys.readouterr().err,
        f"002.png: mask is 88x116 but the prediction {pred / '002.png'} is 50x50",
        "003.png: cannot read image",
        "077: no expert mask",
    )
    report = json.loads(out.read_text())
    _check_shape(report, ["cytoplasm", "nucleus", "cell"], 1)
    assert report["images"][0]["name"] == "001" and len(report["errors"]) == 3


def test_unreadable_image_with_model(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    (wbc_dir / "002.bmp").write_bytes(b"BM broken")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", str(wbc_dir), "--json", str(out)]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "002.bmp: cannot read image")
    assert [im["name"] for im in json.loads(out.read_text())["images"]] == ["001", "003"]


def test_wrong_size_image_with_model(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    Image.new("RGB", (30, 20)).save(wbc_dir / "003.bmp")  # its mask is 120x120
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", str(wbc_dir)]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "003.png: mask is 120x120 but its image is 20x30")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "nonexistent", "--images", "{wbc}"], "unknown model 'nonexistent'"),
        (["--images", "{wbc}"], "--images needs --model"),
        (["--pred", "{empty}"], "no images or predictions found"),
        (["--pred", "{missing}"], "not a folder"),
        (["--model", "unet", "--images", "{empty}"], "no images or predictions found"),
    ],
)
def test_usage_errors(wbc_dir, tmp_path, capsys, clean_error, extra, needle):
    (tmp_path / "empty").mkdir()
    paths = {"wbc": str(wbc_dir), "empty": str(tmp_path / "empty"), "missing": str(tmp_path / "missing")}
    out = tmp_path / "r.json"
    argv = ["evaluate", "--masks", str(wbc_dir), *[a.format(**paths) for a in extra], "--json", str(out)]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, needle)
    assert not out.exists()


def test_empty_masks_folder(tmp_path, capsys, clean_error):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--masks", str(tmp_path / "empty"), "--pred", str(tmp_path / "empty")]) == 2
    clean_error(capsys.readouterr().err, "no masks found")


def test_console_script(tmp_path):
    """The installed ``bloodseg`` script: exit code 2, one clean line on stderr, no traceback."""
    script = Path(sys.executable).parent / "bloodseg"
    if not script.exists():
        pytest.skip("bloodseg console script not installed in this environment")
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [str(script), "evaluate", "--masks", str(tmp_path / "empty"), "--pred", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"bloodseg: error: no masks found in {tmp_path / 'empty'}"]
    assert proc.stdout == ""


def test_dataset1_end_to_end_with_untrained_unet(shared_data, tmp_path, capsys):
    """All 270 Dataset 1 images through `bloodseg evaluate` with a randomly initialised U-Net (about 10 s)."""
    d1 = shared_data / "wbc" / "dataset1"
    out = tmp_path / "d1.json"
    rc = main(["evaluate", "--masks", str(d1), "--model", "unet", "--images", str(d1), "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    _check_shape(report, ["cytoplasm", "nucleus", "cell"], 270)
    assert report["model"] == "unet" and report["device"].startswith("cpu")
    assert [im["name"] for im in report["images"]] == sorted(p.stem for p in d1.glob("*.bmp"))
    for entry in report["per_class"].values():
        assert 0.0 <= entry["jaccard"] <= entry["dice"] <= 1.0  # Dice >= Jaccard always
    assert "unet is untrained" in capsys.readouterr().err


def test_evaluate_with_cell_size_auto_scores_at_the_measured_scale(tmp_path, capsys):
    from PIL import Image

    from napari_bloodseg.data import synthetic_rbc
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.cell_size import estimate_cell_size
    from napari_bloodseg.metrics import score_image
    from napari_bloodseg.models import get_model

    image, labels = synthetic_rbc((300, 400), seed=2)  # ~41 px cells; rbc-deconvnet knows ~102 px
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(image).save(images / "f.png")
    Image.fromarray((labels * 255).astype(np.uint8)).save(masks / "f.png")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--masks", str(masks), "--model", "rbc-deconvnet", "--images", str(images)]
    assert main([*argv, "--cell-size", "auto", "--json", str(out)]) == 0
    model, card = get_model("rbc-deconvnet")
    predictor = Predictor(model, card)
    scale = estimate_cell_size(predictor, image).scale
    expected = score_image(predictor.predict(image, scale=scale).labels, labels, "rbc")["per_class"]["cell"]
    iou = json.loads(out.read_text())["per_class"]["cell"]["jaccard"]
    assert iou == pytest.approx(expected["jaccard"]) and iou > 0.8
    assert f"scale {scale:.2f}" in capsys.readouterr().err


def test_a_bad_json_path_is_refused_before_scoring(wbc_dir, tmp_path, capsys, clean_error):
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad, needle in ((tmp_path, "a folder: name the report file"), (afile / "r.json", "is a file, not a folder")):
        assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(bad)]) == 2
        err = capsys.readouterr().err
        clean_error(err, needle)
        assert "cytoplasm" not in err


def test_a_report_folder_gets_advice_with_its_flags_suffix(wbc_dir, tmp_path, capsys, clean_error):
    # --csv <folder> suggested report.json, which the next run refused as "a .json name for a CSV report"
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    for flag, suffix in (("--csv", ".csv"), ("--json", ".json")):
        assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), flag, str(pred)]) == 2
        clean_error(capsys.readouterr().err, f"a folder: name the report file, e.g. {pred / ('report' + suffix)}")


def test_the_schema_of_a_pred_folder_is_read_from_several_masks(wbc_dir, tmp_path, capsys):
    """An empty first expert mask read alone said RBC, and the WBC batch was scored as one class."""
    masks, pred = tmp_path / "masks", tmp_path / "pred"
    write_mask(masks / "001.png", np.zeros_like(_truth(wbc_dir, 1)), "wbc")
    for i in (1, 2, 3):
        if i > 1:
            write_mask(masks / f"{i:03d}.png", _truth(wbc_dir, i), "wbc")
        write_mask(pred / f"{i:03d}.png", _truth(wbc_dir, i), "wbc")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--masks", str(masks), "--pred", str(pred), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["schema"] == "wbc"
    assert "read the masks as WBC (--schema to choose)" in capsys.readouterr().err


def test_rbc_masks_scored_by_a_wbc_model_are_flagged(rbc_dir, constant_models, tmp_path, capsys):
    argv = ["evaluate", "--masks", str(rbc_dir), "--model", "all-cyto", "--images", str(rbc_dir)]
    assert main(argv) == 0
    assert "no expert mask has a cytoplasm (grey 128) pixel" in capsys.readouterr().err


def test_photographs_are_not_scored_as_masks(wbc_dir, tmp_path, capsys, clean_error):
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in (1, 2, 3):
        Image.open(wbc_dir / f"{i:03d}.bmp").save(pred / f"{i:03d}.png")  # the images, not predictions
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--schema", "wbc"]) == 2
    clean_error(
        capsys.readouterr().err,
        *[f"{pred / f'{i:03d}.png'}: a colour image, not a mask" for i in (1, 2, 3)],  # which folder, too
        "no image could be evaluated",
    )


def test_grey_photographs_given_as_expert_masks_are_refused(wbc_dir, tmp_path, capsys, clean_error):
    """Grey photographs passed as --masks had their shades snapped to 0/128/255 and scored, exit 0."""
    masks, pred = tmp_path / "greym", tmp_path / "pred"
    masks.mkdir()
    for i in (1, 2, 3):
        Image.open(wbc_dir / f"{i:03d}.bmp").convert("L").save(masks / f"{i:03d}.png")
        write_mask(pred / f"{i:03d}.png", _truth(wbc_dir, i), "wbc")
    assert main(["evaluate", "--masks", str(masks), "--pred", str(pred), "--schema", "wbc"]) == 2
    clean_error(
        capsys.readouterr().err,
        *[
            f"{masks / f'{i:03d}.png'}: a grey picture (smooth shades, not flat grey levels), not a mask"
            for i in (1, 2, 3)
        ],
        "no image could be evaluated",
    )


def test_a_missing_image_is_named_as_missing_and_a_replaced_report_is_said(
    wbc_dir, constant_models, tmp_path, capsys, clean_error
):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"schema": "wbc", "per_class": {}, "images": []}))  # an earlier report
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--json", str(out), "--images"]
    assert main([*argv, str(tmp_path / "missing.bmp"), str(wbc_dir / "001.bmp")]) == 2
    err = capsys.readouterr().err
    clean_error(err, "missing.bmp: no such file")  # not "no expert mask with this name"
    assert "report written to" in err and "(replaced the one there)" in err
    assert [im["name"] for im in json.loads(out.read_text())["images"]] == ["001"]


def test_pred_folder_is_a_flat_list_clashing_names_and_unpredicted_masks_are_said(wbc_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    write_mask(pred / "002.png", _truth(wbc_dir, 2), "wbc")
    write_mask(pred / "002.tif", _truth(wbc_dir, 2), "wbc")  # two predictions of 002: which one counts?
    out = tmp_path / "r.json"
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "002.png, 002.tif: predictions of one image name, none scored" in err
    assert "warning: 2 expert masks without a prediction" in err and "002.png, 003.png" in err
    report = json.loads(out.read_text())
    assert [im["name"] for im in report["images"]] == ["001"] and len(report["errors"]) == 1


def test_pred_says_which_options_do_nothing(wbc_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    for i in (1, 2, 3):
        write_mask(pred / f"{i:03d}.png", _truth(wbc_dir, i), "wbc")
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred)]) == 0
    assert "ignored with --pred" not in capsys.readouterr().err
    argv = ["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--tta", "on", "--model", "my-net"]
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "warning: --tta is for --images; ignored with --pred" in err
    assert "--model my-net names the predictions in the report; nothing runs" in err
    assert json.loads((tmp_path / "r.json").read_text())["model"] == "my-net"


def test_json_never_replaces_an_input_or_any_file_that_is_not_a_report(wbc_dir, tmp_path, capsys, clean_error):
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    precious = (wbc_dir / "001.png").read_bytes()
    for target in (wbc_dir / "001.png", pred / "001.png"):
        before = target.read_bytes()
        assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(target)]) == 2
        clean_error(capsys.readouterr().err, "exists and is not a bloodseg report")
        assert target.read_bytes() == before
    assert (wbc_dir / "001.png").read_bytes() == precious
    report = tmp_path / "r.json"
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(report)]) == 0
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(report)]) == 0  # a report


def test_a_run_that_scores_nothing_keeps_the_last_report_and_json_is_strict(wbc_dir, tmp_path, capsys):
    pred, wrong = tmp_path / "pred", tmp_path / "wrong"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    write_mask(wrong / "999.png", _truth(wbc_dir, 1), "wbc")
    out = tmp_path / "report.json"
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(pred), "--json", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text
    report = json.loads(text)
    assert report["n_images"] == 1
    assert main(["evaluate", "--masks", str(wbc_dir), "--pred", str(wrong), "--json", str(out)]) == 2
    assert out.read_text() == text


def test_expert_masks_are_not_scored_against_themselves(wbc_dir, tmp_path, capsys):
    expert = tmp_path / "expert"
    expert.mkdir()
    for p in wbc_dir.glob("*.png"):
        (expert / p.name).write_bytes(p.read_bytes())
    assert main(["evaluate", "--masks", str(expert), "--pred", str(expert)]) == 2
    err = capsys.readouterr().err
    assert "this is the expert mask itself" in err and "no image could be evaluated" in err


def test_an_image_named_twice_counts_once_and_two_images_of_one_name_not_at_all(
    wbc_dir, constant_models, tmp_path, capsys
):
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--json", str(tmp_path / "r.json")]
    assert main([*argv, "--images", str(wbc_dir), str(wbc_dir / "001.bmp")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_images"] == 3
    other = tmp_path / "other"
    other.mkdir()
    (other / "001.bmp").write_bytes((wbc_dir / "002.bmp").read_bytes())
    assert main([*argv, "--images", str(wbc_dir), str(other / "001.bmp")]) == 2
    assert "images of one name, one expert mask; none scored" in capsys.readouterr().err
    assert [im["name"] for im in json.loads((tmp_path / "r.json").read_text())["images"]] == ["002", "003"]


def test_schema_that_contradicts_the_model_is_refused(wbc_dir, constant_models, capsys, clean_error, monkeypatch):
    def no_work(*_a, **_k):
        raise AssertionError("refused only after setting up the predictor")

    monkeypatch.setattr("napari_bloodseg.cli.evaluate.make_predictor", no_work)
    argv = ["evaluate", "--masks", str(wbc_dir), "--images", str(wbc_dir), "--model", "all-cyto", "--schema", "rbc"]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "--schema rbc: all-cyto segments wbc")


def test_csv_report_matches_the_json_and_is_guarded_like_it(wbc_dir, tmp_path, capsys, clean_error):
    pred = tmp_path / "pred"
    write_mask(pred / "001.png", _truth(wbc_dir, 1), "wbc")
    write_mask(pred / "002.png", np.where(_truth(wbc_dir, 2) == 2, 1, _truth(wbc_dir, 2)), "wbc")
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["evaluate", "--masks", str(wbc_dir), "--pred", str(pred)]
    assert main([*args, "--json", str(js), "--csv", str(cs)]) == 0
    report = json.loads(js.read_text())
    rows = list(csv.DictReader(cs.open()))
    got = {(r["image"], r["class"]): float(r["dice"]) for r in rows}
    for img in report["images"]:
        for cls, s in img["per_class"].items():
            assert got[(img["name"], cls)] == s["dice"]
    for cls, s in report["per_class"].items():
        assert got[("mean", cls)] == s["dice"] and got[("sem", cls)] == pytest.approx(s["dice_sem"])
    assert main([*args, "--csv", str(cs)]) == 0  # an earlier CSV report is replaced
    assert "replaced the one there" in capsys.readouterr().err
    # never over an input or a JSON report; a JSON report is not written under a .csv name; one file, not two
    for bad, needle in (
        (["--csv", str(wbc_dir / "001.png")], "exists and is not a bloodseg report"),
        (["--csv", str(js)], "for JSON use --json"),  # a JSON report is not written over with CSV
        (["--json", str(tmp_path / "new.csv")], "for CSV use --csv"),
        (["--csv", str(tmp_path / "new.json")], "for JSON use --json"),
        (["--json", str(tmp_path / "x"), "--csv", str(tmp_path / "x")], "name one file"),
    ):
        before = {p: p.read_bytes() for p in (wbc_dir / "001.png", js, cs)}
        assert main([*args, *bad]) == 2
        clean_error(capsys.readouterr().err, needle)
        assert {p: p.read_bytes() for p in before} == before
    assert not any((tmp_path / n).exists() for n in ("new.csv", "new.json", "x"))


def test_a_mostly_transparent_expert_mask_is_scored_with_a_warning(wbc_dir, tmp_path, capsys):
    """A mask painted on a transparent layer (GIMP, Krita) has its background unlabelled: everything called
    cytoplasm scored a perfect cell Jaccard. The labelled pixels are still what is scored, but it is said."""
    from napari_bloodseg.schemas import IGNORE_INDEX

    truth = _truth(wbc_dir, 1)
    masks, pred = tmp_path / "masks", tmp_path / "pred"
    write_mask(masks / "001.png", np.where(truth == 0, IGNORE_INDEX, truth), "wbc")  # background transparent
    write_mask(masks / "002.png", _truth(wbc_dir, 2), "wbc")
    write_mask(pred / "001.png", np.ones_like(truth), "wbc")
    write_mask(pred / "002.png", _truth(wbc_dir, 2), "wbc")
    assert main(["evaluate", "--masks", str(masks), "--pred", str(pred)]) == 0
    err = capsys.readouterr().err
    assert "1 expert mask is mostly unlabelled" in err and "001 (" in err and "002" not in err.split("only:")[1]


@pytest.mark.parametrize(("spec", "needle"), [("", "empty model name"), (".", "'.' is a folder, not a model")])
def test_an_empty_model_name_is_one_plain_line(wbc_dir, capsys, clean_error, spec, needle):
    """``--model .`` said ``PosixPath('.') has an empty name``."""
    argv = ["evaluate", "--masks", str(wbc_dir), "--images", str(wbc_dir / "001.bmp"), "--model", spec]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, needle)


def test_a_shell_glob_over_a_dataset_folder_gets_the_right_advice(wbc_dir, constant_models, capsys, clean_error):
    """``--images d1/*`` names each expert mask beside its image: they were reported as 'images of one name' and
    the run ended 'no images or predictions found' although it found six files."""
    files = [str(p) for p in sorted(wbc_dir.iterdir())]
    assert main(["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", *files]) == 2
    clean_error(capsys.readouterr().err, f"{wbc_dir / '001.png'} is the expert mask of {wbc_dir / '001.bmp'}")


def test_a_run_whose_every_image_clashed_says_so(wbc_dir, constant_models, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "001.bmp").write_bytes((wbc_dir / "002.bmp").read_bytes())
    argv = ["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", str(wbc_dir / "001.bmp")]
    assert main([*argv, str(other / "001.bmp")]) == 2
    err = capsys.readouterr().err
    assert "images of one name" in err and "nothing left to score" in err and "no images" not in err


def test_predictions_given_as_expert_masks_are_said_to_be_so(wbc_dir, constant_models, tmp_path, capsys):
    """Predictions written where expert masks are looked for made evaluate report 1.0 as if it were accuracy."""
    assert main(["predict", "--model", "all-cyto", "--out", str(tmp_path / "p"), str(wbc_dir)]) == 0
    capsys.readouterr()
    argv = ["evaluate", "--masks", str(tmp_path / "p"), "--model", "all-cyto", "--images", str(wbc_dir)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "3 of the expert masks are a prediction of bloodseg (the file says so)" in err and "all-cyto" in err
    assert main(["evaluate", "--masks", str(wbc_dir), "--model", "all-cyto", "--images", str(wbc_dir)]) == 0
    assert "prediction of bloodseg" not in capsys.readouterr().err

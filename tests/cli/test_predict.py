import numpy as np
import pytest
import torch
from PIL import Image

from napari_bloodseg.cli.main import main
from napari_bloodseg.inference import Predictor
from napari_bloodseg.io import read_image
from napari_bloodseg.models import get_model


def _grey(path):
    return np.asarray(Image.open(path))


def test_predict_writes_one_png_per_image_in_schema_grey(wbc_dir, constant_models, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir)]) == 0
    # the folder holds NNN.bmp images and NNN.png masks: only the images are segmented
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png"]
    for i, shape in enumerate([(96, 96), (88, 116), (120, 120)], start=1):
        mask = _grey(out / f"{i:03d}.png")
        assert mask.shape == shape and mask.dtype == np.uint8
        assert (mask == 128).all()  # cytoplasm is 128 in the WBC convention
    err = capsys.readouterr().err
    assert "all-cyto (wbc)" in err and "wrote 3 masks" in err


def test_predict_rbc_model_writes_0_255(rbc_dir, constant_models, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", "--model", "all-cell", "--out", str(out), str(rbc_dir / "field-0.jpg")]) == 0
    assert (_grey(out / "field-0.png") == 255).all()


def test_predict_untrained_model_matches_library(wbc_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", "--model", "segnet", "--tile-size", "64", "--out", str(out), str(wbc_dir)]) == 0
    assert "bloodseg: warning: segnet is untrained" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        model, card = get_model("segnet")
    predictor = Predictor(model, card, device="cpu", tile_size=64)
    for i in (1, 2, 3):
        mask = _grey(out / f"{i:03d}.png")
        assert set(np.unique(mask).tolist()) <= {0, 128, 255}
        labels = predictor.predict(read_image(wbc_dir / f"{i:03d}.bmp", as_float=False)).labels
        np.testing.assert_array_equal(mask, np.array([0, 128, 255], np.uint8)[labels])


def test_predict_scale_keeps_original_size(wbc_dir, constant_models, tmp_path):
    out = tmp_path / "out"
    args = ["predict", "--model", "all-cyto", "--scale", "0.5", "--out", str(out), str(wbc_dir / "002.bmp")]
    assert main(args) == 0
    assert _grey(out / "002.png").shape == (88, 116)


def test_predict_never_overwrites_silently(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    from tests.cli.conftest import save_constant_model

    save_constant_model(constant_models, "all-bg", "wbc", 0)
    out = tmp_path / "out"
    assert main(["predict", "--model", "all-bg", "--out", str(out), str(wbc_dir / "002.bmp")]) == 0
    earlier = (out / "002.png").read_bytes()
    assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir)]) == 2
    clean_error(capsys.readouterr().err, "002.png exists (use --overwrite to replace it)")
    assert (out / "002.png").read_bytes() == earlier
    assert (_grey(out / "001.png") == 128).all() and (_grey(out / "003.png") == 128).all()  # the rest was done
    assert main(["predict", "--model", "all-cyto", "--overwrite", "--out", str(out), str(wbc_dir)]) == 0
    assert (_grey(out / "002.png") == 128).all()


def test_overwrite_replaces_only_masks_this_tool_predicted(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    """``--overwrite`` refreshes earlier predictions; an expert mask, a correction exported by this tool or a
    micrograph already in --out (the same image name predicted from another folder) is never replaced, and the
    rest of the batch is still written."""
    out = tmp_path / "victim"
    out.mkdir()
    (out / "001.png").write_bytes((wbc_dir / "001.png").read_bytes())  # a correction exported by this tool
    (out / "002.png").write_bytes(_grey_png(wbc_dir / "002.png"))  # an expert's mask, no marks
    Image.new("RGB", (8, 8), (200, 30, 90)).save(out / "003.png")  # a micrograph saved as PNG
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["predict", "--model", "all-cyto", "--overwrite", "--out", str(out), str(wbc_dir)]
    assert main(argv) == 2
    needles = [f"{n}.png exists and is not a prediction of bloodseg" for n in ("001", "002", "003")]
    clean_error(capsys.readouterr().err, *needles)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "003.png").unlink()
    assert main(argv) == 2  # 001 and 002 still refused, 003 written
    assert (_grey(out / "003.png") == 128).all() and (out / "002.png").read_bytes() == before["002.png"]


def _grey_png(path) -> bytes:
    """The file's grey pixels in a plain PNG, as an expert's tool writes them (no bloodseg marks)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(path))).save(buf, format="PNG")
    return buf.getvalue()


def test_a_file_in_out_is_kept_and_the_rest_written_without_overwrite(wbc_dir, constant_models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "002.png").write_bytes(b"precious")
    assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir)]) == 2
    assert "002.png exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert (out / "002.png").read_bytes() == b"precious"
    assert (_grey(out / "001.png") == 128).all() and (_grey(out / "003.png") == 128).all()


def test_predict_never_writes_over_its_inputs_even_with_overwrite(wbc_dir, constant_models, capsys, clean_error):
    before = {p.name: p.read_bytes() for p in wbc_dir.iterdir()}
    assert main(["predict", "--model", "all-cyto", "--overwrite", "--out", str(wbc_dir), str(wbc_dir)]) == 2
    clean_error(capsys.readouterr().err, "001.png is the expert mask of 001.bmp")
    single = ["predict", "--model", "all-cyto", "--overwrite", "--out", str(wbc_dir), str(wbc_dir / "002.bmp")]
    assert main(single) == 2
    clean_error(capsys.readouterr().err, "002.png is the expert mask of 002.bmp")
    grey = wbc_dir.parent / "grey"
    grey.mkdir()
    (grey / "cell.png").write_bytes((wbc_dir / "001.png").read_bytes())  # an image that is itself a PNG
    assert main(["predict", "--model", "all-cyto", "--overwrite", "--out", str(grey), str(grey)]) == 2
    clean_error(capsys.readouterr().err, "cell.png is an input image")
    assert {p.name: p.read_bytes() for p in wbc_dir.iterdir()} == before


def test_the_images_folder_of_a_dataset_never_writes_over_its_masks_folder(
    wbc_dir, constant_models, tmp_path, capsys, clean_error, monkeypatch
):
    """``predict lay/images --out lay/masks --overwrite``: the expert masks sit in the images folder's sibling."""
    lay = tmp_path / "lay"
    (lay / "images").mkdir(parents=True)
    (lay / "masks").mkdir()
    for i in (1, 2):
        (lay / "images" / f"00{i}.bmp").write_bytes((wbc_dir / f"00{i}.bmp").read_bytes())
        (lay / "masks" / f"00{i}.png").write_bytes((wbc_dir / f"00{i}.png").read_bytes())
    before = {p.name: p.read_bytes() for p in (lay / "masks").iterdir()}
    argv = ["predict", "--model", "all-cyto", "--overwrite", "--out", str(lay / "masks"), str(lay / "images")]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "001.png is the expert mask of 001.bmp")
    monkeypatch.chdir(lay / "images")  # from inside: "." and bare file names have no folder name to look at
    for inputs in (["."], ["001.bmp"]):
        assert main(["predict", "--model", "all-cyto", "--overwrite", "--out", "../masks", *inputs]) == 2
        clean_error(capsys.readouterr().err, "001.png is the expert mask of 001.bmp")
    assert {p.name: p.read_bytes() for p in (lay / "masks").iterdir()} == before


def test_an_image_named_twice_is_segmented_once(wbc_dir, constant_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(wbc_dir.parent)
    out = tmp_path / "out"
    argv = ["predict", "--model", "all-cyto", "--out", str(out), "wbc", "wbc/001.bmp", str(wbc_dir / "002.bmp")]
    assert main(argv) == 0
    assert "exists" not in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png"]


def test_two_images_with_one_stem_are_refused_before_any_work(wbc_dir, rbc_dir, constant_models, tmp_path, capsys):
    (rbc_dir / "001.jpg").write_bytes((rbc_dir / "field-0.jpg").read_bytes())
    out = tmp_path / "out"
    args = ["predict", "--model", "all-cyto", "--overwrite", "--out", str(out), str(wbc_dir / "001.bmp")]
    assert main([*args, str(rbc_dir / "001.jpg")]) == 2
    err = capsys.readouterr().err
    assert "001.bmp and " in err and "001.jpg would both be written to" in err and "Traceback" not in err
    assert not out.exists()


def test_an_unusable_out_is_one_error_before_the_model_runs(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "masks"):
        assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir)]) == 2
        clean_error(capsys.readouterr().err, "is a file, not a folder")
    assert afile.read_text() == "x"


def test_masks_beside_the_images_are_said_to_be_skipped(wbc_dir, constant_models, tmp_path, capsys):
    assert main(["predict", "--model", "all-cyto", "--out", str(tmp_path / "out"), str(wbc_dir)]) == 0
    assert "3 file(s) taken as the expert masks of the images and not segmented (e.g. 001.png)" in (
        capsys.readouterr().err
    )


def test_bad_file_in_batch(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    bad = tmp_path / "broken.bmp"
    bad.write_bytes(b"BM not really")
    out = tmp_path / "out"
    args = ["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir / "001.bmp"), str(bad)]
    args.append(str(tmp_path / "missing.png"))
    assert main(args) == 2
    clean_error(capsys.readouterr().err, "broken.bmp: cannot read image", "missing.png: no such file")
    assert sorted(p.name for p in out.iterdir()) == ["001.png"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--model", "all-cyto", "--cell-size", "40"], "no cell_size_px"),
        (["--model", "all-cyto", "--scale", "-1"], "--scale must be positive"),
        (["--model", "all-cyto", "--scale", "0"], "--scale must be positive, not 0.0"),
        (["--model", "all-cyto", "--scale", "nan"], "--scale must be positive, not nan"),
        (["--model", "all-cyto", "--tile-size", "8"], "tile size must be 0 (whole image) or at least 64 px, not 8"),
        (["--model", "all-cyto", "--tile-size", "-5"], "tile size must be 0"),
        (["--model", "all-cyto", "--overlap", "-1"], "tile overlap must be 0 or more, not -1"),
        (["--model", "all-cyto", "--batch-size", "0"], "batch size must be at least 1"),
    ],
)
def test_usage_errors(wbc_dir, constant_models, tmp_path, capsys, clean_error, argv, needle):
    out = tmp_path / "out"
    assert main(["predict", *argv, "--out", str(out), str(wbc_dir)]) == 2
    clean_error(capsys.readouterr().err, needle)
    assert not out.exists()


@pytest.mark.parametrize("bad", ["drop", "1", "0", "-0.2"])
def test_bad_edge_cells_value_is_an_argparse_error(wbc_dir, tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", "unet", "--edge-cells", bad, "--out", str(tmp_path / "o"), str(wbc_dir)])
    assert exc.value.code == 2 and "expected auto, keep or a fraction" in capsys.readouterr().err


def test_edge_cells_option_reaches_the_predictor(wbc_dir, constant_models, tmp_path, monkeypatch):
    from napari_bloodseg.inference import Predictor

    seen = []
    real_init = Predictor.__init__

    def spy(self, *a, **k):
        seen.append(k.get("edge_cells"))
        real_init(self, *a, **k)

    monkeypatch.setattr(Predictor, "__init__", spy)
    assert (
        main(["predict", "--model", "all-cyto", "--edge-cells", "0.3", "--out", str(tmp_path / "o"), str(wbc_dir)]) == 0
    )
    assert main(["predict", "--model", "all-cyto", "--out", str(tmp_path / "p"), str(wbc_dir)]) == 0
    assert seen == [0.3, "auto"]


def test_empty_folder(tmp_path, capsys, clean_error):
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--model", "unet", "--out", str(tmp_path / "o"), str(tmp_path / "empty")]) == 2
    clean_error(capsys.readouterr().err, "no images found")


def test_absent_device(wbc_dir, constant_models, tmp_path, capsys, clean_error, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["predict", "--model", "all-cyto", "--device", "cuda", "--out", str(tmp_path), str(wbc_dir)]) == 2
    # the core says what is missing; the command line's advice names its own option
    clean_error(capsys.readouterr().err, "no CUDA GPU (use --device auto or cpu)")


@pytest.mark.parametrize("scale", ["1", "0.6"])
def test_stream_writes_the_same_mask_as_a_tiff(rbc_dir, tmp_model_dir, live_model, tmp_path, scale):
    import tifffile

    from napari_bloodseg.models import ModelCard, save_model

    field = read_image(rbc_dir / "field-0.jpg", as_float=False)
    tifffile.imwrite(tmp_path / "field.tif", field)
    model = live_model("unet", 2, field.copy())  # labels vary across the field (read_image arrays are read-only)
    save_model(model, ModelCard(name="live", config=model.config, schema="rbc"), tmp_model_dir / "live")
    common = ["predict", "--model", "live", "--tile-size", "64", "--scale", scale, "--out"]
    assert main([*common, str(tmp_path / "png"), str(tmp_path / "field.tif")]) == 0
    assert main([*common, str(tmp_path / "tif"), "--stream", str(tmp_path / "field.tif")]) == 0
    whole, streamed = _grey(tmp_path / "png/field.png"), tifffile.imread(tmp_path / "tif/field.tif")
    assert set(np.unique(whole)) == {0, 255}  # both classes: the comparison means something
    np.testing.assert_array_equal(streamed, whole)
    assert sorted(p.name for p in (tmp_path / "tif").iterdir()) == ["field.tif"]  # no temporary file left
    assert (
        main([*common, str(tmp_path / "spng"), "--stream", "--stream-format", "png", str(tmp_path / "field.tif")]) == 0
    )
    np.testing.assert_array_equal(_grey(tmp_path / "spng/field.png"), whole)
    assert sorted(p.name for p in (tmp_path / "spng").iterdir()) == ["field.png"]  # the label file is gone


def test_a_failed_streamed_png_leaves_nothing(rbc_dir, tmp_path, monkeypatch, capsys, clean_error):
    import tifffile

    import napari_bloodseg.io.lazy as lazy

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    tifffile.imwrite(tmp_path / "big.tif", read_image(rbc_dir / "field-0.jpg", as_float=False))
    monkeypatch.setattr(lazy, "write_mask_banded", full_disk)
    out = tmp_path / "o"
    args = ["predict", "--model", "segnet:rbc", "--stream", "--stream-format", "png", "--out", str(out)]
    assert main([*args, str(tmp_path / "big.tif")]) == 2
    clean_error(capsys.readouterr().err, "No space left on device")
    assert list(out.iterdir()) == []  # neither a mask nor the temporary label file


def test_big_images_stream_without_asking(rbc_dir, tmp_path, monkeypatch):
    import tifffile

    from napari_bloodseg.cli import predict as predict_cli

    tifffile.imwrite(tmp_path / "big.tif", read_image(rbc_dir / "field-0.jpg", as_float=False))
    monkeypatch.setattr(predict_cli, "STREAM_MIN_PIXELS", 160 * 200)
    assert main(["predict", "--model", "segnet:rbc", "--out", str(tmp_path / "o"), str(tmp_path / "big.tif")]) == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["big.tif"]
    monkeypatch.setattr(predict_cli, "STREAM_MIN_PIXELS", 160 * 200 + 1)
    assert main(["predict", "--model", "segnet:rbc", "--out", str(tmp_path / "p"), str(tmp_path / "big.tif")]) == 0
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["big.png"]


@pytest.mark.parametrize(("flag", "needle"), [([], "cannot read image"), (["--stream"], "cannot open lazily")])
def test_broken_tiff_is_one_clean_error(wbc_dir, constant_models, tmp_path, capsys, clean_error, flag, needle):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a TIFF at all")
    out = tmp_path / "out"
    assert main(["predict", "--model", "all-cyto", *flag, "--out", str(out), str(wbc_dir / "001.bmp"), str(bad)]) == 2
    clean_error(capsys.readouterr().err, f"broken.tif: {needle}")
    assert sorted(p.name for p in out.iterdir()) == ["001.png"]


def _field_and_blank(folder):
    from napari_bloodseg.data import synthetic_rbc

    folder.mkdir()
    Image.fromarray(synthetic_rbc((300, 400), seed=2)[0]).save(folder / "field.png")  # ~41 px red cells
    Image.fromarray(np.full((200, 200, 3), 240, np.uint8)).save(folder / "blank.png")  # no cells at all
    return folder


def test_cell_size_auto_measures_the_batch(tmp_path, capsys):
    """rbc-deconvnet knows ~102 px red cells; the field's ~41 px cells set the run's scale (the blank image has
    none to measure and is skipped in the measure, then segmented like the rest)."""
    from napari_bloodseg.inference.cell_size import estimate_cell_size

    src = _field_and_blank(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["predict", "--model", "rbc-deconvnet", "--cell-size", "auto", "--out", str(out), str(src)]) == 0
    err = capsys.readouterr().err
    model, card = get_model("rbc-deconvnet")
    predictor = Predictor(model, card)
    image = read_image(src / "field.png", as_float=False)
    est = estimate_cell_size(predictor, image)
    assert 35 < est.diameter_px < 47 and est.scale > 2  # the mask's cells are ~41 px across
    assert f"cells ~{est.diameter_px:.0f} px across (median of 1 image(s)): scale {est.scale:.2f}" in err
    expected = np.array([0, 255], np.uint8)[predictor.predict(image, scale=est.scale).labels]
    np.testing.assert_array_equal(_grey(out / "field.png"), expected)
    assert sorted(p.name for p in out.iterdir()) == ["blank.png", "field.png"]


def test_cell_size_auto_with_no_cells_to_measure_stops_before_any_work(tmp_path, capsys, clean_error):
    src = _field_and_blank(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["predict", "--model", "rbc-deconvnet", "--cell-size", "auto", "--out", str(out), str(src / "blank.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    clean_error(err, "--cell-size auto: no cells found at any scale")
    assert "give --cell-size PX or --scale instead" in err
    assert not out.exists()


def test_cell_size_auto_needs_a_model_that_knows_its_cell_size(wbc_dir, constant_models, tmp_path, capsys, clean_error):
    out = tmp_path / "out"
    assert main(["predict", "--model", "all-cyto", "--cell-size", "auto", "--out", str(out), str(wbc_dir)]) == 2
    clean_error(capsys.readouterr().err, "no cell_size_px")
    assert not out.exists()


def test_bad_cell_size_is_an_argparse_error(wbc_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", "unet", "--cell-size", "big", "--out", str(tmp_path / "o"), str(wbc_dir)])
    assert exc.value.code == 2 and "expected a diameter in pixels or auto" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("scale", "needle"), [("0.04", "shrinks the images 25 times"), ("20", "enlarges the images 20")]
)
def test_an_extreme_scale_is_questioned(wbc_dir, constant_models, tmp_path, capsys, scale, needle):
    """--scale 0.04 (for 0.4) turned a crop into a few pixels and an empty mask, without a word."""
    argv = ["predict", "--model", "all-cyto", "--scale", scale, "--out", str(tmp_path / "o"), str(wbc_dir / "001.bmp")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"warning: --scale {scale} {needle}" in err and "check the value" in err


def test_an_ordinary_scale_is_not_questioned(wbc_dir, constant_models, tmp_path, capsys):
    argv = ["predict", "--model", "all-cyto", "--scale", "0.4", "--out", str(tmp_path / "o"), str(wbc_dir / "001.bmp")]
    assert main(argv) == 0
    assert "check the value" not in capsys.readouterr().err


def test_a_full_disk_while_streaming_names_the_image_and_leaves_nothing(
    wbc_dir, constant_models, tmp_path, capsys, clean_error, monkeypatch
):
    import errno
    import os

    import tifffile

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")
    tifffile.imwrite(tmp_path / "slide.tif", np.asarray(Image.open(wbc_dir / "001.bmp")))

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "out"
    argv = ["predict", "--model", "all-cyto", "--stream", "--out", str(out), str(tmp_path / "slide.tif")]
    assert main(argv) == 2
    clean_error(capsys.readouterr().err, "slide.tif -> ")
    assert not out.exists() or list(out.iterdir()) == []


def test_an_out_named_like_a_mask_file_is_refused_not_made_a_folder(
    wbc_dir, constant_models, tmp_path, capsys, clean_error
):
    out = tmp_path / "result.png"
    assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir / "001.bmp")]) == 2
    clean_error(capsys.readouterr().err, "--out is a folder (each mask is named after its image")
    assert not out.exists()
    out.mkdir()  # a folder that is named so already is the user's choice
    assert main(["predict", "--model", "all-cyto", "--out", str(out), str(wbc_dir / "001.bmp")]) == 0
    assert (out / "001.png").is_file()


def test_npy_and_zarr_images_are_predicted_named_or_in_a_folder(constant_models, tmp_path, capsys):
    """--help and the docs promise .npy/.zarr input: a .zarr folder was searched for images ("no images found"),
    a small .npy went to Pillow, and a folder's arrays were skipped without a word."""
    zarr = pytest.importorskip("zarr")
    rgb = np.full((40, 60, 3), 200, np.uint8)
    src = tmp_path / "arrays"
    src.mkdir()
    np.save(src / "a.npy", rgb)
    zarr.open_array(str(src / "b.zarr"), mode="w", shape=rgb.shape, dtype=rgb.dtype)[:] = rgb
    for argv, out in (([str(src / "a.npy"), str(src / "b.zarr")], "named"), ([str(src)], "folder")):
        assert main(["predict", "--model", "all-cyto", "--out", str(tmp_path / out), *argv]) == 0
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["a.png", "b.png"]
        assert (_grey(tmp_path / out / "a.png") == 128).all()  # everything cytoplasm, at the array's size
    assert main(["predict", "--model", "all-cyto", "--stream", "--out", str(tmp_path / "s"), str(src)]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["a.tif", "b.tif"]


def test_out_folders_that_would_pass_predictions_off_as_expert_masks_are_refused(
    wbc_dir, constant_models, tmp_path, capsys, clean_error
):
    """Each of these ran, and evaluate then scored the model against its own predictions (1.0 everywhere)."""
    import shutil

    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "masks").mkdir()
    for i in (1, 2):
        shutil.copy(wbc_dir / f"00{i}.bmp", ds / "images")
        shutil.copy(wbc_dir / f"00{i}.png", ds / "masks" / f"00{i}-mask.png")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    run = ["predict", "--model", "all-cyto", "--out"]
    # a second masks folder beside masks/
    assert main([*run, str(ds / "labels"), str(ds / "images")]) == 2
    clean_error(capsys.readouterr().err, "already has masks/; a second masks folder beside it")
    # into masks/, existing or not: the predictions would be the dataset's expert masks
    assert main([*run, str(ds / "masks"), str(ds / "images")]) == 2
    clean_error(capsys.readouterr().err, "predictions there would be read as the expert masks of")
    (ds / "masks").rename(ds / "old")
    assert main([*run, str(ds / "masks"), str(ds / "images")]) == 2
    clean_error(capsys.readouterr().err, "predictions there would be read as the expert masks of")
    (ds / "old").rename(ds / "masks")
    # beside an expert's tagged masks in a folder of masks: 001.png would shadow 001-mask.png
    shutil.copytree(ds / "masks", tmp_path / "expert")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main([*run, str(tmp_path / "expert"), str(ds / "images")]) == 2
    clean_error(capsys.readouterr().err, "001.png would sit beside 001-mask.png")
    # into the images' own folder: a.png beside a.bmp is read as its expert mask
    assert main([*run, str(ds / "images"), str(ds / "images")]) == 2
    clean_error(capsys.readouterr().err, "001.png would sit beside 001.bmp: it would be taken as the expert mask")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_shell_glob_over_a_dataset_folder_gets_the_right_advice(wbc_dir, constant_models, tmp_path, capsys):
    """``predict d1/*`` names each expert mask beside its image: 'predict them into separate folders' would have
    segmented the masks."""
    argv = ["predict", "--model", "all-cyto", "--out", str(tmp_path / "out"), *map(str, sorted(wbc_dir.iterdir()))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{wbc_dir / '001.png'} is the expert mask of {wbc_dir / '001.bmp'}: pass the folder" in err
    assert "*.bmp" in err and "separate --out" not in err


def test_a_shell_glob_over_tagged_masks_and_two_outputs_of_one_name_are_refused(
    wbc_dir, constant_models, tmp_path, capsys, clean_error
):
    """``tg/*`` with ``001.bmp`` + ``001_mask.png``: the masks were segmented as images, next to their images'
    masks (001.png, 001_mask.png), a folder the next run refused."""
    import shutil

    tg = tmp_path / "tg"
    tg.mkdir()
    for i in (1, 2):
        shutil.copy(wbc_dir / f"00{i}.bmp", tg)
        shutil.copy(wbc_dir / f"00{i}.png", tg / f"00{i}_mask.png")
    run = ["predict", "--model", "all-cyto", "--out", str(tmp_path / "out")]
    assert main([*run, *map(str, sorted(tg.iterdir()))]) == 2
    clean_error(capsys.readouterr().err, f"{tg / '001_mask.png'} is the expert mask of {tg / '001.bmp'}")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(wbc_dir / "003.bmp", other / "001_scan.png")  # key 001_scan: no clash
    shutil.copy(wbc_dir / "003.bmp", other / "001_gt.bmp")  # key 001, as tg/001.bmp
    assert main([*run, str(tg / "001.bmp"), str(other / "001_gt.bmp")]) == 2
    clean_error(capsys.readouterr().err, "are one image name, one mask folder: 001.png, 001_gt.png")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stream", [False, True])
def test_a_tiffs_left_out_pages_are_one_bloodseg_warning_line(constant_models, tmp_path, capsys, stream):
    """The library's warning that a TIFF's further pages are not segmented came in Python's file:line format."""
    import tifffile

    rgb = np.full((40, 50, 3), 200, np.uint8)
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:
        tw.write(rgb)
        tw.write(rgb[:10, :12])
    argv = ["predict", str(tmp_path / "two.tif"), "--model", "all-cyto", "--out", str(tmp_path / "out")]
    assert main(argv + (["--stream"] if stream else [])) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "left out" in ln]
    assert len(err) == 1 and err[0].startswith(f"bloodseg: warning: {tmp_path / 'two.tif'}: read its first image")

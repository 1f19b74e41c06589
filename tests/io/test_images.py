import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_bloodseg.io import IMAGE_SUFFIXES, ImageReadError, list_images, read_image
from napari_bloodseg.io.images import to_rgb_uint8


@pytest.fixture
def rgb8(rng):
    return rng.integers(0, 256, size=(21, 34, 3), dtype=np.uint8)


def _check_both(path, expected_uint8, atol=0):
    u8 = read_image(path, as_float=False)
    assert u8.dtype == np.uint8 and u8.shape == expected_uint8.shape
    np.testing.assert_allclose(u8.astype(int), expected_uint8.astype(int), atol=atol)
    f = read_image(path)
    assert f.dtype == np.float32 and f.shape == expected_uint8.shape
    assert 0.0 <= f.min() and f.max() <= 1.0
    np.testing.assert_allclose(f, u8 / 255.0, atol=1e-6)


@pytest.mark.parametrize("suffix", [".bmp", ".png", ".tif"])
def test_lossless_rgb8_roundtrip(tmp_path, rgb8, suffix):
    path = tmp_path / f"img{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb8)
    else:
        Image.fromarray(rgb8).save(path)
    _check_both(path, rgb8)


def test_jpeg_rgb(tmp_path):
    # smooth content so the JPEG error stays small
    yy, xx = np.mgrid[0:40, 0:60]
    rgb = np.stack([yy * 5, xx * 4, np.full_like(xx, 90)], -1).astype(np.uint8)
    path = tmp_path / "field.JPG"  # upper-case suffix, as microscope software writes
    Image.fromarray(rgb).save(path, format="JPEG", quality=95)
    _check_both(path, rgb, atol=8)


def test_grey8_png_becomes_rgb(tmp_path, rng):
    grey = rng.integers(0, 256, size=(15, 16), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    _check_both(tmp_path / "g.png", np.repeat(grey[..., None], 3, -1))


def test_rgba_png_drops_alpha(tmp_path, rgb8):
    rgba = np.concatenate([rgb8, np.zeros(rgb8.shape[:2] + (1,), np.uint8)], -1)  # fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    _check_both(tmp_path / "a.png", rgb8)


def test_palette_png(tmp_path):
    im = Image.new("P", (4, 3))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putpixel((1, 1), 1)
    im.putpixel((2, 2), 2)
    im.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png", as_float=False)
    assert out.shape == (3, 4, 3)
    assert out[1, 1].tolist() == [255, 0, 0] and out[2, 2].tolist() == [0, 0, 255] and out[0, 0].tolist() == [0, 0, 0]


# 16-bit: full scale 65535 maps to 255; 257 * k maps to exactly k (65535 / 255 = 257)
_U16 = np.array([[0, 257, 257 * 128], [257 * 200, 65535, 257 * 17]], np.uint16)
_U16_AS_U8 = np.array([[0, 1, 128], [200, 255, 17]], np.uint8)


def test_grey16_png(tmp_path):
    Image.fromarray(_U16).save(tmp_path / "g16.png")  # PIL writes a 16-bit greyscale PNG
    _check_both(tmp_path / "g16.png", np.repeat(_U16_AS_U8[..., None], 3, -1))


def test_rgb16_tif(tmp_path):
    rgb16 = np.stack([_U16, _U16[::-1], np.full_like(_U16, 65535)], -1)
    tifffile.imwrite(tmp_path / "c16.tif", rgb16)
    expected = np.stack([_U16_AS_U8, _U16_AS_U8[::-1], np.full_like(_U16_AS_U8, 255)], -1)
    _check_both(tmp_path / "c16.tif", expected)


def test_rgba16_tif_and_channel_first(tmp_path):
    u16, u8 = np.tile(_U16, (3, 3)), np.tile(_U16_AS_U8, (3, 3))  # 6x9: no side that looks like channels
    rgba16 = np.stack([u16, u16, u16, np.zeros_like(u16)], 0)  # (4, H, W): planar TIFF layout
    tifffile.imwrite(tmp_path / "planar.tiff", rgba16, photometric="rgb", planarconfig="separate")
    _check_both(tmp_path / "planar.tiff", np.repeat(u8[..., None], 3, -1))


def test_float_tif_in_unit_range(tmp_path):
    f = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f)
    # 0.5 * 255 + 0.5 = 128.0 -> 128; 0.25 * 255 + 0.5 = 64.25 -> 64
    _check_both(tmp_path / "f.tif", np.repeat(np.array([[0, 128], [255, 64]], np.uint8)[..., None], 3, -1))


def test_float_tif_with_nan_gaps_scales_by_the_finite_pixels(tmp_path):
    # NaN marks no data (outside a stitched scan): black, and it must not decide the range (here 0-255 floats)
    f = np.array([[np.nan, 51.0], [255.0, -np.inf]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f)
    _check_both(tmp_path / "f.tif", np.repeat(np.array([[0, 51], [255, 0]], np.uint8)[..., None], 3, -1))
    tifffile.imwrite(tmp_path / "nan.tif", np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ImageReadError, match="no finite pixel"):
        read_image(tmp_path / "nan.tif")


def test_to_rgb_uint8_small_16bit_values_are_not_stretched():
    # a uint16 array that only holds 8-bit values is taken as 8-bit data, not scaled by 65535
    a = np.array([[0, 100], [200, 255]], np.uint16)
    np.testing.assert_array_equal(to_rgb_uint8(a)[..., 0], a.astype(np.uint8))


@pytest.mark.parametrize(("bits", "peak"), [(10, 700), (12, 4095), (12, 3000), (14, 9000), (16, 20000)])
def test_camera_bit_depths_in_16bit_files_use_their_own_range(tmp_path, bits, peak):
    """A 12-bit camera's 0-4095 stored in a 16-bit TIFF was divided by 65535: 16x too dark, no nucleus found."""
    top = 2**bits - 1
    a = np.array([[0, top // 2], [peak, 300]], np.uint16)
    tifffile.imwrite(tmp_path / "cam.tif", a)
    expected = (a.astype(np.float64) * 255 / top + 0.5).astype(np.uint8)
    _check_both(tmp_path / "cam.tif", np.repeat(expected[..., None], 3, -1))


def test_to_rgb_uint8_bool_and_grey_alpha():
    assert to_rgb_uint8(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 0] = 77
    la[..., 1] = 255
    np.testing.assert_array_equal(to_rgb_uint8(la), np.full((2, 2, 3), 77, np.uint8))


def test_bad_layout_is_refused():
    with pytest.raises(ImageReadError, match=r"expected a 2-D grey or RGB\(A\) image, got shape \(2, 5, 6, 7\)"):
        to_rgb_uint8(np.zeros((2, 5, 6, 7), np.uint8))


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_a_folder_or_an_empty_file_says_so(tmp_path):
    # a folder named 002.png was "no such file" (it exists), an empty file Pillow's "cannot identify image file"
    (tmp_path / "002.png").mkdir()
    (tmp_path / "003.bmp").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"002\.png: a folder, not a file$"):
        read_image(tmp_path / "002.png")
    with pytest.raises(ImageReadError, match=r"003\.bmp: empty file \(0 bytes\)$"):
        read_image(tmp_path / "003.bmp")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.bmp"
    bad.write_bytes(b"BM this is not a bitmap")
    with pytest.raises(ImageReadError, match=r"bad\.bmp: cannot read image"):
        read_image(bad)


def test_list_images_sorted_filtered_deduplicated(tmp_path):
    for name in ["b.png", "a.BMP", "c.tif", "notes.txt", "d.jpeg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an image
    out = list_images([tmp_path, tmp_path / "b.png"])
    assert [p.name for p in out] == ["a.BMP", "b.png", "c.tif", "d.jpeg"]
    assert {".bmp", ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff"} == set(IMAGE_SUFFIXES)


def test_real_rbc_field(shared_data):
    path = sorted((shared_data / "rbc").glob("*.jpg"))[0]
    image = read_image(path, as_float=False)
    assert image.dtype == np.uint8 and image.shape in {(1200, 1600, 3), (1383, 1944, 3)}  # the two field sizes
    assert image.std() > 5  # a real smear, not a blank frame


def test_real_dataset1_bmp(shared_data):
    image = read_image(shared_data / "wbc" / "dataset1" / "001.bmp")
    assert image.shape == (120, 120, 3) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1


def test_exif_orientation_is_applied_as_viewers_show_it(tmp_path, rgb8):
    im = Image.fromarray(rgb8)  # 21 x 34 as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "cam.png", exif=exif)
    out = read_image(tmp_path / "cam.png", as_float=False)
    assert out.shape == (34, 21, 3)
    np.testing.assert_array_equal(out, np.rot90(rgb8, k=-1))


def test_a_broken_exif_block_is_read_and_its_warning_names_the_file(tmp_path, rgb8):
    """Pillow's "Tag data larger than file" names no file: in a batch of hundreds nobody could tell which."""
    import io
    import struct

    # a little-endian TIFF block with one entry, ImageDescription (270): 1000 bytes said, none there
    block = b"II*\x00" + struct.pack("<IHHHIII", 8, 1, 270, 2, 1000, 26, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", exif=b"Exif\x00\x00" + block)
    (tmp_path / "cam.jpg").write_bytes(buf.getvalue())
    with pytest.warns(UserWarning) as caught:
        out = read_image(tmp_path / "cam.jpg", as_float=False)
    assert out.shape == rgb8.shape
    assert caught and all(str(w.message).startswith(f"{tmp_path / 'cam.jpg'}: ") for w in caught)
    assert any("larger than file" in str(w.message) for w in caught)


def test_reading_in_worker_threads_leaves_the_warnings_machinery_as_it_was(tmp_path, rgb8):
    """catch_warnings swaps process-wide state: two threads inside it at once left a recorder installed for good,
    and every later warning (napari's notifications too) went nowhere."""
    import threading
    import warnings

    Image.fromarray(rgb8).save(tmp_path / "a.jpg")
    shown, filters = warnings.showwarning, list(warnings.filters)
    threads = [threading.Thread(target=lambda: [read_image(tmp_path / "a.jpg") for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        read_image(tmp_path / "a.jpg")
    for t in threads:
        t.join()
    assert warnings.showwarning is shown and warnings.filters == filters


def test_float_data_slightly_over_one_is_read_as_0_to_1(tmp_path, rng):
    a = rng.random((16, 16, 3), dtype=np.float32) * 0.8
    a[0, 0, 0] = 1.02  # one overshooting pixel made the whole image 0..255 data, i.e. black
    tifffile.imwrite(tmp_path / "f.tif", a)
    out = read_image(tmp_path / "f.tif", as_float=False)
    assert out[0, 0, 0] == 255 and abs(int(out[5, 5, 1]) - round(a[5, 5, 1] * 255)) <= 1


def _png16(path, rgb16):
    """A 48-bit PNG, written by hand (Pillow cannot write one): IHDR bit depth 16, colour type 2, no filter."""
    import struct
    import zlib

    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_16bit_colour_png_is_read_at_full_depth(tmp_path, rgb8):
    """Pillow keeps only the high bytes: a 12-bit camera's PNG was near black (then refused), a dim one coarse."""

    def scaled(a, top):
        return (a.astype(np.float32) * (255 / top) + 0.5).astype(np.uint8)

    cam = rgb8.astype(np.uint16) * 16  # 0..4080: a 12-bit camera's range, scaled as a 12-bit TIFF is
    _png16(tmp_path / "cam12.png", cam)
    np.testing.assert_array_equal(read_image(tmp_path / "cam12.png", as_float=False), scaled(cam, 4095))
    _png16(tmp_path / "full.png", rgb8.astype(np.uint16) * 257)  # full range
    np.testing.assert_array_equal(read_image(tmp_path / "full.png", as_float=False), rgb8)
    dim = rgb8.astype(np.uint16) * 257 // 3  # a dim full-depth image: its own 16-bit scale, every level kept
    _png16(tmp_path / "dim.png", dim)
    np.testing.assert_array_equal(read_image(tmp_path / "dim.png", as_float=False), scaled(dim, 65535))


def test_a_cut_out_on_a_transparent_background_is_read_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # black, transparent around ...
    rgba[1:3, 1:3] = (200, 100, 150, 255)  # ... an opaque cell
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cut.png")
    out = read_image(tmp_path / "cut.png", as_float=False)
    assert (out[0, 0] == 255).all() and tuple(out[1, 1]) == (200, 100, 150)


def test_a_stack_of_planes_is_refused_not_read_as_colours(tmp_path, rng):
    planes = rng.integers(0, 255, (3, 16, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", planes, metadata={"axes": "ZYX"})
    with pytest.raises(ImageReadError, match=r"stack of planes \(Z=3"):
        read_image(tmp_path / "z.tif")
    tifffile.imwrite(tmp_path / "cf.tif", rng.integers(0, 255, (3, 16, 16), dtype=np.uint8), photometric="rgb")
    assert read_image(tmp_path / "cf.tif").shape == (16, 16, 3)  # channels first is still one RGB image


def test_big_images_are_not_refused_as_decompression_bombs(tmp_path, rgb8, monkeypatch):
    from PIL import Image as PILImage

    from napari_bloodseg.io import images

    Image.fromarray(rgb8).save(tmp_path / "a.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # Pillow's own limit, here tiny: raised when reading
    assert read_image(tmp_path / "a.png").shape == rgb8.shape
    assert PILImage.MAX_IMAGE_PIXELS == images.MAX_WHOLE_PIXELS
    monkeypatch.setattr(images, "MAX_WHOLE_PIXELS", 200)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="too big to read whole; save it as a tiled TIFF"):
        read_image(tmp_path / "a.png")


def test_hidden_files_such_as_macos_resource_forks_are_not_listed(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "001.bmp")
    (tmp_path / "._001.BMP").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble, not an image
    assert list_images([tmp_path]) == [tmp_path / "001.bmp"]


@pytest.mark.parametrize("compression", ["tiff_lzw", "jpeg"])
def test_lzw_and_jpeg_compressed_tiffs_are_read(tmp_path, compression):
    """What scanners, Photoshop and GIMP write; tifffile needs imagecodecs for them (a dependency)."""
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([yy * 9, xx * 7, np.full_like(xx, 90)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.tif", compression=compression)
    _check_both(tmp_path / "c.tif", rgb, atol=0 if compression == "tiff_lzw" else 12)


def test_tiff_colours_are_read_as_viewers_show_them(tmp_path, rgb8):
    """Palette and CMYK TIFFs were read as raw indices / as RGB + alpha, a MinIsWhite image inverted."""
    Image.fromarray(rgb8).convert("CMYK").save(tmp_path / "cmyk.tif")
    _check_both(tmp_path / "cmyk.tif", np.asarray(Image.open(tmp_path / "cmyk.tif").convert("RGB")), atol=1)
    Image.fromarray(rgb8).quantize(32).save(tmp_path / "pal.tif")
    _check_both(tmp_path / "pal.tif", np.asarray(Image.open(tmp_path / "pal.tif").convert("RGB")), atol=1)
    grey = rgb8[..., 0]
    tifffile.imwrite(tmp_path / "white.tif", 255 - grey, photometric="miniswhite")  # shown as `grey`
    _check_both(tmp_path / "white.tif", np.repeat(grey[..., None], 3, -1))


def test_pages_planes_and_unnamed_channels_that_are_not_colour_are_refused(tmp_path, rgb8):
    grey = [Image.fromarray(rgb8[..., c]) for c in range(3)]
    grey[0].save(tmp_path / "pages.tif", save_all=True, append_images=grey[1:])  # 3 pages: not R, G and B
    with pytest.raises(ImageReadError, match=r"stack of pages \(I=3"):
        read_image(tmp_path / "pages.tif")
    tifffile.imwrite(tmp_path / "q.tif", np.zeros((6, 8, 9), np.uint8))  # 6 unnamed planes
    with pytest.raises(ImageReadError, match=r"stack of planes \(Q=6"):
        read_image(tmp_path / "q.tif")
    two = np.dstack([rgb8[..., 0], rgb8[..., 1]])
    tifffile.imwrite(tmp_path / "two.tif", two, photometric="minisblack", planarconfig="contig", extrasamples=[0])
    with pytest.raises(ImageReadError, match="2 channels that are neither colour nor alpha"):
        read_image(tmp_path / "two.tif")
    tifffile.imwrite(tmp_path / "la.tif", two, photometric="minisblack", planarconfig="contig", extrasamples=[2])
    assert read_image(tmp_path / "la.tif").shape == rgb8.shape  # declared alpha: grey + alpha


def test_rgb_with_extra_data_is_not_composited_as_alpha_and_a_leading_1_is_squeezed(tmp_path, rgb8):
    rgbx = np.dstack([rgb8, np.zeros(rgb8.shape[:2], np.uint8)])  # a 4th sample that is not alpha
    tifffile.imwrite(tmp_path / "rgbx.tif", rgbx, photometric="rgb", extrasamples=[0])
    _check_both(tmp_path / "rgbx.tif", rgb8)
    tifffile.imwrite(tmp_path / "one.tif", rgb8[None], photometric="rgb")
    _check_both(tmp_path / "one.tif", rgb8)


def test_tiff_orientation_tag_is_applied(tmp_path, rgb8):
    tifffile.imwrite(tmp_path / "o6.tif", rgb8, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    _check_both(tmp_path / "o6.tif", np.rot90(rgb8, -1))  # as Pillow's exif_transpose turns a camera's 6


def test_a_tiff_under_another_suffix_is_read_as_a_tiff(tmp_path, rgb8):
    cam = rgb8.astype(np.uint16) * 16  # 12-bit values: through Pillow, only the high bytes (near black)
    tifffile.imwrite(tmp_path / "cam.png", cam, photometric="rgb")
    assert read_image(tmp_path / "cam.png", as_float=False).max() > 200


def test_short_grey_alpha_images_keep_their_axes(tmp_path, rng):
    la = np.dstack([rng.integers(0, 256, (3, 20), dtype=np.uint8), np.full((3, 20), 255, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").shape == (3, 20, 3)  # was read as a 20 x 2 image


def test_transparency_is_white_at_16_bits_too(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint16)
    rgba[1:3, 1:3] = (40000, 20000, 30000, 65535)  # an opaque cell on a transparent (black) background
    tifffile.imwrite(tmp_path / "c16.tif", rgba, photometric="rgb", extrasamples=[2])
    out = read_image(tmp_path / "c16.tif", as_float=False)
    assert (out[0] == 255).all() and out[1, 1].tolist() == [156, 78, 117]  # 40000 / 65535 * 255 = 155.6


def test_float_camera_units_are_scaled_like_integers(tmp_path, rgb8):
    tifffile.imwrite(tmp_path / "f12.tif", rgb8.astype(np.float32) * 16)  # ImageJ's 32-bit copy of 12-bit data
    out = read_image(tmp_path / "f12.tif", as_float=False)
    assert (out == 255).mean() < 0.01 and np.abs(out.astype(int) - rgb8).max() <= 1  # was 97 % white


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_tiff_orientation_turns_as_pillow_turns_the_exif_one(tmp_path, rgb8, orientation):
    from PIL import ImageOps

    tifffile.imwrite(tmp_path / "o.tif", rgb8, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb8).save(tmp_path / "o.png", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    _check_both(tmp_path / "o.tif", shown)
    _check_both(tmp_path / "o.png", shown)


def test_16bit_colour_png_is_turned_by_its_exif_orientation(tmp_path, rgb8):
    import struct
    import zlib

    exif = Image.Exif()
    exif[0x0112] = 6
    raw = exif.tobytes()  # TIFF-structured EXIF, as a PNG eXIf chunk holds it
    raw = raw[6:] if raw.startswith(b"Exif") else raw
    _png16(tmp_path / "p16.png", rgb8.astype(np.uint16) * 257)
    data = (tmp_path / "p16.png").read_bytes()
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    (tmp_path / "p16.png").write_bytes(data[:33] + chunk + data[33:])  # after IHDR
    assert Image.open(tmp_path / "p16.png").getexif().get(0x0112) == 6
    np.testing.assert_array_equal(read_image(tmp_path / "p16.png", as_float=False), np.rot90(rgb8, -1))


def test_float_0_to_255_data_that_overshoots_a_little_is_not_read_as_camera_units(tmp_path, rgb8):
    a = rgb8.astype(np.float32)
    a[0, 0, 0] = 256.5  # one overshooting pixel read the image as 10-bit data, 4x darker
    tifffile.imwrite(tmp_path / "f.tif", a)
    out = read_image(tmp_path / "f.tif", as_float=False)
    assert out[0, 0, 0] == 255 and np.abs(out.astype(int)[1:] - rgb8[1:]).max() <= 1


def test_miniswhite_inverts_the_grey_not_the_alpha(tmp_path):
    la = np.zeros((6, 8, 2), np.uint8)
    la[..., 0] = 200  # shown as 55
    la[:, 4:, 1] = 255  # right half opaque, left half transparent
    tifffile.imwrite(tmp_path / "w.tif", la, photometric="miniswhite", extrasamples=[2])
    out = read_image(tmp_path / "w.tif", as_float=False)
    assert (out[:, :4] == 255).all() and (out[:, 4:] == 55).all()


def test_associated_alpha_is_not_multiplied_twice(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[...] = (100, 100, 100, 128)  # premultiplied colour 100 at half opacity
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=[1])
    out = read_image(tmp_path / "a.tif", as_float=False)
    assert abs(int(out[0, 0, 0]) - round(100 + 255 * (1 - 128 / 255))) <= 1  # 227, as Pillow shows it


def test_rgb_pages_of_one_size_are_a_stack_of_pages(tmp_path):
    """tifffile writes an (n, H, W, 3) array as n RGB pages, axes QYXS: the pages were taken for channels and
    refused with the array's shape, by predict and the reader alike."""
    import tifffile

    rgb = np.zeros((3, 20, 30, 3), np.uint8)
    tifffile.imwrite(tmp_path / "pages.tif", rgb)
    with pytest.raises(ImageReadError, match=r"pages\.tif: a stack of pages \(Q=3; axes QYXS\), not one image"):
        read_image(tmp_path / "pages.tif")


def test_a_tiff_with_a_page_of_another_size_warns_what_is_left_out(tmp_path, rgb8):
    """A field saved with a crop of it as a second page opened as the field, without a word about the crop."""
    from napari_bloodseg.io.images import LeftOutImagesWarning

    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:
        tw.write(rgb8)
        tw.write(rgb8[:10, :12])
    with pytest.warns(LeftOutImagesWarning) as caught:
        np.testing.assert_array_equal(read_image(tmp_path / "two.tif", as_float=False), rgb8)
    assert [str(w.message) for w in caught if w.category is LeftOutImagesWarning] == [
        f"{tmp_path / 'two.tif'}: read its first image (34 x 21 pixels) only; the file holds 1 more image, left "
        "out: page 2 (12 x 10 pixels). Save each image to segment as its own file"
    ]

    with tifffile.TiffWriter(tmp_path / "many.tif") as tw:  # no metadata: as other tools write pages
        for h in (21, 5, 6, 7, 8, 9):
            tw.write(rgb8[:h], metadata=None)
    with pytest.warns(
        LeftOutImagesWarning,
        match=r"holds 5 more images, left out: page 2 \(34 x 5 pixels\), "
        r"page 3 \(34 x 6 pixels\), page 4 \(34 x 7 pixels\) and 2 more\. Save each",
    ):
        read_image(tmp_path / "many.tif")


@pytest.mark.parametrize("layout", ["reduced pages", "subifds", "transparency mask"])
def test_pyramid_levels_and_masks_of_the_image_are_no_left_out_images(tmp_path, rgb8, layout):
    import warnings

    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tw:
        if layout == "subifds":
            tw.write(rgb8, subifds=1)
            tw.write(rgb8[::2, ::2], subfiletype=1)
        elif layout == "reduced pages":  # a pyramid in the main chain, as some scanners write it
            tw.write(rgb8, metadata=None)
            tw.write(rgb8[::2, ::2], subfiletype=1, metadata=None)
            tw.write(rgb8[::4, ::4], subfiletype=1, metadata=None)
        else:
            tw.write(rgb8, metadata=None)
            tw.write(np.ones(rgb8.shape[:2], bool), subfiletype=4, metadata=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(path, as_float=False), rgb8)

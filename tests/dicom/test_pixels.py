import io

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.pixels import pixel_array

from imaging.dicom.parsing import read_dataset
from imaging.dicom.pixels import PixelDecodeError, default_frame, frame_uint8
from tests.dicom.support import chest_radiograph_dataset, shipped_bytes, shipped_path


def pixels(name: str) -> np.ndarray:
    return frame_uint8(read_dataset(shipped_bytes(name)))


def test_ct_modality_lut_and_window_from_tags():
    dataset = read_dataset(shipped_bytes("CT_small.dcm"))
    dataset.WindowCenter, dataset.WindowWidth = 40, 400  # a soft-tissue window, in Hounsfield units
    out = frame_uint8(dataset)
    hu = dataset.pixel_array.astype(float) * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    assert out.dtype == np.uint8 and out.shape == hu.shape
    assert (out[hu <= 40 - 200] == 0).all()
    assert (out[hu >= 40 + 200] == 255).all()
    inside = (hu > -150) & (hu < 230)
    order = np.argsort(hu[inside])
    assert np.all(np.diff(out[inside][order].astype(int)) >= 0)  # monotonic inside the window


def test_without_window_a_robust_percentile_window_is_used():
    dataset = read_dataset(shipped_bytes("CT_small.dcm"))
    assert "WindowCenter" not in dataset
    out = frame_uint8(dataset)
    assert out.min() == 0 and out.max() == 255
    hu = dataset.pixel_array.astype(float) - 1024
    assert (out[hu >= np.percentile(hu, 99.5)] == 255).all()


def test_monochrome1_is_inverted(sample_image_bytes):
    dataset = chest_radiograph_dataset(sample="cxr-normal-1.png")  # stored inverted, as MONOCHROME1
    as_monochrome1 = frame_uint8(dataset).astype(int)
    original = np.asarray(PILImage.open(io.BytesIO(sample_image_bytes("cxr-normal-1.png"))).convert("L"), dtype=int)
    # Displayed like the original radiograph: bone bright, air dark.
    assert np.corrcoef(as_monochrome1.ravel(), original.ravel())[0, 1] > 0.99
    dataset.PhotometricInterpretation = "MONOCHROME2"
    as_monochrome2 = frame_uint8(dataset).astype(int)
    assert np.abs(as_monochrome1 + as_monochrome2 - 255).max() <= 1


def test_12_bit_cr_file():
    out = pixels("6154")
    assert out.shape == (16, 16) and out.dtype == np.uint8


def test_rgb_file_is_kept_as_rgb():
    out = pixels("examples_rgb_color.dcm")
    assert out.shape == (240, 320, 3)
    assert np.array_equal(out, pydicom.dcmread(shipped_path("examples_rgb_color.dcm")).pixel_array)


def test_ybr_is_converted_to_rgb():
    rgb = pixels("SC_rgb_rle.dcm").astype(int)
    for name in ("SC_ybr_full_422_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm"):
        converted = pixels(name).astype(int)
        assert np.abs(converted - rgb).mean() < 4, name


def test_16_and_32_bit_colour_scaled_to_8_bits():
    rgb = pixels("SC_rgb_rle.dcm")
    assert np.array_equal(pixels("SC_rgb_rle_16bit.dcm"), rgb)
    assert np.array_equal(pixels("SC_rgb_rle_32bit.dcm"), rgb)


def test_multiframe_uses_the_middle_frame():
    dataset = read_dataset(shipped_bytes("examples_ybr_color.dcm"))
    assert int(dataset.NumberOfFrames) == 30
    assert default_frame(dataset) == 15
    expected = pixel_array(shipped_path("examples_ybr_color.dcm"), index=15)
    out = frame_uint8(dataset)
    assert out.shape == (240, 320, 3)
    assert np.array_equal(out, expected)
    assert not np.array_equal(out, pixel_array(shipped_path("examples_ybr_color.dcm"), index=0))


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_expb.dcm"]
)
def test_lossless_compressed_syntaxes_decode_like_the_uncompressed_file(name):
    assert np.array_equal(pixels(name), pixels("MR_small.dcm"))


def test_jpeg_baseline_colour_decodes():
    assert pixels("SC_rgb_jpeg_gdcm.dcm").shape == (100, 100, 3)


def test_palette_colour_is_expanded():
    out = pixels("examples_palette.dcm")
    assert out.shape == (350, 800, 3)


def test_undecodable_compressed_data_raises_with_the_transfer_syntax():
    with pytest.raises(PixelDecodeError, match="JPEG Extended"):
        pixels("JPEG-lossy.dcm")

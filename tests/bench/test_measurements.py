from pathlib import Path

import pytest

from bench.measurements import SAMPLES, sample_image


def test_a_model_with_a_committed_sample_is_measured_on_it(tmp_path):
    assert sample_image({"name": "derm-melanoma", "dataset": {"path": "ham"}}, tmp_path) == SAMPLES / "derm-nv-1.jpg"


def test_without_a_sample_the_first_validation_image_of_its_data_set_is_used(tmp_path):
    for name in ("Normal/b.jpg", "COVID/a.jpg"):
        path = tmp_path / "cxr" / "val" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpeg")
    chosen = sample_image({"name": "cxr-covid19", "dataset": {"path": "cxr"}}, tmp_path)
    assert chosen == tmp_path / "cxr" / "val" / "COVID" / "a.jpg"


def test_a_carved_validation_split_is_read_from_the_cards_file_list(tmp_path):
    for name in ("glioma/1.jpg", "glioma/2.jpg"):
        path = tmp_path / "mri" / "Training" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpeg")
    card = {"name": "mri-brain-tumour", "dataset": {"path": "mri", "validation_files": ["glioma/2.jpg"]}}
    assert sample_image(card, tmp_path) == tmp_path / "mri" / "Training" / "glioma" / "2.jpg"


def test_no_image_of_the_right_kind_stops_the_benchmark_with_a_reason(tmp_path):
    with pytest.raises(SystemExit, match="No image of the kind mri-brain-tumour"):
        sample_image({"name": "mri-brain-tumour", "dataset": {"path": "mri"}}, Path(tmp_path))

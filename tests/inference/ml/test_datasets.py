import numpy as np
from PIL import Image

from inference.ml import datasets


def test_npz_loader(tmp_path):
    path = tmp_path / "toy.npz"
    np.savez(
        path,
        train_images=np.zeros((6, 28, 28), np.uint8),
        train_labels=np.array([[0], [1], [0], [1], [0], [1]], np.uint8),
    )
    data = datasets.load_npz(path, "train", ["a", "b"])
    assert data.images.shape == (6, 28, 28)
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.class_names == ["a", "b"]


def test_class_folder_loader(tmp_path):
    for cls, mode in (("b_cls", "RGB"), ("a_cls", "L")):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new(mode, (10 + i, 8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a_cls" / "notes.txt").write_text("ignored")
    data = datasets.load_class_folder(tmp_path)
    assert data.class_names == ["a_cls", "b_cls"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.images[0].ndim == 2 and data.images[3].shape == (8, 10, 3)
    assert data.files[0] == "a_cls/0.png"


def test_stratified_split_is_reproducible_and_stratified():
    labels = np.array([0] * 80 + [1] * 20)
    keep, held = datasets.stratified_split(labels, fraction=0.15, seed=7)
    keep2, held2 = datasets.stratified_split(labels, fraction=0.15, seed=7)
    np.testing.assert_array_equal(held, held2)
    np.testing.assert_array_equal(keep, keep2)
    assert np.bincount(labels[held]).tolist() == [12, 3]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 100

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


def _scan(rng, n_slices, base):
    """Adjacent 'slices': one smooth image drifting a little from slice to slice."""
    return [np.clip(base + 6.0 * i + rng.normal(0, 2, base.shape), 0, 255) for i in range(n_slices)]


def test_near_identical_groups_links_adjacent_slices_and_copies_but_not_other_scans():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    scan_a = _scan(rng, 4, 120 + 80 * np.sin(xx / 9.0))
    scan_b = _scan(rng, 3, 120 + 80 * np.cos(yy / 5.0) * np.sin(xx / 13.0))
    resized_copy = np.kron(scan_b[0][::2, ::2], np.ones((2, 2)))  # same picture, other resolution
    other = rng.uniform(0, 255, (64, 64))
    images = [*scan_a, *scan_b, resized_copy, other]
    labels = np.zeros(len(images), dtype=int)

    groups = datasets.near_identical_groups(images, labels)

    assert len(set(groups[:4])) == 1
    assert len(set(groups[4:8])) == 1
    assert groups[0] != groups[4]
    assert groups[8] not in groups[:8]


def test_near_identical_groups_never_links_across_classes():
    image = np.tile(np.arange(64, dtype=float), (64, 1))
    groups = datasets.near_identical_groups([image, image.copy()], np.array([0, 1]))
    assert groups[0] != groups[1]


def test_grouped_split_keeps_every_group_on_one_side_and_is_stratified():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 60)
    groups = np.concatenate([np.repeat(np.arange(c * 100, c * 100 + 20), 3) for c in range(3)])
    rng.shuffle(groups[:60])  # group order need not follow file order

    keep, held = datasets.grouped_stratified_split(labels, groups, fraction=0.2, seed=7)

    assert set(groups[keep]).isdisjoint(groups[held])
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[held]).tolist() == [12, 12, 12]
    again_keep, again_held = datasets.grouped_stratified_split(labels, groups, fraction=0.2, seed=7)
    assert again_held.tolist() == held.tolist()


def test_metadata_groups_by_column_with_unlisted_files_alone(tmp_path):
    csv_file = tmp_path / "metadata.csv"
    csv_file.write_text("file,lesion_id\na.jpg,L1\nb.jpg,L1\nc.jpg,L2\n")
    groups = datasets.metadata_groups(["mel/a.jpg", "nv/b.jpg", "nv/c.jpg", "nv/d.jpg"], csv_file, "lesion_id")
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3]}) == 3


def test_filename_groups_by_captured_prefix():
    files = ["P/C33P1_IMG_1_cell_1.png", "P/C33P1_IMG_1_cell_2.png", "U/C40_IMG_9_cell_1.png", "U/odd.png"]
    groups = datasets.filename_groups(files, r"(.+)_cell_\d+")
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3]}) == 3

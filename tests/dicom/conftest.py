import pytest

from tests.dicom.support import chest_radiograph_dataset, dataset_bytes


@pytest.fixture
def chest_radiograph():
    """Bytes of a fresh CR chest radiograph instance (new UIDs each call)."""

    def build(**kwargs) -> bytes:
        return dataset_bytes(chest_radiograph_dataset(**kwargs))

    return build

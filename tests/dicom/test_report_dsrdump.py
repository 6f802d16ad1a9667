"""DCMTK's SR reader accepts the AI report as a Comprehensive SR document, its content constraints
checked: the report of a result and the report of an image the model declined."""

import subprocess

import pytest

from imaging.dicom.services import dicom_ingest
from imaging.models import ImageSource
from inference.dicom_report import prediction_sr_bytes
from inference.models import Prediction
from tests.dicom.test_reports_and_export import decline, succeed
from tests.support.dcmtk import require_dcmtk

TOOLS = require_dcmtk("dsrdump")

pytestmark = pytest.mark.django_db


def _dump(prediction: Prediction, path) -> subprocess.CompletedProcess:
    path.write_bytes(prediction_sr_bytes(prediction=prediction))
    # Long text values in full, so the reason can be read back.
    return subprocess.run([TOOLS["dsrdump"], "+Pl", str(path)], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("outcome", [succeed, decline], ids=["result", "declined"])
def test_dsrdump_reads_the_report_without_a_warning(outcome, tiny_model, chest_radiograph, tmp_path):
    image = dicom_ingest(data=chest_radiograph(), source=ImageSource.C_STORE).image
    prediction = outcome(Prediction.objects.get(image=image))

    dumped = _dump(prediction, tmp_path / "report.dcm")
    assert dumped.returncode == 0, dumped.stderr
    assert dumped.stderr == ""
    assert "Comprehensive SR Document" in dumped.stdout and "Completion Flag     : COMPLETE" in dumped.stdout
    if prediction.not_run:
        assert f'<contains TEXT:(,,"AI result not given")="{prediction.error}">' in dumped.stdout
        assert "Finding" not in dumped.stdout and "NUM:" not in dumped.stdout
    else:
        assert f'<contains TEXT:(,,"Finding")="{prediction.label}">' in dumped.stdout

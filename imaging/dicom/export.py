"""Study export: the original DICOM files, or de-identified copies, in one ZIP."""

import io
import zipfile

from imaging.dicom import DICOM_CONTENT_TYPE
from imaging.dicom.deid import dataset_deidentify, has_burned_in_annotation, pseudonym
from imaging.dicom.parsing import read_dataset
from imaging.models import Study
from imaging.storage import blob_read


def _write(dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def study_export_zip(*, study: Study, anonymised: bool) -> bytes:
    """A ZIP of the study's images. Anonymised: DICOM only, de-identified, with a manifest of what was left out."""
    buffer = io.BytesIO()
    left_out: list[str] = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, image in enumerate(study.images.order_by("uploaded_at", "id"), start=1):
            data = blob_read(image.file.name)
            if image.content_type != DICOM_CONTENT_TYPE:
                if anonymised:
                    left_out.append(f"{image}: not DICOM, its metadata cannot be de-identified")
                    continue
                extension = ".png" if image.content_type == "image/png" else ".jpg"
                archive.writestr(f"{index:04d}{extension}", data)
                continue
            if not anonymised:
                archive.writestr(f"{image.series_instance_uid or 'series'}/{image.sop_instance_uid}.dcm", data)
                continue
            dataset = read_dataset(data)
            if has_burned_in_annotation(dataset):
                left_out.append(f"{image.sop_instance_uid}: burned-in annotation in the pixels")
                continue
            dataset_deidentify(dataset)
            archive.writestr(
                f"{dataset.get('SeriesInstanceUID', 'series')}/{dataset.SOPInstanceUID}.dcm", _write(dataset)
            )
        if anonymised:
            lines = [
                f"De-identified export of one study of patient {pseudonym(study.patient.mrn)}.",
                "Profile: DICOM PS3.15 Basic Application Level Confidentiality Profile.",
            ]
            if left_out:
                lines += ["", "Left out:", *(f"- {reason}" for reason in left_out)]
            archive.writestr("MANIFEST.txt", "\n".join(lines) + "\n")
    return buffer.getvalue()


def study_export_filename(study: Study, *, anonymised: bool) -> str:
    if anonymised:
        return f"study-{pseudonym(study.patient.mrn).lower()}-{str(study.id)[:8]}-anonymised.zip"
    return f"study-{study.accession_number}.zip"

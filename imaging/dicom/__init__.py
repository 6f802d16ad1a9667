"""DICOM in and out: parsing, pixels, ingestion, structured reports and de-identification."""

DICOM_CONTENT_TYPE = "application/dicom"

"""DICOM in and out: parsing, pixels, ingestion, export and de-identification (AI reports: inference.dicom_report)."""

DICOM_CONTENT_TYPE = "application/dicom"

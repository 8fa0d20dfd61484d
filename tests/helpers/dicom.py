"""Generated DICOM series for tests: a phantom volume written slice by slice with pydicom (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> DICOM's LPS (its own inverse)


def ds(value: float) -> str:
    """A decimal string of at most 16 characters, as scanners write them."""
    return f"{value:.10g}"


def write_dicom_series(
    folder: Path,
    data: np.ndarray,
    affine: np.ndarray,
    slope: float = 1.0,
    intercept: float = 0.0,
    series_uid: str | None = None,
    series_number: int = 1,
    description: str = "phantom",
    prefix: str = "IM",
) -> list[Path]:
    """Write ``data`` (rows, columns, slices) as one DICOM file per slice, placed by the RAS ``affine``.

    Args:
        folder: where the files go (created).
        data: intensities; stored as ``round((data - intercept) / slope)`` in uint16.
        affine: RAS voxel-to-world affine of ``data``'s (row, column, slice) indices; its first two
            columns must be orthogonal (DICOM stores direction cosines and two pixel spacings).
        slope, intercept: ``RescaleSlope``/``RescaleIntercept`` of every slice.
        series_uid, series_number, description: the series tags (a new UID when ``None``).
        prefix: file-name prefix; files are ``{prefix}{k:04d}`` without suffix, as scanners name them.

    Returns:
        the files, in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :2], axis=0)  # along the row index, along the column index
    column_cosine, row_cosine = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    stored = np.round((np.asarray(data, dtype=np.float64) - intercept) / slope)
    assert stored.min() >= 0 and stored.max() < 2**16, "choose slope/intercept that fit uint16"
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    paths = []
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        d = pydicom.Dataset()
        d.file_meta = meta
        d.SOPClassUID, d.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        d.Modality, d.PatientName, d.PatientID = "MR", "Phantom^Test", "phantom"
        d.StudyInstanceUID, d.SeriesInstanceUID = study_uid, series_uid
        d.SeriesNumber, d.SeriesDescription, d.InstanceNumber = series_number, description, k + 1
        d.Rows, d.Columns = data.shape[0], data.shape[1]
        d.PixelSpacing = [ds(spacing[0]), ds(spacing[1])]
        d.SliceThickness = ds(float(np.linalg.norm(lps[:3, 2])))
        d.ImageOrientationPatient = [ds(v) for v in (*row_cosine, *column_cosine)]
        d.ImagePositionPatient = [ds(v) for v in lps[:3, 3] + k * lps[:3, 2]]
        d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
        d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 0
        d.RescaleSlope, d.RescaleIntercept = ds(slope), ds(intercept)
        d.PixelData = np.ascontiguousarray(stored[:, :, k].astype(np.uint16)).tobytes()
        path = folder / f"{prefix}{k:04d}"
        d.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

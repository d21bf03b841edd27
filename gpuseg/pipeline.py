"""The pipeline over Parquet: fit on a source, then write every customer's segment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from gpuseg._backend import get_backend
from gpuseg.labels import (
    DEFAULT_AMBIGUITY,
    LabelsReport,
    output_name,
    prepare_output_dir,
    write_labels_file,
    write_manifest,
)
from gpuseg.model import SegmentationModel
from gpuseg.parquet import ParquetSource

if TYPE_CHECKING:
    from gpuseg.estimator import KMeans


def file_sources(source: ParquetSource) -> list[ParquetSource]:
    """One source per input file, reading it exactly as ``source`` reads its files."""
    options = {
        "filters": source.filters,
        "block_rows": source.block_rows,
        "read_ahead": source.read_ahead,
        "retries": source.retries,
        "storage_options": source.storage_options,
        "plan": source.plan,
        "persist": False,  # one pass each
    }
    columns = None if source.plan is not None else source.columns
    read = (columns, source.id_column, source.weight_column)
    return [ParquetSource(path, *read, **options) for path in source.files]


def assign(
    model: KMeans | SegmentationModel,
    source: ParquetSource,
    output_dir: str | os.PathLike,
    *,
    ambiguity: float = DEFAULT_AMBIGUITY,
    overwrite: bool = False,
    progress: bool = False,
    device: str | None = None,
) -> LabelsReport:
    """Write the segment of every row of ``source`` to labels Parquet, one file per input file.

    Parameters
    ----------
    model : KMeans or SegmentationModel
        A fitted estimator (its ``cluster_centers_``) or a loaded model (its ``centers``); the
        source must yield the matrix it clusters (for a model, read with ``plan=model.plan``).
    source : ParquetSource or DaskSource
        The rows to label; its ``id_column`` becomes ``customer_id`` in the output. A
        :class:`gpuseg.distributed.DaskSource` writes one file per partition from its workers.
    output_dir : path
        Directory for the output files and the ``_SUCCESS`` manifest written last.
    ambiguity : float, default 0.1
        Rows whose relative margin is below this are flagged ``ambiguous``
        (see :mod:`gpuseg.labels`).
    overwrite : bool, default False
        Replace a non-empty ``output_dir`` instead of refusing.
    progress : bool, default False
        Show a progress bar with rows/s on stderr.
    device : str, optional
        Where the kernels run; defaults to the estimator's ``device``, else "auto".

    Returns
    -------
    LabelsReport
        Output files and row counts.

    Examples
    --------
    >>> km = KMeans(6).fit(ParquetSource("customers/"))  # doctest: +SKIP
    >>> source = ParquetSource("customers/", id_column="customer_id")  # doctest: +SKIP
    >>> assign(km, source, "labels/")  # doctest: +SKIP
    """
    fitted = model.centers if isinstance(model, SegmentationModel) else model.cluster_centers_
    centers = np.ascontiguousarray(fitted, dtype=np.float32)
    if centers.shape[1] != source.n_features:
        raise ValueError(
            f"source has {source.n_features} features but the model was fitted on "
            f"{centers.shape[1]}."
        )
    backend = get_backend(device or getattr(model, "device", "auto"))

    def nearest_two(X: np.ndarray):
        assignment, _ = backend.assign_accumulate(X, centers, accumulate=False)
        return assignment

    report = LabelsReport(prepare_output_dir(output_dir, overwrite))
    if hasattr(source, "write_labels"):  # a cluster source writes from its workers
        written = source.write_labels(centers, backend, report.output_dir, ambiguity)
        report.files, report.rows = [n for n, _ in written], [r for _, r in written]
        write_manifest(report)
        return report
    with tqdm(
        total=source.n_samples, desc="assign", unit="rows", unit_scale=True, disable=not progress
    ) as bar:
        for index, file_source in enumerate(file_sources(source)):
            name = output_name(file_source.files[0], index)
            blocks = _counting(file_source.batches(), bar)
            rows = write_labels_file(report.output_dir / name, blocks, nearest_two, ambiguity)
            report.files.append(name)
            report.rows.append(rows)
    write_manifest(report)
    return report


def _counting(blocks, bar):
    for batch in blocks:
        yield batch
        bar.update(batch.X.shape[0])

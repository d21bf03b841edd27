"""Labels Parquet: one output file per input file, each complete or absent.

Every output row holds the customer id, ``segment`` (nearest centre), ``distance`` to it,
``runner_up`` (second-nearest centre, -1 with one centre), ``runner_up_distance``, ``margin`` and
``ambiguous``. Distances are Euclidean, in the units the model clusters in (after the feature plan).

``margin = 1 - distance / runner_up_distance`` is the relative gap between the two nearest centres:
0 for a customer exactly between two segments, 1 for one sitting on its centre (and 1 when there is
a single centre). A customer is ``ambiguous`` when ``margin < ambiguity`` (default 0.1: the
runner-up is less than about 11% farther than the nearest centre).

Each file is written under a hidden temporary name in the output directory and renamed when
complete; a ``_SUCCESS`` manifest (JSON: files and row counts) is written last. An interrupted job
leaves no file with a final name that is incomplete, and no manifest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpuseg.batches import Batch
from gpuseg.kernels.types import Assignment

MANIFEST = "_SUCCESS"
DEFAULT_AMBIGUITY = 0.1
# Only the segment columns repeat: dictionary-encoding ids and distances (pyarrow's default)
# doubles the time to write a labels file and makes it larger.
_DICTIONARY_COLUMNS = ["segment", "runner_up"]


def label_table(ids: np.ndarray | None, assignment: Assignment, ambiguity: float) -> pa.Table:
    """Build the labels table of one block from its assignment."""
    distance = np.sqrt(assignment.distances, dtype=np.float32)
    runner_up_distance = np.sqrt(assignment.second_distances, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(
            runner_up_distance > 0, 1.0 - distance / runner_up_distance, 0.0
        ).astype(np.float32)
    columns = {
        "segment": assignment.labels,
        "distance": distance,
        "runner_up": assignment.second_labels,
        "runner_up_distance": runner_up_distance,
        "margin": margin,
        "ambiguous": margin < ambiguity,
    }
    if ids is not None:
        columns = {"customer_id": ids, **columns}
    return pa.table(columns)


@dataclass
class LabelsReport:
    """What a labels job wrote: output files and their row counts, in input order."""

    output_dir: Path
    files: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows written in all files."""
        return sum(self.rows)


def prepare_output_dir(output_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Create ``output_dir``; refuse a non-empty one unless ``overwrite`` (then empty it).

    The path is made absolute here, so that workers of a cluster write where the client means.
    """
    path = Path(output_dir).resolve()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory; choose another output.")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{path}: output already exists; pass overwrite=True to replace.")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_labels_file(
    target: Path,
    blocks: Iterable[Batch],
    assign: Callable[[np.ndarray], Assignment],
    ambiguity: float = DEFAULT_AMBIGUITY,
) -> int:
    """Write the labels of ``blocks`` to ``target`` atomically; return the rows written.

    The file is written as ``.<name>.tmp`` beside ``target`` and renamed when complete; on any
    error the temporary file is removed and the error propagates.
    """
    temporary = target.with_name(f".{target.name}.tmp")
    rows = 0
    writer = None
    try:
        for batch in blocks:
            table = label_table(batch.ids, assign(batch.X), ambiguity)
            if writer is None:
                writer = _writer(temporary, table.schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # an input with no rows still gets an (empty) output file
            writer = _writer(temporary, label_table(None, Assignment.empty(0), 0).schema)
        writer.close()
        writer = None
        os.replace(temporary, target)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    return rows


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A Parquet writer for labels (dictionary pages for the segment columns only)."""
    return pq.ParquetWriter(path, schema, use_dictionary=_DICTIONARY_COLUMNS)


def write_manifest(report: LabelsReport) -> None:
    """Write the ``_SUCCESS`` manifest that marks the whole output complete."""
    manifest = {"files": report.files, "rows": report.rows, "n_rows": report.n_rows}
    temporary = report.output_dir / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, report.output_dir / MANIFEST)


def output_name(input_path: str, index: int) -> str:
    """Output file name for the ``index``-th input file (kept unique and ordered)."""
    stem = Path(input_path.split("://")[-1]).stem
    return f"part-{index:05d}-{stem}.parquet"

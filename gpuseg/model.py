"""The model file: a fitted feature plan and its centres, saved as a directory and loaded back.

A model directory holds two files:

``model.json``
    Metadata: ``format_version``, the gpuseg version that wrote it, creation time, the feature
    schema (input columns, their kind and Arrow type), the output feature names, the fitted plan
    (floats written by ``repr``, so they round-trip exactly), the as-of date, seed, ``k``,
    inertia, cluster sizes, the id column and the SHA-256 of ``centers.npz``.
``centers.npz``
    ``centers``: float64 ``(n_clusters, n_features)`` in the transformed space, read with
    ``allow_pickle=False``. Nothing in a model is ever unpickled.

:meth:`SegmentationModel.save` writes both into a temporary directory beside the target and
renames it into place, so a directory named like the model is always complete.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpuseg._backend import get_backend
from gpuseg.errors import DataError
from gpuseg.kernels.types import Assignment
from gpuseg.plan import FeaturePlan

FORMAT_VERSION = 1
MODEL_FILE = "model.json"
CENTERS_FILE = "centers.npz"


class SegmentationModel:
    """A fitted feature plan and the centres of the segments, in the transformed space.

    Parameters
    ----------
    plan : FeaturePlan
        Fitted.
    centers : array-like, shape (n_clusters, plan.n_features)
        Centres in the transformed (plan) space; kept as float64.
    as_of : str, date or Timestamp, optional
        The date the feature table holds for (stored as an ISO string).
    seed : int, optional
        ``random_state`` of the fit.
    inertia : float, optional
        Inertia of the fit data for ``centers``.
    cluster_sizes : array-like of int, shape (n_clusters,), optional
        Fit rows per segment.
    id_column : str, optional
        The customer id column of the tables this model scores.
    created : str, optional
        ISO time of creation (UTC); now by default.
    gpuseg_version : str, optional
        Version that created the model; this gpuseg by default.

    Examples
    --------
    >>> from gpuseg import KMeans
    >>> from gpuseg.plan import ColumnSpec
    >>> frame = pd.DataFrame({"spend": [1.0, 2.0, 100.0, 120.0]})
    >>> plan = FeaturePlan([ColumnSpec("spend", log1p=True)]).fit(frame)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(plan.transform(frame))
    >>> model = SegmentationModel.from_estimator(plan, km)
    >>> model.predict(frame).tolist() == km.labels_.tolist()
    True
    """

    def __init__(
        self,
        plan: FeaturePlan,
        centers: Any,
        *,
        as_of: Any = None,
        seed: int | None = None,
        inertia: float | None = None,
        cluster_sizes: Any = None,
        id_column: str | None = None,
        created: str | None = None,
        gpuseg_version: str | None = None,
    ) -> None:
        if not isinstance(plan, FeaturePlan) or not plan.is_fitted:
            raise ValueError("plan should be a fitted FeaturePlan; call plan.fit(data) first.")
        centers = np.array(centers, dtype=np.float64, order="C")
        if centers.ndim != 2 or centers.shape[1] != plan.n_features or len(centers) < 1:
            raise ValueError(
                f"centers has shape {centers.shape}; expected (n_clusters, {plan.n_features}), "
                "one column per output of the plan."
            )
        if not np.isfinite(centers).all():
            raise ValueError("centers contain NaN or infinity.")
        if cluster_sizes is not None:
            cluster_sizes = np.asarray(cluster_sizes, dtype=np.int64)
            if cluster_sizes.shape != (len(centers),):
                raise ValueError(
                    f"cluster_sizes has shape {cluster_sizes.shape}; expected ({len(centers)},)."
                )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed={seed!r} should be an integer or None.")
        if inertia is not None and not math.isfinite(inertia):
            raise ValueError(f"inertia={inertia!r} should be a finite number or None.")
        self.plan = plan
        self.centers = centers
        self.as_of = None if as_of is None else _iso(as_of)
        self.seed = None if seed is None else int(seed)
        self.inertia = None if inertia is None else float(inertia)
        self.cluster_sizes = cluster_sizes
        self.id_column = id_column
        self.created = created or datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.gpuseg_version = gpuseg_version or _gpuseg_version()

    @classmethod
    def from_estimator(cls, plan: FeaturePlan, kmeans: Any, **metadata: Any) -> SegmentationModel:
        """A model from a fitted plan and a :class:`gpuseg.KMeans` fitted on its matrix.

        ``seed`` defaults to the estimator's integer ``random_state``, ``inertia`` and
        ``cluster_sizes`` to its ``inertia_`` and ``cluster_sizes_``; other keyword arguments
        (``as_of``, ``id_column``) are passed to the constructor.
        """
        if not hasattr(kmeans, "cluster_centers_"):
            raise ValueError("kmeans is not fitted; fit it on plan.transform(data) first.")
        seed = kmeans.random_state
        integer_seed = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
        metadata.setdefault("seed", seed if integer_seed else None)
        metadata.setdefault("inertia", getattr(kmeans, "inertia_", None))
        metadata.setdefault("cluster_sizes", getattr(kmeans, "cluster_sizes_", None))
        return cls(plan, kmeans.cluster_centers_, **metadata)

    def __repr__(self) -> str:
        return (
            f"SegmentationModel(n_clusters={self.n_clusters}, "
            f"features={self.plan.input_columns}, as_of={self.as_of!r})"
        )

    @property
    def n_clusters(self) -> int:
        """Number of segments."""
        return int(self.centers.shape[0])

    @property
    def feature_schema(self) -> list[dict[str, str | None]]:
        """Input columns: name, kind (numeric/categorical) and Arrow type in the fit data."""
        return [
            {"name": s.name, "kind": s.kind, "type": self.plan.input_types.get(s.name)}
            for s in self.plan.columns
        ]

    # -- scoring ---------------------------------------------------------------------------

    def transform_features(self, data: Any) -> np.ndarray:
        """The exact float32 matrix the model clusters: ``plan.transform(data)``.

        Parameters
        ----------
        data : pandas.DataFrame, pyarrow.Table or pyarrow.RecordBatch
            Holds every column of the feature schema (others are ignored).

        Returns
        -------
        ndarray of float32, shape (n_rows, n_features)

        Raises
        ------
        DataError
            When a schema column is missing, or a value is bad (see :class:`FeaturePlan`).
        """
        if isinstance(data, pd.DataFrame):
            present = {str(c) for c in data.columns}
        else:
            present = set(getattr(getattr(data, "schema", None), "names", self.plan.input_columns))
        for name in self.plan.input_columns:
            if name not in present:
                raise DataError(
                    "column is missing; the model's feature schema needs "
                    f"{self.plan.input_columns}",
                    column=name,
                )
        return self.plan.transform(data)

    def assign(self, data: Any) -> Assignment:
        """Nearest and runner-up segment of every row, with squared distances (float32)."""
        X = self.transform_features(data)
        centers = np.ascontiguousarray(self.centers, dtype=np.float32)
        assignment, _ = get_backend("cpu").assign_accumulate(X, centers, None, accumulate=False)
        return assignment

    def predict(self, data: Any) -> np.ndarray:
        """Segment of every row (int32), as ``KMeans.predict`` on :meth:`transform_features`."""
        return self.assign(data).labels

    def centers_transformed(self) -> pd.DataFrame:
        """Centres in the transformed space, one column per output feature."""
        return pd.DataFrame(
            self.centers,
            columns=self.plan.output_names,
            index=pd.RangeIndex(self.n_clusters, name="segment"),
        )

    def centers_original(self) -> pd.DataFrame:
        """Centres in original units (see :meth:`FeaturePlan.inverse_transform_numeric`)."""
        return self.plan.inverse_transform_numeric(self.centers)

    # -- files -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The metadata written to ``model.json`` (without the centres' checksum)."""
        return {
            "format_version": FORMAT_VERSION,
            "gpuseg_version": self.gpuseg_version,
            "created": self.created,
            "n_clusters": self.n_clusters,
            "n_features": int(self.centers.shape[1]),
            "feature_schema": self.feature_schema,
            "feature_names": self.plan.output_names,
            "plan": self.plan.to_dict(),
            "as_of": self.as_of,
            "seed": self.seed,
            "inertia": self.inertia,
            "cluster_sizes": None if self.cluster_sizes is None else self.cluster_sizes.tolist(),
            "id_column": self.id_column,
            "centers_file": CENTERS_FILE,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model directory ``path`` (``model.json`` and ``centers.npz``).

        The files are written into a temporary directory beside ``path``, then renamed to
        ``path``. With ``overwrite=True`` an existing model is first renamed aside and removed
        once the new one is in place.

        Parameters
        ----------
        path : str or path-like
            The model directory; its parent is created if needed.
        overwrite : bool, default False
            Replace an existing directory at ``path``.

        Returns
        -------
        Path

        Raises
        ------
        FileExistsError
            When ``path`` exists and ``overwrite`` is false, or is a file.
        """
        path = Path(path)
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise FileExistsError(f"{path} exists and is not a model directory; not replaced.")
            if not overwrite:
                raise FileExistsError(
                    f"{path} already exists; pass overwrite=True to replace the model."
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            with open(staging / CENTERS_FILE, "wb") as f:
                np.savez(f, centers=self.centers)
                f.flush()
                os.fsync(f.fileno())
            metadata = self.to_dict()
            metadata["centers_sha256"] = _sha256(staging / CENTERS_FILE)
            with open(staging / MODEL_FILE, "w", encoding="utf-8") as f:
                json.dump(metadata, f, indent=2, allow_nan=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                retired = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
                os.replace(path, retired)
                os.replace(staging, path)
                shutil.rmtree(retired)
            else:
                os.replace(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return path


def load(path: str | os.PathLike) -> SegmentationModel:
    """Read a model directory written by :meth:`SegmentationModel.save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    SegmentationModel

    Raises
    ------
    FileNotFoundError
        When the directory, ``model.json`` or ``centers.npz`` is missing.
    ValueError
        When the model's format version is newer than this gpuseg reads, or a file is corrupt
        or does not match the other.

    Examples
    --------
    >>> model = load("models/2024-06")  # doctest: +SKIP
    >>> labels = model.predict(next_month)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"no model at {path}: it {what}; expected a directory with {MODEL_FILE} and "
            f"{CENTERS_FILE}."
        )
    meta_path, centers_path = path / MODEL_FILE, path / CENTERS_FILE
    for needed in (meta_path, centers_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing; the model directory is incomplete.")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_path} is not valid JSON: {exc}") from exc
    version = metadata.get("format_version") if isinstance(metadata, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{meta_path} has no valid format_version (got {version!r}).")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: model format version {version} is newer than this gpuseg "
            f"({FORMAT_VERSION}); upgrade gpuseg."
        )
    checksum = metadata.get("centers_sha256")
    if checksum is not None and checksum != _sha256(centers_path):
        raise ValueError(
            f"{centers_path} does not match {meta_path} (checksum differs); the model directory "
            "is corrupt or mixes two models."
        )
    try:
        with np.load(centers_path, allow_pickle=False) as npz:
            centers = npz["centers"]
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{centers_path} holds no readable 'centers' array: {exc}") from exc
    try:
        plan = FeaturePlan.from_dict(metadata["plan"])
        expected = (metadata["n_clusters"], metadata["n_features"])
        if centers.dtype != np.float64 or centers.shape != expected:
            raise ValueError(
                f"{centers_path} holds centers of shape {centers.shape} and dtype "
                f"{centers.dtype}; {meta_path} expects float64 {expected}."
            )
        sizes = metadata.get("cluster_sizes")
        return SegmentationModel(
            plan,
            centers,
            as_of=metadata.get("as_of"),
            seed=metadata.get("seed"),
            inertia=metadata.get("inertia"),
            cluster_sizes=None if sizes is None else np.asarray(sizes, dtype=np.int64),
            id_column=metadata.get("id_column"),
            created=metadata.get("created"),
            gpuseg_version=metadata.get("gpuseg_version"),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{meta_path} is not a complete gpuseg model: missing {exc}") from exc


def _iso(value: Any) -> str:
    """A date, datetime, Timestamp or string as an ISO string."""
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime.date, pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    raise ValueError(f"as_of={value!r} should be a date, a Timestamp or an ISO string.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gpuseg_version() -> str:
    import gpuseg  # late: gpuseg/__init__ may import this module

    return gpuseg.__version__

"""Generated benchmark data on disk: reused when a complete copy of the same data is there."""

from __future__ import annotations

import json
from pathlib import Path


def existing_copy(marker: Path, wanted: dict) -> dict | None:
    """The record in ``marker`` (written last by a generator) when it describes ``wanted``.

    ``None`` when there is no complete copy yet; ``SystemExit`` when the folder holds data made
    with other settings, which a run must not silently reuse.
    """
    if not marker.exists():
        return None
    about = json.loads(marker.read_text())
    found = {key: about.get(key) for key in wanted}
    if found != wanted:
        raise SystemExit(
            f"{marker.parent} holds data generated with {found}, not {wanted}; pass another "
            "--data or remove it."
        )
    return about

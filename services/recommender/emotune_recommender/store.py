"""Model versions on disk: ``<dir>/v<N>.pkl``, written atomically, the highest loaded at start-up."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path

from emotune_recommender.taste import TasteModel

VERSION = re.compile(r"^v(\d+)\.pkl$")


def versions(folder: Path) -> list[int]:
    if not Path(folder).is_dir():
        return []
    return sorted(int(m.group(1)) for p in Path(folder).iterdir() if (m := VERSION.match(p.name)))


def save(model: TasteModel, folder: Path) -> tuple[int, Path]:
    """Write the next version; a reader never sees a half-written file (write beside, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    version = (versions(folder) or [0])[-1] + 1
    path = folder / f"v{version}.pkl"
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".v", suffix=".tmp", delete=False) as f:
        pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        temporary = Path(f.name)
    os.replace(temporary, path)
    return version, path


def load_latest(folder: Path) -> tuple[int, TasteModel] | None:
    """The highest version in ``folder``, or None when there is none."""
    found = versions(folder)
    if not found:
        return None
    with open(Path(folder) / f"v{found[-1]}.pkl", "rb") as f:
        return found[-1], pickle.load(f)

"""The one object ``broker/`` calls for durability (design.md, "Layout")."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class Storage:
    """Owns the data directory. ``open()`` creates it (raises OSError when
    it cannot); ``close()`` releases it. Message persistence is not
    implemented yet: nothing is written besides the directory itself."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Nothing to flush yet."""

"""aprqa: is this converted model the same model, within what its dtype allows?"""

from __future__ import annotations

__version__ = "0.1.0"

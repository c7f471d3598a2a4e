"""The software a run used, recorded in its evidence so that any later report shows the versions
that produced the numbers (not the versions of whoever renders the report)."""

from __future__ import annotations

import json
import platform
from importlib import metadata

from .. import __version__

# the packages whose behaviour decides a measurement (readers, oracles, kernels)
_PACKAGES = ("numpy", "numba", "safetensors", "gguf", "tokenizers", "torch", "transformers", "llama-cpp-python")


def environment() -> dict[str, str]:
    """aprqa, Python and the installed versions of the packages above (absent ones left out)."""
    env = {"aprqa": __version__, "python": platform.python_version(),
           "platform": f"{platform.system()} {platform.release()} {platform.machine()}".strip()}
    for name in _PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return env


def environment_json() -> str:
    """``environment()`` as the JSON string a record's metadata holds (metadata values are strings)."""
    return json.dumps(environment(), sort_keys=True)

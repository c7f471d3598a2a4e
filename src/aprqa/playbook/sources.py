"""The source model of a run and its identity in the records.

Where it comes from, in this order: ``--model-path``; else the playbook's ``model.synthetic``
(generated under OUTPUT/model), ``model.local_path`` (relative to the playbook) or
``model.hf_repo`` (downloaded with huggingface_hub when it is installed and the network allows —
otherwise a PlaybookError naming ``--model-path``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..records import ModelRef
from ..synthetic import make_hf_model
from .schema import Playbook, PlaybookError

_DOWNLOADED = ["*.json", "*.safetensors", "*.gguf", "*.apr", "tokenizer*", "*.model", "*.txt"]


def model_ref(pb: Playbook, model_path: str | Path | None) -> ModelRef:
    """``scenario.model`` of the run's records (``variant`` is set per record: the target quantization)."""
    m = pb.model
    if model_path is not None:
        return ModelRef("local", Path(model_path).name, None)
    if m.synthetic:
        return ModelRef("aprqa-synthetic", m.synthetic, None)
    if m.hf_repo:
        org, _, name = m.hf_repo.partition("/")
        return ModelRef(org, name or org, None)
    return ModelRef("local", Path(m.local_path or "model").name, None)


def resolve_source(pb: Playbook, pb_path: Path, out: Path, model_path: str | Path | None) -> Path:
    """The source model's path (a synthetic model is generated now).

    Raises:
        PlaybookError: the path does not exist, or the hf_repo cannot be had (``download_hf_repo``).
    """
    m = pb.model
    if model_path is not None:
        p = Path(model_path)
    elif m.synthetic:
        return Path(make_hf_model(out / "model" / m.synthetic, m.synthetic, seed=m.synthetic_seed))
    elif m.local_path:
        p = Path(m.local_path)
        if not p.is_absolute():
            p = pb_path.parent / p
    else:
        p = download_hf_repo(m.hf_repo or "", pb_path)
    if not p.exists():
        raise PlaybookError(pb_path, f"model path {str(p)!r} does not exist", field="model")
    return p


def _hf_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def download_hf_repo(repo: str, pb_path: Path) -> Path:
    """Local directory of HuggingFace repo ``repo`` (``${VAR}`` read from the environment).

    Uses huggingface_hub's cache (``snapshot_download`` of config, tokenizer and weight files);
    with HF_HUB_OFFLINE set only the cache is consulted.

    Raises:
        PlaybookError: unresolved ``${VAR}``, huggingface_hub not installed, offline without a
            cached copy, or the download failed — each naming ``--model-path``.
    """
    fix = "pass --model-path DIR (a local copy of the repository)"
    expanded = os.path.expandvars(repo)
    if "$" in expanded:
        raise PlaybookError(pb_path, f"model.hf_repo {repo!r}: environment variable(s) "
                                     f"{', '.join(re.findall(r'[$][{]?([A-Za-z_][A-Za-z0-9_]*)', expanded))} not set; "
                                     f"set it or {fix}", field="model.hf_repo")
    try:
        import huggingface_hub  # optional dependency: only a playbook that downloads needs it
    except ImportError:
        raise PlaybookError(pb_path, f"model.hf_repo {expanded!r}: huggingface_hub is not installed, so aprqa "
                                     f"cannot download it; {fix}", field="model.hf_repo") from None
    offline = _hf_offline()
    try:
        path = huggingface_hub.snapshot_download(repo_id=expanded, local_files_only=offline,
                                                 allow_patterns=_DOWNLOADED)
    except Exception as err:  # offline, no network, unknown repo, gated repo
        how = "offline (HF_HUB_OFFLINE) and not in the local cache" if offline else "download failed"
        raise PlaybookError(pb_path, f"model.hf_repo {expanded!r}: {how}: {type(err).__name__}: "
                                     f"{str(err).splitlines()[0] if str(err) else ''}; {fix}",
                            field="model.hf_repo") from err
    return Path(path)

"""The source model of a run and its identity in the records.

Where it comes from, in this order: ``--model-path``; else the playbook's ``model.synthetic``
(generated under OUTPUT/model), ``model.local_path`` (relative to the playbook) or
``model.hf_repo`` (downloaded with huggingface_hub when it is installed and the network allows —
otherwise a PlaybookError naming ``--model-path``).
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import AprqaError
from ..formats import open_model
from ..formats.model import Model
from ..records import ModelRef
from ..synth.models import make_hf_model
from .plan import SourceFacts
from .schema import Playbook, PlaybookError

_DOWNLOADED = ["*.json", "*.safetensors", "*.gguf", "*.apr", "tokenizer*", "*.model", "*.txt"]


def model_ref(pb: Playbook, model_path: str | Path | None) -> ModelRef:
    """``scenario.model`` of the run's records (``variant`` is set per record: the target quantization).

    The playbook names the model (``hf_repo: Qwen/Qwen2.5-Coder-0.5B-Instruct`` → org ``Qwen``, name
    ``Qwen2.5-Coder-0.5B-Instruct``, as apr-qa's own evidence says) even when ``--model-path`` supplies a
    local copy of it, so both tools' evidence of one model aggregates; "local" only when the playbook
    names no repository.
    """
    m = pb.model
    repo = os.path.expandvars(m.hf_repo) if m.hf_repo else None
    if repo and "$" not in repo:
        org, _, name = repo.strip("/").partition("/")
        return ModelRef(org, name or org, None)
    if model_path is not None:
        return ModelRef("local", Path(model_path).name, None)
    if m.synthetic:
        return ModelRef("aprqa-synthetic", m.synthetic, None)
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


def planning_facts(pb: Playbook, pb_path: Path, model_path: str | Path | None) -> SourceFacts:
    """What ``--dry-run`` plans from: the facts of the model the run would open (``--model-path``,
    ``local_path``, a synthetic model generated into a temporary directory and removed, or an
    ``hf_repo`` already in huggingface_hub's cache), so the dry run lists the gates and Skipped reasons
    the run will; the playbook alone (``SourceFacts.assumed``) only when no such model is at hand.
    Nothing is downloaded or written beside the temporary synthetic model.
    """
    with planning_model(pb, pb_path, model_path) as model:
        return SourceFacts.from_model(pb, model) if model is not None else SourceFacts.assumed(pb, model_path)


@contextmanager
def planning_model(pb: Playbook, pb_path: Path, model_path: str | Path | None) -> Iterator[Model | None]:
    """The model a run of ``pb`` would open, opened (None when it is not at hand or cannot be opened:
    the run records why); see ``planning_facts``."""
    m = pb.model
    with tempfile.TemporaryDirectory(prefix="aprqa-plan-") as tmp:
        path: Path | None = None
        if model_path is not None:
            path = Path(model_path)
        elif m.synthetic:
            path = Path(make_hf_model(Path(tmp) / m.synthetic, m.synthetic, seed=m.synthetic_seed))
        elif m.local_path:
            path = Path(m.local_path) if Path(m.local_path).is_absolute() else pb_path.parent / m.local_path
        elif m.hf_repo:
            path = _cached_hf_repo(m.hf_repo)
        model = None
        if path is not None and path.exists():
            try:
                model = open_model(path)
            except AprqaError:
                model = None
        try:
            yield model
        finally:
            if model is not None:
                model.close()


def _cached_hf_repo(repo: str) -> Path | None:
    """The local snapshot of ``repo`` in huggingface_hub's cache, without touching the network."""
    try:
        import huggingface_hub
        return Path(huggingface_hub.snapshot_download(repo_id=os.path.expandvars(repo), local_files_only=True,
                                                      allow_patterns=_DOWNLOADED))
    except Exception:  # not installed, not cached, unresolved ${VAR}: plan from the playbook alone
        return None

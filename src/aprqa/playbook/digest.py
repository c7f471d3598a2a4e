"""sha256 of a model file or HF directory: the model's identity in every record
(``metadata.model_sha256``, which ``--resume`` matches) and the byte-identity test of F-CONV-IDEM-001.
The implementation is ``aprqa.fsio.digest`` (the report pages' provenance uses it too)."""

from __future__ import annotations

from ..fsio.digest import files_digest, sha256_file

__all__ = ["files_digest", "sha256_file"]

"""The default prompt of every output-level check (one definition: comparison and inference import it).

A leaf module: ``aprqa.comparison`` must reach it without loading the forward pass.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PROMPT"]

# Used when neither a prompt nor token ids are given: prose, code and arithmetic.
DEFAULT_PROMPT = ("The quick brown fox jumps over the lazy dog. Converted models must produce the same output "
                  "as the original.\ndef add(a, b):\n    return a + b\n2 + 2 equals 4. What is the capital of "
                  "France? Paris.")

"""The examples and exit codes every ``aprqa COMMAND --help`` ends with (data only: cli.py stays a parser)."""

from __future__ import annotations

EXIT_CODES = {
    "compare": "0 the candidate is the same model (PASS) · 1 it is not (FAIL) · 2 bad input or usage",
    "run": "0 every executed gate Corroborated · 1 a gate is not · 2 invalid playbook, missing model, no disk "
           "space · 130 interrupted (a zoo writes the summary of what ran)",
    "verify-evidence": "0 the evidence matches the playbook · 1 it does not · 2 bad input or usage",
}
_DEFAULT_EXIT = "0 done · 2 bad input or usage"

EXAMPLES = {
    "inspect": ["aprqa inspect model.gguf", "aprqa inspect hf-dir/ --tensors 'model.layers.0.*'",
                "aprqa inspect model.safetensors --json"],
    "convert": ["aprqa convert hf-dir/ model.q8_0.gguf --quant q8_0", "aprqa convert hf-dir/ model.apr --quant q4_k",
                "aprqa convert model.gguf back-to-hf/          # an HF directory"],
    "synth": ["aprqa synth qwen2-tiny qwen2-tiny/", "aprqa synth llama-tiny llama-f16/ --dtype f16 --seed 3"],
    "demo": ["aprqa demo", "aprqa demo --output /tmp/demo"],
    "generate": ["aprqa generate qwen2-tiny/ --prompt 'def add(a, b):' -n 8",
                 "aprqa generate model.gguf --ids '1 2 3' --json"],
    "compare": ["aprqa compare hf-dir/ model.q8_0.gguf                 # reference first, then the conversion",
                "aprqa compare hf-dir/ model.q8_0.gguf --fast          # tensors, config, tokenizer only",
                "aprqa compare hf-dir/ model.gguf --report report.html --json > report.json",
                "aprqa compare hf-dir/ model.gguf --locate             # first diverging block"],
    "run": ["aprqa run playbooks/demo.playbook.yaml --output demo-out",
            "aprqa run playbooks/demo.playbook.yaml --dry-run     # plan and peak disk, nothing run",
            "aprqa run playbooks/zoo --output zoo-out --workers 2  # a zoo",
            "aprqa run my.playbook.yaml --model-path ~/models/Qwen2.5-0.5B --keep-models"],
    "schema": ["aprqa schema > playbook.schema.json"],
    "verify-evidence": ["aprqa verify-evidence demo-out/evidence.json playbooks/demo.playbook.yaml"],
    "report": ["aprqa report demo-out/evidence.json", "aprqa report evidence.json --html run.html --md run.md"],
}


def epilog(command: str) -> str:
    lines = ["examples:"] + [f"  {e}" for e in EXAMPLES[command]]
    return "\n".join(lines + ["", f"exit codes: {EXIT_CODES.get(command, _DEFAULT_EXIT)}"])

"""What aprqa knows about each model family beyond tensor names: one ``ArchSpec`` per family.

``arch`` is the GGUF architecture name (``general.architecture``); it is also what
``ArchConfig.architecture`` holds for every format, so a GGUF and its HF source agree.
``model_type`` / ``hf_class`` are transformers' names; ``forward`` holds the facts a forward
pass needs. Families not listed here still get tensor names from gguf-py (``tensor_names``)
but no HF config and no forward pass: the converter and the forward pass refuse them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LLAMA_PREFIXES = ("model.layers.{bid}.", "model.embed_", "model.norm", "lm_head", "model.")
# Where gguf-py lists several spellings under the preferred prefix, transformers' one (each must be
# among gguf-py's candidates; tensor_names ignores one that is not, and a test checks the names
# against transformers' own state dicts).
DECODER_NAMES = (("blk.{bid}.attn_q_norm", "model.layers.{bid}.self_attn.q_norm"),
                 ("blk.{bid}.attn_k_norm", "model.layers.{bid}.self_attn.k_norm"))
PHI3_NAMES = DECODER_NAMES + (("blk.{bid}.attn_qkv", "model.layers.{bid}.self_attn.qkv_proj"),
                              ("blk.{bid}.ffn_up", "model.layers.{bid}.mlp.gate_up_proj"))
BERT_PREFIXES = ("encoder.layer.{bid}.", "embeddings.", "pooler.")
ROPE_PERMUTE = "rope-permute"
NORM_OFFSET = "gemma-norm-offset"  # llama.cpp writes gemma norms as 1 + w (HF keeps w)


@dataclass(frozen=True)
class ForwardFacts:
    """How one block computes (decoder families) — what differs from llama."""

    norm: str = "rms"  # "rms": x*w; "rms1p": x*(1+w) (gemma); "layer": LayerNorm with bias (bert)
    activation: str = "silu"  # HF hidden_act / hidden_activation
    gated_mlp: bool = True
    rope: str = "neox"  # HF rotate_half; None for encoders with learned positions
    embed_scale: bool = False  # gemma: embeddings times sqrt(hidden_size)
    qk_norm: bool = False
    sandwich_norms: bool = False  # gemma2/3: post-attention and post-ffn norms
    fused_qkv: bool = False  # phi3: qkv_proj / gate_up_proj
    causal: bool = True
    swa_period: int = 0  # of every N blocks the last attends globally, the others in a window; 0: none
    rope_theta_local: float | None = None  # the windowed blocks' RoPE base (their own, when the family has one)

    def windowed_layers(self, n_layers: int) -> tuple[int, ...]:
        """The blocks that attend in a sliding window (``windowed_layers(swa_period, n_layers)``)."""
        return windowed_layers(self.swa_period, n_layers)


def windowed_layers(period: int, n_layers: int) -> tuple[int, ...]:
    """llama.cpp's ``set_swa_pattern``: of every ``period`` blocks the last attends globally and the
    others in a window (gemma2: every other block from the first; gemma3: all but every sixth).
    A period of 0 or 1 windows none."""
    if period <= 1:
        return ()
    return tuple(i for i in range(n_layers) if i % period < period - 1)


@dataclass(frozen=True)
class ArchSpec:
    """One family: names in both ecosystems, the transforms converters apply, forward facts.

    Attributes:
        arch: GGUF architecture name.
        model_type: transformers' config ``model_type``.
        hf_class: transformers' class for a causal LM (or the encoder class).
        hf_prefixes: preferred HF name prefixes when gguf-py lists several spellings.
        hf_names: (GGUF template, HF template) choices among gguf-py's spellings.
        gguf_tensor_arch: the GGUF arch whose tensor table applies (mistral is written as llama).
        rope_permuted: llama.cpp permutes Q/K rows for its adjacent-pair RoPE.
        norm_offset: llama.cpp stores every ``*norm.weight`` as w + this (gemma: 1.0).
        hf_config: extra config.json keys a converter writes (fixed facts of the family).
        config_complete: the converter maps this family's config completely (it may write one).
        model_types: other transformers model_type spellings of this family.
    """

    arch: str
    model_type: str
    hf_class: str
    forward: ForwardFacts = field(default_factory=ForwardFacts)
    hf_prefixes: tuple[str, ...] = LLAMA_PREFIXES
    hf_names: tuple[tuple[str, str], ...] = DECODER_NAMES
    gguf_tensor_arch: str | None = None
    rope_permuted: bool = False
    norm_offset: float = 0.0
    hf_config: dict = field(default_factory=dict)
    config_complete: bool = True
    model_types: tuple[str, ...] = ()

    @property
    def tensor_arch(self) -> str:
        return self.gguf_tensor_arch or self.arch

    @property
    def transforms(self) -> tuple[str, ...]:
        """Names of the transforms llama.cpp's converter applies for this family."""
        out = []
        if self.rope_permuted:
            out.append(ROPE_PERMUTE)
        if self.norm_offset:
            out.append(NORM_OFFSET)
        return tuple(out)


_GEMMA = ForwardFacts(norm="rms1p", activation="gelu_pytorch_tanh", embed_scale=True)

FAMILIES: dict[str, ArchSpec] = {s.arch: s for s in (
    ArchSpec("llama", "llama", "LlamaForCausalLM", rope_permuted=True),
    ArchSpec("mistral", "mistral", "MistralForCausalLM", gguf_tensor_arch="llama", rope_permuted=True),
    ArchSpec("qwen2", "qwen2", "Qwen2ForCausalLM", hf_config={"attention_bias": True}),
    ArchSpec("qwen3", "qwen3", "Qwen3ForCausalLM", forward=ForwardFacts(qk_norm=True)),
    ArchSpec("gemma", "gemma", "GemmaForCausalLM", forward=_GEMMA, norm_offset=1.0),
    # gemma2/3: llama.cpp's and transformers' default window patterns; gemma3's windowed blocks rotate
    # with their own base (transformers' rope_local_base_freq default, llama.cpp's freq_base_swa).
    ArchSpec("gemma2", "gemma2", "Gemma2ForCausalLM", norm_offset=1.0,
             forward=ForwardFacts(norm="rms1p", activation="gelu_pytorch_tanh", embed_scale=True,
                                  sandwich_norms=True, swa_period=2)),
    ArchSpec("gemma3", "gemma3_text", "Gemma3ForCausalLM", norm_offset=1.0, model_types=("gemma3",),
             forward=ForwardFacts(norm="rms1p", activation="gelu_pytorch_tanh", embed_scale=True,
                                  sandwich_norms=True, qk_norm=True, swa_period=6, rope_theta_local=10000.0)),
    ArchSpec("phi3", "phi3", "Phi3ForCausalLM", forward=ForwardFacts(fused_qkv=True), hf_names=PHI3_NAMES),
    ArchSpec("bert", "bert", "BertModel", hf_prefixes=BERT_PREFIXES, hf_names=(), config_complete=False,
             forward=ForwardFacts(norm="layer", activation="gelu", gated_mlp=False, rope="", causal=False)),
)}

_BY_MODEL_TYPE = {mt: s for s in FAMILIES.values() for mt in (s.model_type, *s.model_types)}


def family(arch: str | None) -> ArchSpec | None:
    """The spec of a GGUF architecture name or a transformers model_type (None when unlisted)."""
    if not arch:
        return None
    return FAMILIES.get(arch) or _BY_MODEL_TYPE.get(arch)


def arch_name(name: str | None) -> str | None:
    """The GGUF architecture name of a model_type (or arch) name; unlisted names pass through."""
    spec = family(name)
    return spec.arch if spec is not None else name

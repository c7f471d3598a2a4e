"""llama.cpp's BPE pre-tokenizers as data: which split rules each ``tokenizer.ggml.pre`` name selects.

Facts read from llama.cpp's vocabulary loader (llama-vocab.cpp, the version vendored by
llama-cpp-python 0.3.36) and from the pre-tokenizer detection of its converter
(convert_hf_to_gguf.py): no code of theirs, only the names, the regexes and the hashes.

* ``_SPLITS``: llama.cpp's pre-tokenizer type -> the regexes it applies in order (each one
  isolates its matches inside the pieces the previous one produced). Types with the same rules
  share an entry through ``_SAME_SPLITS``.
* ``LLAMA_CPP_NAMES``: every ``tokenizer.ggml.pre`` string llama.cpp accepts -> (its type,
  whether llama.cpp sets ``ignore_merges`` for it). Any other string makes llama.cpp refuse
  the file ("unknown pre-tokenizer type").
* ``CHECK_HASHES``: sha256 of ``str(ids)`` of the converter's check text, tokenized by a known
  model's tokenizer -> the name the converter writes for it.
"""

# ruff: noqa: E501  (regexes and hashes are kept on one line each)

_SPLITS = {
    # llama3, dbrx, smaug, chatglm4
    'llama3': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # jais2
    'jais2': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}",),
    # deepseek_llm
    'deepseek_llm': ('[\r\n]', r'\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+', r'\s?[!-/:-~！-／：-～‘-‟　-。]+', r'\s+$', '[一-龥ࠀ-一가-퟿]+', r'\p{N}+'),
    # deepseek3_llm, hunyuan_dense, joyai_llm, hy_v4
    'deepseek3_llm': (r'\p{N}{1,3}', '[一-龥぀-ゟ゠-ヿ]+', '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+'),
    # spark2_5
    'spark2_5': (r'\p{N}{1,3}', '[一-龥぀-ゟ゠-ヿ]+', '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+', r'\p{N}'),
    # youtu
    'youtu': ('[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+', r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # deepseek_coder
    'deepseek_coder': ('[\r\n]', r'\s?\p{L}+', r'\s?\p{P}+', '[一-龥ࠀ-一가-퟿]+', r'\p{N}'),
    # falcon
    'falcon': (r'[\p{P}\$\+<=>\^~\|`]+', r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)", '[0-9][0-9][0-9]'),
    # starcoder, refact, command_r, smollm, codeshell, exaone, minerva, mellum2
    'starcoder': (r'\p{N}', r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"),
    # gpt2, mpt, olmo, jais, trillion, granite_docling
    'gpt2': (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",),
    # stablelm2, qwen2, hunyuan, solar_open, grok_2
    'stablelm2': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # qwen35
    'qwen35': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # poro, bloom, gpt3_finnish
    'poro': (r' ?[^(\s|.,!?…。，、।۔،)]+',),
    # viking
    'viking': (r' ?[^(\s|.,!?…。，、।۔،)]+', r'\p{N}'),
    # tekken
    'tekken': (r'[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+',),
    # chameleon
    'chameleon': ('<sentinel:[0-9]+>', '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z', r'([\t\n]|    |  )', r'\p{N}', r'[\p{P}!-/:-@\[-`{-~]', r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"),
    # gpt4o, minimax_m2
    'gpt4o': (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # granite_emb_multi
    'granite_emb_multi': (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # tiny_aya
    'tiny_aya': (r'\d{1,3}(?=(?:\d{3})*\b)', r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # kimi_k2
    'kimi_k2': (r'\p{Han}+',),
    # superbpe
    'superbpe': (r'\p{N}+', r'(?=(\d{3})+(?!\d))'),
    # bailingmoe
    'bailingmoe': (r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",),
    # seed_coder
    'seed_coder': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+",),
    # ufakzeka
    'ufakzeka': (r'[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+',),
    # afmoe
    'afmoe': (r'\p{AFMoE_digits}', '[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+', '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+'),
    # laguna
    'laguna': (r'[^\n]+|[\n]+', r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # exaone_moe
    'exaone_moe': (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",),
    # gemma4, sarvam_moe (not byte-level)
    'gemma4': (r'[^\n]+|[\n]+',),
    # minicpm5
    'minicpm5': (r'\p{N}{1,3}', r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # whitespace (not byte-level)
    'whitespace': (r'\S+',),
    # default
    'default': (r'[\p{P}\$\+<=>\^~\|]+', r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)", r'\p{N}+', '[0-9][0-9][0-9]'),
}

# Two of llama.cpp's splits look ahead to the end of a digit run from every position inside it: time
# quadratic in the run's length (seconds on a few thousand digits). Each is run as a split with the
# same pieces whose look-ahead is tried once per run: anchored at the run's start by (?<!\d), later
# groups continue from the previous match (\G, or right after a \d); (regex, tokenizers behavior).
# tests/engines/test_pretokenizer_digits.py checks them against the original ones.
_LINEAR_SPLITS = {
    # superbpe: empty matches before every right-aligned group of three digits. Matching the groups
    # themselves and merging each with the text after it (merged_with_next) cuts at the same places.
    r'(?=(\d{3})+(?!\d))': (r'(?<!\d)(?:\d{1,2})?(?=(?:\d{3})+(?!\d))\K\d{3}|(?<=\d)\d{3}', 'merged_with_next'),
    # tiny_aya: right-aligned groups of 1-3 digits, only in a run that ends at a word boundary.
    r'\d{1,3}(?=(?:\d{3})*\b)': (r'(?<!\d)\d{1,3}(?=(?:\d{3})*\b)|\G(?<=\d)\d{3}', 'isolated'),
}

_SAME_SPLITS = {
    'dbrx': 'llama3', 'smaug': 'llama3', 'chatglm4': 'llama3', 'hunyuan_dense': 'deepseek3_llm',
    'joyai_llm': 'deepseek3_llm', 'hy_v4': 'deepseek3_llm', 'refact': 'starcoder', 'command_r': 'starcoder',
    'smollm': 'starcoder', 'codeshell': 'starcoder', 'exaone': 'starcoder', 'minerva': 'starcoder',
    'mellum2': 'starcoder', 'mpt': 'gpt2', 'olmo': 'gpt2', 'jais': 'gpt2', 'trillion': 'gpt2',
    'granite_docling': 'gpt2', 'qwen2': 'stablelm2', 'hunyuan': 'stablelm2', 'solar_open': 'stablelm2',
    'grok_2': 'stablelm2', 'bloom': 'poro', 'gpt3_finnish': 'poro', 'minimax_m2': 'gpt4o', 'sarvam_moe': 'gemma4',
}

LLAMA_CPP_NAMES: dict[str, tuple[str, bool]] = {
    'default': ('default', False), 'minicpm5': ('minicpm5', True), 'llama3': ('llama3', True),
    'llama-v3': ('llama3', True), 'llama-bpe': ('llama3', True), 'falcon3': ('llama3', True),
    'falcon-h1': ('llama3', True), 'pixtral': ('llama3', True), 'midm-2.0': ('llama3', True),
    'lfm2': ('llama3', True), 'jina-v5-nano': ('llama3', True), 'deepseek-llm': ('deepseek_llm', False),
    'deepseek-coder': ('deepseek_coder', False), 'deepseek-v3': ('deepseek3_llm', False),
    'spark2_5': ('spark2_5', False), 'youtu': ('youtu', True), 'falcon': ('falcon', False), 'mpt': ('mpt', False),
    'starcoder': ('starcoder', False), 'gpt-2': ('gpt2', False), 'phi-2': ('gpt2', False),
    'jina-es': ('gpt2', False), 'jina-de': ('gpt2', False), 'gigachat': ('gpt2', False),
    'jina-v2-es': ('gpt2', False), 'jina-v2-de': ('gpt2', False), 'a.x-4.0': ('gpt2', False),
    'mellum': ('gpt2', False), 'modern-bert': ('gpt2', False), 'jais-2': ('jais2', False),
    'gemma4': ('gemma4', False), 'granite-embed-multi-311m': ('gemma4', False), 'sarvam-moe': ('sarvam_moe', False),
    'jina-v1-en': ('gpt2', False), 'jina-v2-code': ('gpt2', False), 'roberta-bpe': ('gpt2', False),
    'whitespace': ('whitespace', False), 'refact': ('refact', False), 'command-r': ('command_r', False),
    'qwen2': ('qwen2', False), 'deepseek-r1-qwen': ('qwen2', False), 'kormo': ('qwen2', False),
    'f2llmv2': ('qwen2', False), 'qwen35': ('qwen35', False), 'stablelm2': ('stablelm2', False),
    'olmo': ('olmo', False), 'dbrx': ('dbrx', False), 'smaug-bpe': ('smaug', False), 'poro-chat': ('poro', False),
    'chatglm-bpe': ('chatglm4', False), 'glm4': ('chatglm4', True), 'glm5': ('chatglm4', True),
    'viking': ('viking', False), 'jais': ('jais', False), 'tekken': ('tekken', True), 'smollm': ('smollm', False),
    'codeshell': ('codeshell', False), 'bloom': ('bloom', False), 'gpt3-finnish': ('gpt3_finnish', False),
    'exaone': ('exaone', False), 'exaone4': ('gpt2', False), 'exaone-moe': ('exaone_moe', False),
    'chameleon': ('chameleon', False), 'minerva-7b': ('minerva', False), 'megrez': ('qwen2', False),
    'gpt-4o': ('gpt4o', False), 'llama4': ('gpt4o', False), 'kanana2': ('gpt4o', False), 'talkie': ('gpt4o', False),
    'granite-embed-multi-97m': ('granite_emb_multi', True), 'tiny_aya': ('tiny_aya', False),
    'cohere2moe': ('tiny_aya', False), 'superbpe': ('superbpe', False), 'trillion': ('trillion', False),
    'granite-docling': ('granite_docling', False), 'bailingmoe': ('bailingmoe', False),
    'bailingmoe2': ('bailingmoe', False), 'llada-moe': ('bailingmoe', False), 'seed-coder': ('seed_coder', False),
    'hunyuan': ('hunyuan', False), 'hunyuan-dense': ('hunyuan_dense', False), 'hy_v4': ('hy_v4', False),
    'joyai-llm': ('joyai_llm', False), 'kimi-k2': ('kimi_k2', False), 'ufakzeka': ('ufakzeka', False),
    'grok-2': ('grok_2', False), 'afmoe': ('afmoe', False), 'laguna': ('laguna', False),
    'minimax-m2': ('minimax_m2', False), 'solar-open': ('solar_open', False), 'mellum2': ('mellum2', False),
}

CHECK_HASHES: dict[str, str] = {
    "b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b": 'chatglm-bpe',
    "81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516": 'chatglm-bpe',
    "a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2": 'glm4',
    "9ca2dd618e8afaf09731a7cf6e2105b373ba6a1821559f258b272fe83e6eb902": 'glm4',
    "cdf5f35325780597efd76153d4d1c16778f766173908894c04afc20108536267": 'glm4',
    "1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35": 'minerva-7b',
    "7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664": 'hunyuan',
    "bba3b3366b646dbdded5dbc42d59598b849371afc42f7beafa914afaa5b70aa6": 'hunyuan-dense',
    "e6ddf9c6686791c12d698d34c31ab9be1fea9af5a3d9a6909783ab382198ae1c": 'hy_v4',
    "a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6": 'falcon-h1',
    "60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86": 'falcon-h1',
    "3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896": 'falcon-h1',
    "48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b": 'falcon-h1',
    "81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890": 'kimi-k2',
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": 'qwen2',
    "1444df51289cfa8063b96f0e62b1125440111bc79a52003ea14b6eac7016fd5f": 'qwen35',
    "66b8d4e19ab16c3bfd89bce5d785fb7e0155e8648708a1f42077cb9fe002c273": 'grok-2',
    "b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df": 'jina-v2-de',
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": 'gpt-2',
    "9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7": 'lfm2',
    "846deafc5b0fa786186fa4ae6c7b49903cf2f1d1895bdb80b9120d60be135252": 'gemma4',
    "0a766d034107bc736a3f2dc4968fd62e54a3570f1454443e0c5a4cc6bd7941ed": 'spark2_5',
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": 'llama-bpe',
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": 'deepseek-llm',
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": 'deepseek-coder',
    "8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed": 'falcon',
    "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f": 'bert-bge',
    "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": 'falcon3',
    "8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7": 'bert-bge-large',
    "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166": 'mpt',
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": 'starcoder',
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": 'gpt-2',
    "32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3": 'stablelm2',
    "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": 'refact',
    "9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8": 'command-r',
    "d772b220ace2baec124bed8cfafce0ead7d6c38a4b65ef11261cf9d5d62246d1": 'tiny_aya',
    "52df12b4c8d4176e7481aab4b6e8454d1fd0a210a04a574f6d4e067d10e23c3e": 'cohere2moe',
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": 'qwen2',
    "a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e": 'dbrx',
    "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448": 'jina-v1-en',
    "171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643": 'jina-v2-es',
    "27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6": 'jina-v2-de',
    "a023e9fdc5a11f034d3ef515b92350e56fb2af1f66c6b6811a4444ea9bf8763d": 'jina-v5-nano',
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": 'smaug-bpe',
    "c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360": 'poro-chat',
    "7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a": 'jina-v2-code',
    "7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee": 'viking',
    "b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901": 'jais',
    "bc5108ee1eb6a3d600cadd065f63190fbd0554dbc9e4bbd6a0d977970afc8d2a": 'jais-2',
    "7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f": 'codeshell',
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": 'tekken',
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": 'smollm',
    "3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7": 'bloom',
    "bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21": 'gpt3-finnish',
    "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae": 'exaone',
    "fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085": 'phi-2',
    "60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450": 'chameleon',
    "8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65": 'roberta-bpe',
    "ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb": 'gigachat',
    "d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1": 'megrez',
    "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5": 'deepseek-v3',
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": 'deepseek-r1-qwen',
    "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": 'gpt-4o',
    "7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f": 'superbpe',
    "1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15": 'trillion',
    "96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224": 'bailingmoe',
    "d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406": 'llama4',
    "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": 'pixtral',
    "d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec": 'seed-coder',
    "b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf": 'a.x-4.0',
    "f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4": 'midm-2.0',
    "169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51": 'lfm2',
    "2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb": 'exaone4',
    "a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756": 'mellum',
    "a0b64b4385f123663873756336c085744376d015ff328bb1d901598f63c44152": 'modern-bert',
    "49fc0303c9e0d2c2c565c510f64b2d9b271276acdcdadff733249eda9f7d59df": 'afmoe',
    "9b1be57e70d20d9501b2b3186e792d81181ae36ada3903c26f9fea418cf87206": 'bailingmoe2',
    "53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e": 'granite-docling',
    "f4f37b6c8eb9ea29b3eac6bb8c8487c5ab7885f8d8022e67edc1c68ce8403e95": 'minimax-m2',
    "4a2e2abae11ca2b86d570fc5b44be4d5eb5e72cc8f22dd136a94b37da83ab665": 'kormo',
    "9d70134b369a70e5735009b6de918f7581b5211f7c074d1f89f753aea8248af1": 'youtu',
    "16389f0a1f51ee53e562ffd51c371dc508639ab0e4261502071836e50e223e91": 'solar-open',
    "6c81ce329e0802883b22eabab0d3fa48357337ef1ecb45443828bf1f6254833f": 'exaone-moe',
    "d30d75d9059f1aa2c19359de71047b3ae408c70875e8a3ccf8c5fba56c9d8af4": 'qwen35',
    "b4b8ca1f9769494fbd956ebc4c249de6131fb277a4a3345a7a92c7dd7a55808d": 'joyai-llm',
    "e4d54df1ebc1f2b91acd986c5b51aa50837d5faf7c7398e73c1f9e9ee5d19869": 'kanana2',
    "862f827721df956049dff5ca81a57f29e575280bc622e290d3bf4e35eca29015": 'f2llmv2',
    "62f6fb0a6fd5098caeabb19b07a5c1099cafc8b9c40eab6ea89ece4ec02fbc57": 'sarvam-moe',
    "f728162c1315c26e40249849799b4ba3fe584c32084b4795b03eb295e63cb5af": 'talkie',
    "36f3066e97b7f3994b379aaacde306c1444c6ae84e81a5ae3cd2b7ed3b8c42d4": 'minicpm5',
    "f241072145675bf8322086f115aebad05e9f869557a238bf2150a2a417d1bf60": 'granite-embed-multi-97m',
    "789696f5946cc0fc59371f39f6097cafed196b3acded6140432f26bbb1ae1669": 'granite-embed-multi-311m',
    "9dcf830ee9990cdbf78cc523a5f7bd9ad8f3f9890c2d3581d2785ad10f07049d": 'mellum2',
    "972da7b59cec44d1f0a490a86c96df53859e486e481563e5dddac155013d87ac": 'laguna',
    "653660222fb704f61cbf2b618a8ae6502b7f8b20c980f9a5de07ed78e13319cd": 'ufakzeka',
}

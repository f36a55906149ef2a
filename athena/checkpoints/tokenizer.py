"""The tiny checkpoints' tokenizer: a byte-level BPE shaped like the GPT-NeoX/OLMo one, its
merges learnt from a fixed built-in corpus."""

from __future__ import annotations

import functools
import json
from typing import Any

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
# 62 merges make 320 tokens (a multiple of 64, as real vocabularies are padded): each token
# costs 2 * hidden parameters (embedding + lm_head), so tiny (hidden 64) grows by 3%.
NUM_MERGES = 62
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256 + NUM_MERGES

# The text the merges are learnt from (plain ASCII English, so every merged token is printable
# and accented letters or emoji stay split across byte tokens, as rare characters are in real
# vocabularies). Changing it changes every generated checkpoint.
CORPUS = """\
The quick brown fox jumps over the lazy dog. Once upon a time, in a small town by the sea,
there lived a model that could remember what it had read. It was made of many experts, and
each expert knew a little about the world. When a word came in, the router sent it to the
experts that knew it best, and they wrote what they thought into the memory. The memory was
not large, so the model had to learn what to keep and what to forget. Some days it kept the
names of the ships in the harbour; other days it kept the weather, the price of bread, or the
way the light fell on the water in the evening. The people of the town came to ask it
questions, and it answered them as well as it could. This is a story about memory and about
the mixture of experts that made it.
"""


def json_bytes(value: Any) -> bytes:
    """`value` as indented JSON text with a final newline, as the hub's files are."""
    return (json.dumps(value, indent=2) + "\n").encode()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what tokenizers' ByteLevel uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    others = [b for b in range(256) if b not in printable]  # shifted past 255, in order
    return {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(others)}


@functools.cache
def bpe_merges() -> tuple[tuple[str, str], ...]:
    """NUM_MERGES byte-level BPE merges learnt from CORPUS, deterministically: split as the
    tokenizer does, then merge the most frequent adjacent pair (ties: the smallest) again."""
    from collections import Counter
    from itertools import pairwise

    from tokenizers import pre_tokenizers

    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    text = " ".join(CORPUS.split())  # one paragraph: a word after a line break is rare
    words = Counter(word for word, _ in split.pre_tokenize_str(text))
    pieces = {word: list(word) for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < NUM_MERGES:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in pairwise(pieces[word]):
                pairs[pair] += count
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for symbols in pieces.values():  # left to right, each pair merged once
            i = 0
            while i + 1 < len(symbols):
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
                i += 1
    return tuple(merges)


def tokenizer_files() -> dict[str, bytes]:
    """tokenizer.json (the GPT-NeoX/OLMo layout: ByteLevel pre-tokenizer and decoder, BPE
    model), tokenizer_config.json and special_tokens_map.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for byte, char in sorted(_bytes_to_unicode().items()):
        vocab[char] = len(SPECIAL_TOKENS) + byte
    merges = list(bpe_merges())
    for left, right in merges:
        vocab[left + right] = len(vocab)
    assert len(vocab) == VOCAB_SIZE, "a merge repeated a token"
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    special = {"eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    return {
        "tokenizer.json": tokenizer.to_str(pretty=True).encode(),
        "tokenizer_config.json": json_bytes(tokenizer_config),
        "special_tokens_map.json": json_bytes(special),
    }

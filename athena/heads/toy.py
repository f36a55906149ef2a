"""A toy memory-action task (tests and the guide): each state is words from the vocabulary of
one action (0 store, 1 retrieve, 2 update, 3 forget); `reward` is 1.0 for it, else 0.0."""

from __future__ import annotations

import random

WORDS = (
    ("note", "save", "keep", "store", "record", "write"),
    ("recall", "find", "fetch", "lookup", "search", "get"),
    ("edit", "change", "fix", "amend", "revise", "update"),
    ("drop", "erase", "delete", "clear", "purge", "forget"),
)
_LABEL = {word: action for action, words in enumerate(WORDS) for word in words}


def states(count: int, seed: int = 0, words_per_state: int = 8) -> list[str]:
    """`count` states, cycling through the four actions, each `words_per_state` words."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS[i % len(WORDS)]) for _ in range(words_per_state))
        for i in range(count)
    ]


def label(text: str) -> int:
    """The right action for a toy state (the vocabulary of its first word)."""
    first = text.split()[0] if text.split() else ""
    if first not in _LABEL:
        raise ValueError(f"{text!r} is not a toy state (its first word is not in toy.WORDS)")
    return _LABEL[first]


def reward(text: str, action: int) -> float:
    return 1.0 if action == label(text) else 0.0

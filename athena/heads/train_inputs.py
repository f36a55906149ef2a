"""The inputs of `athena train-head`: the states JSONL (--data, --eval-data) and the reward
(--reward: "module:function", "path/to/file.py:function" or a .jsonl table of rewards)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

from athena.heads.grpo import Reward, TrainError


def read_states(path: str | os.PathLike[str], what: str = "--data") -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, each with a non-empty "text" (blank lines skipped)."""
    source = Path(path)
    if not source.is_file():
        raise TrainError(f'{what} {source} not found; pass a JSONL file of {{"text": ...}} lines')
    records: list[dict[str, Any]] = []
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TrainError(f"{what} {source} cannot be read as UTF-8 text ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TrainError(
                f"{source} line {number} is not JSON ({error.msg}); each line must be an "
                'object like {"text": "..."}'
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise TrainError(
                f'{source} line {number} has no "text" string; each line must be an object '
                'like {"text": "..."}'
            )
        if not record["text"].strip():
            raise TrainError(f'{source} line {number} has an empty "text"; remove the line')
        records.append(record)
    if not records:
        raise TrainError(f'{source} has no states; add lines like {{"text": "..."}}')
    return records


def load_reward(spec: str, num_actions: int) -> Reward:
    """The reward named by `spec`: "module:function" (the file module.py in the current
    folder, or "path/to/file.py", is loaded by its path, without putting its folder on
    sys.path; else an importable module), or a .jsonl table of rewards."""
    if spec.endswith(".jsonl") or (":" not in spec and Path(spec).exists()):
        return _reward_table(spec, num_actions)
    module_name, _, function_name = spec.rpartition(":")
    if not module_name or not function_name:
        raise TrainError(
            f"--reward {spec!r} is neither module:function (e.g. mypkg.rewards:score or "
            "rewards.py:score) nor a .jsonl file of rewards"
        )
    file = Path(module_name if module_name.endswith(".py") else module_name + ".py")
    try:
        if file.is_file():
            found = importlib.util.spec_from_file_location(f"athena_reward_{file.stem}", file)
            assert found is not None and found.loader is not None
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise TrainError(
            f"reward module {module_name!r} not found ({error}); name its file "
            "(path/to/rewards.py:function) or install it"
        ) from None
    except Exception as error:  # the user's module failed while importing
        raise TrainError(
            f"importing the reward module {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TrainError(
            f"reward module {module_name!r} has no function {function_name!r}; name a "
            "function(state_text, action) -> float"
        )
    reward: Reward = function
    return reward


def _reward_table(path: str, num_actions: int) -> Reward:
    table: dict[str, list[float]] = {}
    for index, record in enumerate(read_states(path, what="--reward"), start=1):
        rewards = record.get("rewards")
        ok = isinstance(rewards, list) and len(rewards) == num_actions
        if not ok or not all(_is_number(r) for r in rewards):  # type: ignore[union-attr]
            raise TrainError(
                f'{path} record {index} needs "rewards": a list of {num_actions} numbers '
                "(one per action)"
            )
        table[record["text"]] = [float(r) for r in rewards]  # type: ignore[union-attr]

    def reward(text: str, action: int) -> float:
        if text not in table:
            raise KeyError(f"no line for this state in {path}")
        return table[text][action]

    return reward


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

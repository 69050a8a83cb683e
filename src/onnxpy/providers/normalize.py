"""Checking the ``providers`` / ``provider_options`` arguments the way onnxruntime documents.

``providers`` is a sequence whose items are a provider name or a ``(name, options)`` pair;
``provider_options``, when given, is a sequence of one dict per provider (and then no item may
be a pair). Options come back as ``{str: str}``; a provider named twice is kept once (the first
time) with a warning, and a provider that is not available is kept with a warning (the session
then falls back, as onnxruntime's does).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_and_normalize_provider_args"]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _options(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict of provider options, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


def check_and_normalize_provider_args(
    providers: Sequence[Any] | None,
    provider_options: Sequence[Mapping[Any, Any]] | None,
    available_provider_names: Sequence[str],
) -> tuple[list[str], list[dict[str, str]]]:
    """Validate and normalize provider arguments into (names, one options dict per name).

    Raises ValueError for a malformed argument.
    """
    if providers is None:
        return [], []
    if not _is_sequence(providers):
        raise ValueError(f"providers must be a list or tuple, got {type(providers).__name__}")
    if provider_options is not None:
        if not _is_sequence(provider_options):
            raise ValueError(
                f"provider_options must be a list or tuple, got {type(provider_options).__name__}"
            )
        if len(provider_options) != len(providers):
            raise ValueError(
                f"provider_options has {len(provider_options)} entries for "
                f"{len(providers)} providers; give one dict per provider"
            )
    pairs: list[tuple[str, dict[str, str]]] = []
    for i, item in enumerate(providers):
        if isinstance(item, str):
            given = provider_options[i] if provider_options is not None else {}
            pairs.append((item, _options(given, f"provider_options[{i}]")))
        elif _is_sequence(item) and len(item) == 2 and isinstance(item[0], str):
            if provider_options is not None:
                raise ValueError(
                    f"providers[{i}] carries its own options, so provider_options must be None"
                )
            pairs.append((item[0], _options(item[1], f"options of providers[{i}]")))
        else:
            raise ValueError(
                f"providers[{i}] must be a provider name or a (name, options dict) pair, "
                f"got {item!r}"
            )
    names: list[str] = []
    options: list[dict[str, str]] = []
    for name, opts in pairs:
        if name in names:
            warnings.warn(
                f"Provider '{name}' is given more than once; the first one is used",
                UserWarning,
                stacklevel=2,
            )
            continue
        if name not in available_provider_names:
            warnings.warn(
                f"Specified provider '{name}' is not in available provider names. "
                f"Available providers: '{', '.join(available_provider_names)}'",
                UserWarning,
                stacklevel=2,
            )
        names.append(name)
        options.append(opts)
    return names, options

"""Comparison of JSON run records (training config.json, erasure manifest.json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def record_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Human-readable differences "key: old -> new" between two records, sorted by key.

    Nested mappings one level deep are compared field by field ("section.field: a -> b").
    """
    skip = set(ignore)
    diffs = []
    for key in sorted((set(old) | set(new)) - skip):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += [
                f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs

"""Feature fingerprints: refuse to compare features from different feature spaces.

A fingerprint names one exact feature space (encoder weights, preprocessing, pooling). Ratios
such as SW(gen, train) / SW(val, train) are meaningful only if every set, and any stored
floor, was extracted in the same space; a silent mismatch would yield a plausible wrong number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class FingerprintMismatchError(ValueError):
    """Feature sets (or stored floors) for one encoder come from different feature spaces."""


def check_fingerprints(fingerprints: Mapping[str, Mapping[str, str]], names: Iterable[str]) -> None:
    """Check that, for every encoder in ``names``, all roles record the same fingerprint.

    ``fingerprints`` maps a role (``"gen"``, ``"train"``, ``"val"``, ``"floors"``, ...) to
    ``{encoder: fingerprint}``. A role that is given but lacks an encoder is an error too:
    its features cannot be vouched for.
    """
    if not isinstance(fingerprints, Mapping):
        raise TypeError(
            f"fingerprints must be a mapping role -> {{encoder: fingerprint}}, got {type(fingerprints).__name__}"
        )
    for name in names:
        seen: dict[str, str] = {}
        for role, table in fingerprints.items():
            if name not in table:
                raise FingerprintMismatchError(
                    f"encoder {name!r}: no fingerprint recorded for the {role!r} features "
                    f"(recorded: {sorted(table)}); re-extract them with the current battery"
                )
            seen[role] = str(table[name])
        if len(set(seen.values())) > 1:
            detail = ", ".join(f"{role}={fp}" for role, fp in seen.items())
            raise FingerprintMismatchError(
                f"encoder {name!r}: feature fingerprints differ ({detail}); the sets were "
                "extracted with different encoder weights or preprocessing and cannot be "
                "compared; re-extract the stale set (or recompute the floors)"
            )

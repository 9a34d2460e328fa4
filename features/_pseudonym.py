"""Keyed, irreversible pseudonyms for CPR numbers (HMAC-SHA256).

The key is held outside the repository: a key file or the environment variable
``OVERBLIK_PSEUDONYM_KEY``. The only key in the code is :data:`DEMO_KEY`, and everything
made with it is marked as demo data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from overblik.features._cpr_text import CPR_SHAPE
from overblik.features._errors import InputError

KEY_ENV = "OVERBLIK_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
DEMO_KEY = b"overblik-demo-key--synthetic-data-only"
# Pseudonyms are written with letters only, so that no pseudonym can ever look like a CPR
# number (DDMMYY-SSSS or ten digits) to a privacy scan.
_LETTERS = bytes.maketrans(b"0123456789abcdef", b"abcdefghijklmnop")
PSEUDONYM_LENGTH = 32


class MissingKeyError(InputError):
    """No usable pseudonymisation key."""


@dataclass(frozen=True)
class PseudonymKey:
    """A pseudonymisation key and whether it is the public demo key."""

    secret: bytes
    is_demo: bool

    @property
    def fingerprint(self) -> str:
        """A short non-secret id of the key (to tell outputs made with different keys apart)."""
        return hashlib.sha256(b"fingerprint:" + self.secret).hexdigest()[:12]


def demo_key() -> PseudonymKey:
    """The public demo key: for synthetic data only."""
    return PseudonymKey(DEMO_KEY, is_demo=True)


def load_key(key_file: Path | None = None, *, demo: bool = False) -> PseudonymKey:
    """Load the key from a file, else the environment; the demo key only when asked.

    Raises
    ------
    MissingKeyError
        When no key is given, or the key is too short.
    """
    if key_file is not None:
        try:
            secret = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise MissingKeyError(f"cannot read key file {key_file}: {exc.strerror}") from None
        origin = f"key file {key_file}"
    elif os.environ.get(KEY_ENV):
        secret = os.environ[KEY_ENV].encode().strip()
        origin = f"environment variable {KEY_ENV}"
    elif demo:
        return demo_key()
    else:
        raise MissingKeyError(
            f"no pseudonymisation key: pass --key-file FILE or set {KEY_ENV} "
            "(or --demo-key for synthetic data, which marks every output as demo data)"
        )
    if len(secret) < MIN_KEY_BYTES:
        raise MissingKeyError(f"the {origin} holds {len(secret)} bytes; a key needs at least "
                        f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32 > key`)")
    return PseudonymKey(secret, is_demo=False)


def normalise_cpr(cpr: str) -> str:
    """``DDMMYY-SSSS`` or ``DDMMYYSSSS`` to ten digits."""
    return cpr.strip().replace("-", "")


def _keyed_letters(text: str, key: PseudonymKey) -> str:
    """HMAC-SHA256 of ``text``, shortened and written in letters only."""
    digest = hmac.new(key.secret, text.encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_LENGTH].encode().translate(_LETTERS).decode()


def pseudonymise_one(cpr: str, key: PseudonymKey) -> str:
    """The pseudonym of one CPR number."""
    return _keyed_letters(normalise_cpr(cpr), key)


def pseudonymise_identifier(value: str, key: PseudonymKey) -> str:
    """The pseudonym of an identifier such as a household id (same key as CPR numbers).

    A value that is a CPR number gets that person's pseudonym, so a household id taken from
    a member's CPR number still points at the member. Any other value is hashed as written
    (trimmed): unlike a CPR number it is not normalised, so ``H-1`` and ``H1`` stay apart.
    """
    text = value.strip()
    if re.fullmatch(CPR_SHAPE, text):
        return pseudonymise_one(text, key)
    return _keyed_letters(text, key)


def pseudonymise(cpr: pd.Series, key: PseudonymKey) -> pd.Series:
    """Pseudonymise a column; each distinct CPR is hashed once (extracts repeat persons)."""
    codes, uniques = pd.factorize(cpr, use_na_sentinel=True)
    hashed = np.array([pseudonymise_one(str(c), key) for c in uniques], dtype=object)
    out = np.full(len(codes), None, dtype=object)
    present = codes >= 0
    out[present] = hashed[codes[present]]
    return pd.Series(out, index=cpr.index, dtype="string", name="person_id")

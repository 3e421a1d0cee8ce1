"""Password hashing with argon2 (argon2-cffi), and what a new password must be."""

import functools
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a failed login takes as long either way."""
    return _hasher.hash("capacity-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


MIN_LENGTH = 12
# zxcvbn's guess-based strength, 0-4: 3 is "safely unguessable" against an offline attack on a slow hash.
MIN_STRENGTH = 3


def password_problem(password: str, *, user_inputs: Sequence[str] = ()) -> str | None:
    """What is wrong with a new password, if anything: too short, or common or guessable (zxcvbn, which
    knows the common-password lists and keyboard patterns, and the user's own name)."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > 256:
        return "a password may have at most 256 characters"
    # Imported here: its word lists take ~13 MB, which a worker that never sets a password need not hold.
    from zxcvbn import zxcvbn

    strength = zxcvbn(password[:100], user_inputs=[*user_inputs, "capacity"])
    if strength["score"] < MIN_STRENGTH:
        warning = strength["feedback"].get("warning") or "it is too easy to guess"
        return f"choose a less common password: {warning.rstrip('.').lower()}"
    return None

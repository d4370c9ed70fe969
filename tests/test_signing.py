"""SessionSigner: the cache of verified values never outlives a signature, and rotation edges."""

from fastapi_sessions.signing import SessionSigner, new_session_id
from fastapi_sessions.testing import FakeClock

from .conftest import OLD_SECRET, SECRET


def test_a_cached_value_is_refused_once_its_signature_is_older_than_max_age() -> None:
    clock = FakeClock()
    signer = SessionSigner([SECRET], max_age=100, clock=clock, namespace="session")
    value = signer.sign(new_session_id())
    assert signer.verify(value) is not None
    clock.advance(60)
    assert signer.verify(value) is not None, "a cache hit inside max_age"
    clock.advance(41)
    assert signer.verify(value) is None
    clock.advance(-101)  # even back in time, the expired entry is gone for good
    assert signer.verify(value) is not None, "only by a full check again"


def test_with_fallback_keys_garbage_is_still_refused_and_old_keys_are_marked_stale() -> None:
    clock = FakeClock()
    old = SessionSigner([OLD_SECRET], max_age=100, clock=clock, namespace="session")
    rotated = SessionSigner([OLD_SECRET, SECRET], max_age=100, clock=clock, namespace="session")
    session_id = new_session_id()
    verified = rotated.verify(old.sign(session_id))
    assert verified is not None
    assert verified.stale_key
    assert verified.session_id == session_id
    assert not rotated.verify(rotated.sign(session_id)).stale_key  # type: ignore[union-attr]
    forged = old.sign(session_id)[:-4] + "AAAA"
    assert rotated.verify(forged) is None


def test_the_cache_is_bounded() -> None:
    from fastapi_sessions import signing

    signer = SessionSigner([SECRET], max_age=100, clock=FakeClock(), namespace="session")
    values = [signer.sign(new_session_id()) for _ in range(signing._CACHE_SIZE + 5)]
    for value in values:
        assert signer.verify(value) is not None
    assert len(signer._verified) <= signing._CACHE_SIZE


def test_a_full_cache_drops_its_oldest_values_and_keeps_the_recent_ones() -> None:
    """Past the bound the oldest cached values go one at a time: no cliff where every user's next
    request pays an HMAC again."""
    from fastapi_sessions import signing

    signer = SessionSigner([SECRET], max_age=100, clock=FakeClock(), namespace="session")
    values = [signer.sign(new_session_id()) for _ in range(signing._CACHE_SIZE + 5)]
    for value in values:
        assert signer.verify(value) is not None
    assert len(signer._verified) == signing._CACHE_SIZE
    assert not any(value in signer._verified for value in values[:5]), "the oldest are dropped"
    assert all(value in signer._verified for value in values[5:]), "the recent ones stay cached"
    # A cached value verifies without an HMAC: with the signer unable to check anything, it still does.
    signer._current = signer._all = None  # type: ignore[assignment]
    assert signer.verify(values[-1]) is not None
    assert signer.verify(values[5]) is not None


def test_a_signature_is_exactly_the_one_itsdangerous_makes_with_the_newest_key() -> None:
    """The signer keys its HMAC once and copies it: the cookie values must not change for that."""
    import hashlib

    from itsdangerous import TimestampSigner

    from fastapi_sessions.signing import salt

    clock = FakeClock()
    keys = ["an-old-key-" * 4, "the-new-key-" * 4]
    ours = SessionSigner(keys, max_age=3600, clock=clock, namespace="session")
    theirs = TimestampSigner(
        keys, salt=salt("session"), key_derivation="hmac", digest_method=hashlib.sha256
    )
    theirs.get_timestamp = lambda: int(clock.time())  # type: ignore[method-assign]
    for session_id in ("a", "x" * 43, "another-id"):
        assert ours.sign(session_id) == theirs.sign(session_id).decode()
        clock.advance(1)


def test_a_verified_signature_is_checked_with_the_same_hmac_as_itsdangerous_makes() -> None:
    """A value itsdangerous signed verifies, and one with a changed character does not."""
    import hashlib

    from itsdangerous import TimestampSigner

    from fastapi_sessions.signing import salt

    clock = FakeClock()
    key = "some-key-" * 8
    ours = SessionSigner([key], max_age=3600, clock=clock, namespace="admin")
    theirs = TimestampSigner(key, salt=salt("admin"), key_derivation="hmac", digest_method=hashlib.sha256)
    theirs.get_timestamp = lambda: int(clock.time())  # type: ignore[method-assign]
    session_id = new_session_id()
    value = theirs.sign(session_id).decode()
    verified = ours.verify(value)
    assert verified is not None
    assert verified.session_id == session_id
    assert ours.verify(value[:44] + ("B" if value[44] != "B" else "C") + value[45:]) is None

"""Session expiry and the login limiter, on a clock the test moves."""

from __future__ import annotations

from services.web.passwords import ALPHABET, generate, hash_password, verify_password
from services.web.sessions import LoginLimiter, SessionStore
from tests.harness.clock import Clock


def test_idle_sessions_expire_after_30_minutes() -> None:
    clock = Clock(1000.0)
    store = SessionStore(clock=clock)
    session = store.create("10.0.0.2")
    clock.now += 29 * 60
    assert store.get(session.token) is session  # activity renews it
    clock.now += 29 * 60
    assert store.alive(session.token)
    clock.now += 2 * 60
    assert not store.alive(session.token)  # peeking does not renew
    assert store.get(session.token) is None
    assert len(store) == 0


def test_login_replaces_the_old_session_and_clear_ends_all() -> None:
    store = SessionStore()
    first = store.create("a")
    second = store.create("a", replaces=first.token)
    assert store.get(first.token) is None and store.get(second.token) is second
    store.create("b")
    assert store.clear() == 2 and len(store) == 0
    assert not second.csrf_ok(None) and second.csrf_ok(second.csrf_token)


def test_limiter_locks_out_after_five_failures_for_ten_minutes() -> None:
    clock = Clock(1000.0)
    limiter = LoginLimiter(clock=clock)
    for _ in range(4):
        assert limiter.failure("a") == 0
    assert limiter.retry_after("a") == 0
    assert limiter.failure("a") == 600
    assert limiter.retry_after("a") == 600
    assert limiter.retry_after("b") == 0  # per address
    clock.now += 599
    assert limiter.retry_after("a") == 1
    clock.now += 1
    assert limiter.retry_after("a") == 0


def test_failures_older_than_ten_minutes_do_not_count() -> None:
    clock = Clock(1000.0)
    limiter = LoginLimiter(clock=clock)
    for _ in range(4):
        limiter.failure("a")
    clock.now += 601
    assert limiter.failure("a") == 0
    limiter.success("a")
    assert limiter.retry_after("a") == 0


def test_generated_passwords_have_80_bits() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    seen = {generate() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        symbols = password.replace("-", "")
        assert len(symbols) == 16 and set(symbols) <= set(ALPHABET)  # 16 * 5 bits
    encoded = hash_password("secret password")
    assert verify_password("secret password", encoded)
    assert not verify_password("secret passwore", encoded)
    assert hash_password("secret password") != encoded  # salted

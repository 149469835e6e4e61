"""Request signing for the reference city protocol: pinned vectors (the first
one cross-checked with ``openssl dgst -sha256 -hmac``), and every way the
verifier refuses a request, each with its own reason."""

from __future__ import annotations

import pytest

from workorder_sync.city.signing import (
    InMemoryNonceStore,
    NonceStoreFull,
    SignatureError,
    Verifier,
    canonical_string,
    new_nonce,
    sign,
    signed_headers,
)

NOW = 1796601600  # 2026-12-07 00:00:00 UTC
SECRET = b"district-secret"
BODY = b'{"order_no":"WO-20261207-0001"}'
NONCE = "n0nce-0000000001"

VECTORS = [
    (
        SECRET,
        "POST",
        "/api/v1/orders",
        NOW,
        NONCE,
        BODY,
        "93ae9531a3027257a35a5a21a5ba9654e531ea177bd1cd884289a8c0707d1747",
    ),
    (
        SECRET,
        "get",
        "/api/v1/orders?order_no=WO-20261207-0001",
        NOW,
        "n0nce-0000000002",
        b"",
        "1d865396f473af74440398b138d904058b961619860a32e640f3c8438c46cd6e",
    ),
    (
        b"city-secret",
        "POST",
        "/hooks/city?x=1",
        NOW + 1,
        "AbCdEfGhIjKlMnOp_-",
        '{"events":[{"kind":"REPLIED","data":{"content":"已办结"}}]}'.encode(),
        "6a3a847ccbf752858c9b1cbe9d0c68a905e919bd7888298b48ea63ce13e5f149",
    ),
]


def test_canonical_string_is_method_path_timestamp_nonce_body_hash():
    assert canonical_string("post", "/api/v1/orders", NOW, NONCE, BODY) == (
        "POST\n/api/v1/orders\n1796601600\nn0nce-0000000001\n"
        "d9508b972a862605535bb7fe9cc0219565ee59c4b04c7fc092d5d16e5c120d86"
    )
    empty_body_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert canonical_string("GET", "/x", NOW, NONCE, b"").endswith("\n" + empty_body_hash)


@pytest.mark.parametrize(("secret", "method", "path", "ts", "nonce", "body", "expected"), VECTORS)
def test_signature_vectors(secret, method, path, ts, nonce, body, expected):
    assert sign(secret, method, path, ts, nonce, body) == expected


def test_signed_headers_carry_the_vector():
    headers = signed_headers(
        "district", SECRET, "POST", "/api/v1/orders", BODY, now=NOW, nonce=NONCE
    )
    assert headers == {
        "X-App-Key": "district",
        "X-Timestamp": "1796601600",
        "X-Nonce": NONCE,
        "X-Signature": VECTORS[0][-1],
    }


def test_new_nonces_are_well_formed_and_distinct():
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    verifier = make_verifier()
    for nonce in list(nonces)[:5]:
        headers = signed_headers("district", SECRET, "GET", "/p", b"", now=NOW, nonce=nonce)
        verifier.authenticate("GET", "/p", headers, b"", now=NOW)


def make_verifier(
    *, max_skew_s: int = 300, store: InMemoryNonceStore | None = None, now: int = NOW
) -> Verifier:
    return Verifier(
        {"district": SECRET, "other": b"other-secret"},
        max_skew_s=max_skew_s,
        nonces=store or InMemoryNonceStore(clock=lambda: now),
    )


def request_headers(**changes: str) -> dict[str, str]:
    headers = signed_headers(
        "district", SECRET, "POST", "/api/v1/orders", BODY, now=NOW, nonce=NONCE
    )
    headers.update(changes)
    return headers


async def refused(
    verifier: Verifier, headers, *, method="POST", path="/api/v1/orders", body=BODY, now=NOW
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        await verifier.verify(method, path, headers, body, now=now)
    return caught.value


async def test_a_good_request_verifies_to_its_app_key():
    assert await make_verifier().verify(
        "POST", "/api/v1/orders", request_headers(), BODY, now=NOW
    ) == ("district")


async def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in request_headers().items()}
    assert await make_verifier().verify("POST", "/api/v1/orders", headers, BODY, now=NOW) == (
        "district"
    )


@pytest.mark.parametrize("name", ["X-App-Key", "X-Timestamp", "X-Nonce", "X-Signature"])
async def test_a_missing_header_is_named(name):
    headers = request_headers()
    del headers[name]
    error = await refused(make_verifier(), headers)
    assert error.code == "missing_header"
    assert error.reason == f"missing header {name}"


async def test_all_missing_headers_are_named_at_once():
    error = await refused(make_verifier(), {"X-Nonce": NONCE})
    assert error.reason == "missing header X-App-Key, X-Timestamp, X-Signature"


async def test_an_unknown_app_key_is_refused():
    error = await refused(make_verifier(), request_headers(**{"X-App-Key": "intruder"}))
    assert (error.code, error.reason) == ("unknown_app_key", "unknown app key 'intruder'")


async def test_a_key_signing_with_another_keys_secret_is_a_bad_signature():
    error = await refused(make_verifier(), request_headers(**{"X-App-Key": "other"}))
    assert error.code == "bad_signature"


@pytest.mark.parametrize("value", ["", "abc", "1796601600.5", "-1796601600", "１７９６"])
async def test_a_malformed_timestamp_is_refused(value):
    error = await refused(make_verifier(), request_headers(**{"X-Timestamp": value}))
    assert error.code == ("missing_header" if value == "" else "malformed_timestamp")


async def test_a_stale_timestamp_is_refused_and_the_edge_is_accepted():
    verifier = make_verifier(max_skew_s=300)
    error = await refused(verifier, request_headers(), now=NOW + 301)
    assert (error.code, error.reason) == (
        "stale_timestamp",
        "stale timestamp: 301 s old, at most 300 s allowed",
    )
    assert await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW + 300)


async def test_a_future_timestamp_is_refused_and_the_edge_is_accepted():
    verifier = make_verifier(max_skew_s=300)
    error = await refused(verifier, request_headers(), now=NOW - 301)
    assert (error.code, error.reason) == (
        "future_timestamp",
        "timestamp 301 s in the future, at most 300 s allowed",
    )
    assert await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW - 300)


@pytest.mark.parametrize(
    "nonce", ["short", "x" * 65, "has space in it!!", "非ASCII的随机数随机数随机数随机数"]
)
async def test_a_malformed_nonce_is_refused(nonce):
    headers = signed_headers(
        "district", SECRET, "POST", "/api/v1/orders", BODY, now=NOW, nonce=nonce
    )
    error = await refused(make_verifier(), headers)
    assert error.code == "malformed_nonce"


async def test_a_reused_nonce_is_refused():
    verifier = make_verifier()
    await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW)
    error = await refused(verifier, request_headers())
    assert (error.code, error.reason) == (
        "reused_nonce",
        f"reused nonce {NONCE!r} for app key 'district'",
    )


async def test_nonces_are_per_app_key():
    verifier = make_verifier()
    await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW)
    other = signed_headers(
        "other", b"other-secret", "POST", "/api/v1/orders", BODY, now=NOW, nonce=NONCE
    )
    assert await verifier.verify("POST", "/api/v1/orders", other, BODY, now=NOW) == "other"


async def test_a_forged_request_does_not_burn_the_nonce():
    verifier = make_verifier()
    await refused(verifier, request_headers(**{"X-Signature": "0" * 64}))
    assert await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/orders", BODY + b" "),
        ("POST", "/api/v1/orders", b'{"order_no":"WO-20261207-0002"}'),
        ("POST", "/api/v1/orders/other", BODY),
        ("POST", "/api/v1/orders?x=1", BODY),
        ("PUT", "/api/v1/orders", BODY),
    ],
    ids=["body-appended", "body-changed", "path", "query", "method"],
)
async def test_tampering_is_a_bad_signature(method, path, body):
    error = await refused(make_verifier(), request_headers(), method=method, path=path, body=body)
    assert error.code == "bad_signature"


async def test_a_tampered_timestamp_within_the_window_is_a_bad_signature():
    error = await refused(make_verifier(), request_headers(**{"X-Timestamp": str(NOW + 10)}))
    assert error.code == "bad_signature"


async def test_a_garbage_signature_is_a_bad_signature():
    for garbage in ("zz", "签名" * 32, VECTORS[0][-1][:-1]):
        error = await refused(make_verifier(), request_headers(**{"X-Signature": garbage}))
        assert error.code == "bad_signature"


async def test_an_uppercase_hex_signature_is_accepted():
    headers = request_headers(**{"X-Signature": VECTORS[0][-1].upper()})
    assert await make_verifier().verify("POST", "/api/v1/orders", headers, BODY, now=NOW)


async def test_the_nonce_store_forgets_a_nonce_once_its_timestamp_is_stale():
    clock = [float(NOW)]
    store = InMemoryNonceStore(clock=lambda: clock[0])
    assert await store.seen_before("district", NONCE, NOW + 300) is False
    assert await store.seen_before("district", NONCE, NOW + 300) is True
    clock[0] = NOW + 301
    assert await store.seen_before("district", "another-nonce-0001", NOW + 601) is False
    assert len(store) == 1  # the expired one was dropped
    assert await store.seen_before("district", NONCE, NOW + 601) is False


async def test_the_nonce_store_is_bounded_and_fails_closed():
    store = InMemoryNonceStore(max_entries=2, clock=lambda: NOW)
    await store.seen_before("k", "nonce-00000000001", NOW + 300)
    await store.seen_before("k", "nonce-00000000002", NOW + 300)
    with pytest.raises(NonceStoreFull):
        await store.seen_before("k", "nonce-00000000003", NOW + 300)
    assert await store.seen_before("k", "nonce-00000000001", NOW + 300) is True


async def test_a_replay_after_the_window_is_stale_not_reused():
    clock = [float(NOW)]
    verifier = make_verifier(store=InMemoryNonceStore(clock=lambda: clock[0]))
    await verifier.verify("POST", "/api/v1/orders", request_headers(), BODY, now=NOW)
    clock[0] = NOW + 400
    error = await refused(verifier, request_headers(), now=NOW + 400)
    assert error.code == "stale_timestamp"


def test_verifier_rejects_a_nonsense_skew():
    with pytest.raises(ValueError, match="max_skew_s"):
        make_verifier(max_skew_s=0)

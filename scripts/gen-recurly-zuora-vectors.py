#!/usr/bin/env python3
"""Writes tests/data/recurly_webhook_vectors.json and tests/data/zuora_webhook_vectors.json.

Recurly: HMAC-SHA256 over "{unix ms}.{raw body}" keyed with the endpoint secret string, as in
recurly-client-ruby lib/recurly/webhooks.rb. The two `recurly-official-*` vectors reuse the
secret, body and header of that client's spec/recurly/webhooks_spec.rb verbatim.
Zuora: HTTP Basic per RFC 7617 (section 2's example: Aladdin / open sesame).
"""
import base64, hashlib, hmac, json, pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUBY_SPEC = "recurly-client-ruby spec/recurly/webhooks_spec.rb (official vector)"
RUBY_ALGO = "computed with Python hmac per recurly-client-ruby lib/recurly/webhooks.rb"

OFFICIAL_SECRET = "354fab5bd35f5a0d50845ee7e30165244468b13c2c343f104e4e730a59326d9d"
OFFICIAL_BODY = '{"id":"rjxwmwedwqug","object_type":"account","site_id":"qc326l1hl8k9","event_type":"created","event_time":"2022-09-13T21:18:40Z","account_code":"adfas23zzz14123"}'
OFFICIAL_HEADER = "1663103925004,ad24699f3beaa24c9af2cc7ada3ce4c835da0090194241b9d3add83d27f14bc3"

SECRET = "bsync_recurly_current_3f1c9a7e2b"
OLD = "bsync_recurly_previous_88d0e41a6c"
BODY = '{"id":"sx9f0q1kz2ab","object_type":"charge_invoice","site_id":"qc326l1hl8k9","event_type":"paid","event_time":"2026-11-01T10:00:00Z","invoice_number":1042}'
TS = 1793527200123  # ms
NOW = 1793527201


def sig(secret, ts, body):
    return hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()


assert sig(OFFICIAL_SECRET, 1663103925004, OFFICIAL_BODY) == OFFICIAL_HEADER.split(",")[1]


def rv(id_, secrets, header, body, now, tol, expected, note, source=RUBY_ALGO):
    return {"id": id_, "secrets": secrets, "headers": {"recurly-signature": header} if header is not None else {},
            "body": body, "now": now, "tolerance_s": tol, "expected": expected, "note": note, "source": source}


recurly = [
    rv("recurly-official-valid", [OFFICIAL_SECRET], OFFICIAL_HEADER, OFFICIAL_BODY, 1663103925, 300, "valid",
       "the Ruby spec's header, verified at the time it was made", RUBY_SPEC),
    rv("recurly-official-wrong-secret", [OFFICIAL_SECRET[:-1] + "e"], OFFICIAL_HEADER, OFFICIAL_BODY, 1663103925, 300,
       "invalid", "last hex digit of the secret changed", RUBY_SPEC),
    rv("recurly-valid", [SECRET], f"{TS},{sig(SECRET, TS, BODY)}", BODY, NOW, 300, "valid", "one signature, one secret"),
    rv("recurly-tampered-body", [SECRET], f"{TS},{sig(SECRET, TS, BODY)}", BODY.replace("1042", "1043"), NOW, 300,
       "invalid", "invoice number changed after signing"),
    rv("recurly-reserialized-body", [SECRET], f"{TS},{sig(SECRET, TS, BODY)}", json.dumps(json.loads(BODY)), NOW, 300,
       "invalid", "same JSON re-serialized with spaces: HMAC is over raw bytes"),
    rv("recurly-stale-past", [SECRET], f"{TS},{sig(SECRET, TS, BODY)}", BODY, NOW + 301, 300, "invalid",
       "signed 301 s before now (tolerance 300 s)"),
    rv("recurly-stale-future", [SECRET], f"{TS},{sig(SECRET, TS, BODY)}", BODY, NOW - 302, 300, "invalid",
       "signed 301 s after now: the Ruby client refuses future timestamps too"),
    rv("recurly-seconds-timestamp-mistake", [SECRET], f"{TS // 1000},{sig(SECRET, TS // 1000, BODY)}", BODY, NOW, 300,
       "invalid", "correctly signed but the timestamp is in seconds, read as ms it is 1970"),
    rv("recurly-malformed-timestamp", [SECRET], f"17935272OO123,{sig(SECRET, '17935272OO123', BODY)}", BODY, NOW, 300,
       "invalid", "timestamp is not an integer"),
    rv("recurly-rotation-two-signatures", [SECRET], f"{TS},{sig(OLD, TS, BODY)},{sig(SECRET, TS, BODY)}", BODY, NOW, 300,
       "valid", "old and new key both sign during the 24 h overlap; the second matches"),
    rv("recurly-rotation-two-secrets", [OLD, SECRET], f"{TS},{sig(SECRET, TS, BODY)}", BODY, NOW, 300, "valid",
       "two active secrets, the second signed"),
    rv("recurly-missing-header", [SECRET], None, BODY, NOW, 300, "invalid", "no recurly-signature header"),
    rv("recurly-no-signature", [SECRET], f"{TS}", BODY, NOW, 300, "invalid", "timestamp only"),
]

RFC = "RFC 7617 section 2 (Aladdin / open sesame -> QWxhZGRpbjpvcGVuIHNlc2FtZQ==)"


def basic(u):
    return "Basic " + base64.b64encode(u.encode()).decode()


assert basic("Aladdin:open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def zv(id_, secrets, auth, expected, note, source=RFC):
    return {"id": id_, "secrets": secrets, "headers": {"Authorization": auth} if auth is not None else {},
            "body": '{"notificationId":"2c92c0f8-0001","eventType":"InvoicePosted","eventTime":"2026-11-01T10:00:00Z","objectType":"Invoice","objectId":"8a8aa0b27f3c1d2e"}',
            "now": 1793527200, "tolerance_s": 300, "expected": expected, "note": note, "source": source}


zuora = [
    zv("zuora-rfc7617-example", ["Aladdin:open sesame"], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "valid",
       "the RFC's own example credentials"),
    zv("zuora-wrong-password", ["Aladdin:open sesame"], basic("Aladdin:open sesam"), "invalid", "password differs"),
    zv("zuora-missing-header", ["Aladdin:open sesame"], None, "invalid",
       "non-preemptive first attempt: answered 401 with WWW-Authenticate"),
    zv("zuora-wrong-scheme", ["Aladdin:open sesame"], "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "invalid",
       "right token, wrong scheme"),
    zv("zuora-scheme-case-insensitive", ["Aladdin:open sesame"], "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "valid",
       "RFC 7617 section 2: the scheme name is case-insensitive"),
    zv("zuora-rotation-second-entry", ["zuora-old:pw-1", "Aladdin:open sesame"], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
       "valid", "two active entries, the second matches"),
    zv("zuora-colon-in-password", ["hook:pa:ss"], basic("hook:pa:ss"), "valid",
       "RFC 7617: the user-id ends at the first colon; the password may contain colons"),
    zv("zuora-not-base64", ["Aladdin:open sesame"], "Basic !!!not-base64", "invalid", "garbled credentials"),
]

for name, vs, gen in [("recurly", recurly, __file__), ("zuora", zuora, __file__)]:
    path = ROOT / "tests" / "data" / f"{name}_webhook_vectors.json"
    path.write_text(json.dumps({"generated_by": "scripts/gen-recurly-zuora-vectors.py", "vectors": vs}, indent=2) + "\n")
    print(path, len(vs))

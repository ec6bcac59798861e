#!/usr/bin/env python3
"""Generate Paddle Billing webhook signature test vectors using Paddle's own SDK.

Every valid signature is computed by the official `paddle-python-sdk`
(`PaddleSignature.calculate_hmac`), and every expected verdict is whatever
`Verifier(maximum_variance=5).verify(request, secrets)` decides with the
verifier's clock (`paddle_billing.Notifications.Verifier.time`) patched to the
vector's `now`. The five-second tolerance is the SDK's default.

Pinned SDK: paddle-python-sdk==1.16.1 (from PyPI).

Run from the repository root:

    python3 -m venv /tmp/pv && /tmp/pv/bin/pip install paddle-python-sdk==1.16.1 && \
        /tmp/pv/bin/python scripts/gen-paddle-vectors.py > tests/data/paddle_webhook_vectors.json

Output is deterministic (fixed secrets, timestamps and bodies).
"""

import json
import sys
from unittest import mock

from paddle_billing.Notifications.PaddleSignature import PaddleSignature
from paddle_billing.Notifications.Secret import Secret
from paddle_billing.Notifications.Verifier import Verifier

# The package re-exports the class under the module's name; patch the module itself.
verifier_module = sys.modules["paddle_billing.Notifications.Verifier"]

PINNED_VERSION = "1.16.1"
NOW = 1_764_000_000
TOLERANCE = 5
SECRET = "pdl_ntfset_01jd0000000000000000000000_vector0secret0key0000000000"
OLD_SECRET = "pdl_ntfset_01jc0000000000000000000000_old0secret0key00000000000000"
BODY = (
    '{"event_id":"evt_01jd5v0g3m5y6c8a2x9b7n4k1q","event_type":"transaction.completed",'
    '"occurred_at":"2025-11-24T16:00:00.123456Z","notification_id":"ntf_01jd5v0g4a",'
    '"data":{"id":"txn_01jd5v0g1x","status":"completed","currency_code":"EUR",'
    '"customer_id":"ctm_01jd5v0f9z","details":{"totals":{"subtotal":"1000","discount":"0",'
    '"tax":"190","total":"1190"}}}}'
)
BODY_UNICODE = BODY.replace('"completed"', '"completed","note":"Grüße, ¥1000"', 1)


class FakeRequest:
    def __init__(self, header, body):
        self.headers = {"Paddle-Signature": header}
        self.body = body.encode("utf-8")


def sig(secret, ts, body, sep=":"):
    return PaddleSignature.calculate_hmac(secret, f"{ts}{sep}{body}".encode("utf-8")).hexdigest()


def sdk_verdict(header, body, secrets, now):
    with mock.patch.object(verifier_module, "time", return_value=now):
        keys = [Secret(s) for s in secrets]
        try:
            ok = Verifier(maximum_variance=TOLERANCE).verify(FakeRequest(header, body), keys)
        except ConnectionRefusedError:
            # With a list of secrets the SDK raises when none matches.
            ok = False
    return "valid" if ok else "invalid"


def vector(vid, note, header, body, secrets, now=NOW):
    return {
        "id": vid,
        "note": note,
        "secrets": secrets,
        "headers": {"Paddle-Signature": header},
        "body": body,
        "now": now,
        "tolerance_s": TOLERANCE,
        "expected": sdk_verdict(header, body, secrets, now),
        "checked_with": f"paddle-python-sdk {PINNED_VERSION} Verifier(maximum_variance=5).verify",
    }


def main():
    ts = NOW - 2
    v = []
    v.append(vector("paddle-valid", "one h1 over ts:body", f"ts={ts};h1={sig(SECRET, ts, BODY)}", BODY, [SECRET]))
    v.append(vector("paddle-valid-unicode", "non-ASCII body, signed over its UTF-8 bytes",
                    f"ts={ts};h1={sig(SECRET, ts, BODY_UNICODE)}", BODY_UNICODE, [SECRET]))
    v.append(vector("paddle-multi-h1", "two h1 values (rotation); the second matches",
                    f"ts={ts};h1={sig(OLD_SECRET, ts, BODY)};h1={sig(SECRET, ts, BODY)}", BODY, [SECRET]))
    v.append(vector("paddle-secret-rotation", "two active secrets; signed with the newer",
                    f"ts={ts};h1={sig(SECRET, ts, BODY)}", BODY, [OLD_SECRET, SECRET]))
    v.append(vector("paddle-wrong-secret", "signed with a secret that is not active",
                    f"ts={ts};h1={sig(OLD_SECRET, ts, BODY)}", BODY, [SECRET]))
    v.append(vector("paddle-tampered-body", "body changed after signing",
                    f"ts={ts};h1={sig(SECRET, ts, BODY)}", BODY.replace('"1190"', '"119"'), [SECRET]))
    old = NOW - 10
    v.append(vector("paddle-stale", "timestamp 10 s old with a 5 s tolerance",
                    f"ts={old};h1={sig(SECRET, old, BODY)}", BODY, [SECRET]))
    future = NOW + 10
    v.append(vector("paddle-future", "timestamp 10 s ahead with a 5 s tolerance",
                    f"ts={future};h1={sig(SECRET, future, BODY)}", BODY, [SECRET]))
    v.append(vector("paddle-dot-separator-mistake", "signed over ts.body (Stripe's separator), not ts:body",
                    f"ts={ts};h1={sig(SECRET, ts, BODY, '.')}", BODY, [SECRET]))
    ms = ts * 1000
    v.append(vector("paddle-millis-timestamp-mistake", "timestamp in milliseconds",
                    f"ts={ms};h1={sig(SECRET, ms, BODY)}", BODY, [SECRET]))
    json.dump(v, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

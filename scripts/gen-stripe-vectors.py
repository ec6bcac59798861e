#!/usr/bin/env python3
"""Generate Stripe webhook signature test vectors using Stripe's own SDK.

Every signature is computed by the official `stripe` Python package
(`stripe.WebhookSignature._compute_signature`), and every expected verdict is
whatever `stripe.WebhookSignature.verify_header(body, header, secret,
tolerance=300)` decides with `time.time` patched to the vector's `now`.
Nothing here re-implements Stripe's algorithm.

Pinned SDK: stripe==16.1.0 (from PyPI).

Run from the repository root:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install stripe==16.1.0 && \
        /tmp/v/bin/python scripts/gen-stripe-vectors.py > tests/data/stripe_webhook_vectors.json

Output is deterministic (fixed secrets, timestamps and bodies): running it
twice yields byte-identical files.

Vector fields:
  id          stable identifier
  secret      endpoint secret passed to verify_header (full `whsec_...` string)
  body        exact UTF-8 request body
  header      full `Stripe-Signature` header value
  now         unix seconds used as the verifier's clock
  tolerance_s 300
  expected    "valid" | "invalid"  (exactly the SDK's verdict)
  reason      "valid" | "invalid_signature" | "stale_timestamp" | "malformed_header"
              (derived from the SDK's error message; also cross-checked
              against the intent of each case)
  sdk_error   null, or the SDK's SignatureVerificationError message
"""

import json
import sys
from unittest import mock

import stripe

PINNED_VERSION = "16.1.0"
TOLERANCE = 300

WS = stripe.WebhookSignature

SECRET_CURRENT = "whsec_bsyncTestCurrent9fK2mQ7xL4pR8vN3wZ6tY1a"
SECRET_OLD = "whsec_bsyncTestOldRotated3hJ5kD8sG2qW7eR4uI0o"
SECRET_WRONG = "whsec_bsyncTestWrongSecretZ1x2C3v4B5n6M7q8W9e"

# 2024-06-20T16:00:00Z-ish; matches api_version 2024-06-20.
BASE_T = 1718899200


def compact(obj):
    """Serialize like a compact Stripe body; keep non-ASCII as raw UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def customer_updated(t, evt, cus, email, name):
    return {
        "id": evt,
        "object": "event",
        "api_version": "2024-06-20",
        "created": t,
        "type": "customer.updated",
        "data": {
            "object": {
                "id": cus,
                "object": "customer",
                "email": email,
                "name": name,
            }
        },
    }


def invoice_paid(t, evt):
    return {
        "id": evt,
        "object": "event",
        "api_version": "2024-06-20",
        "created": t,
        "type": "invoice.paid",
        "data": {
            "object": {
                "id": "in_1PTqLm2eZvKYlo2C0aB3cD4e",
                "object": "invoice",
                "customer": "cus_QKx7Yb2LmN9pRs",
                "subscription": "sub_1PTqLk2eZvKYlo2CfGh5iJ6k",
                "amount_due": 4900,
                "amount_paid": 4900,
                "currency": "usd",
                "status": "paid",
            }
        },
    }


def charge_refunded(t, evt):
    return {
        "id": evt,
        "object": "event",
        "api_version": "2024-06-20",
        "created": t,
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_3PTqNo2eZvKYlo2C1xY2zA3b",
                "object": "charge",
                "amount": 2500,
                "amount_refunded": 2500,
                "currency": "eur",
                "customer": "cus_QKx9Ab3MnO0qSt",
                "refunded": True,
            }
        },
    }


def sign(t, body, secret):
    """v1 signature as computed by the SDK itself."""
    return WS._compute_signature("%d.%s" % (t, body), secret)


def sdk_verdict(body, header, secret, now):
    with mock.patch("stripe._webhook.time.time", return_value=float(now)):
        try:
            WS.verify_header(body, header, secret, tolerance=TOLERANCE)
        except stripe.SignatureVerificationError as e:
            return "invalid", str(e)
    return "valid", None


def classify(sdk_error):
    if sdk_error is None:
        return "valid"
    if sdk_error.startswith("No signatures found matching the expected signature"):
        return "invalid_signature"
    if sdk_error.startswith("Timestamp outside the tolerance zone"):
        return "stale_timestamp"
    if sdk_error.startswith(
        (
            "Unable to extract timestamp and signatures from header",
            "No signatures found with expected scheme",
            "No Stripe-Signature header value was provided",
        )
    ):
        return "malformed_header"
    raise SystemExit("unclassified SDK error: %r" % sdk_error)


def build_cases():
    cases = []

    def add(vid, secret, body, header, now, intended):
        cases.append((vid, secret, body, header, now, intended))

    # 1. valid, single v1
    t = BASE_T
    body = compact(customer_updated(t, "evt_1PTqA12eZvKYlo2CvAl1dA01",
                                    "cus_QKx1Aa1BbCc1Dd", "ada@example.com",
                                    "Ada Lovelace"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    gen = getattr(WS, "generate_signature_header", None)
    if gen is not None:  # cross-check our header construction against the SDK's
        assert gen(body, SECRET_CURRENT, timestamp=t) == header
    add("stripe-valid", SECRET_CURRENT, body, header, t + 5, "valid")

    # 2. rotation: two v1 (old secret first, current second)
    t = BASE_T + 100
    body = compact(invoice_paid(t, "evt_1PTqB22eZvKYlo2CrOt2aB02"))
    header = "t=%d,v1=%s,v1=%s" % (t, sign(t, body, SECRET_OLD),
                                   sign(t, body, SECRET_CURRENT))
    add("stripe-valid-rotation-current-secret", SECRET_CURRENT, body, header,
        t + 10, "valid")
    add("stripe-valid-rotation-old-secret", SECRET_OLD, body, header,
        t + 10, "valid")

    # 3. extra unknown scheme v0
    t = BASE_T + 200
    body = compact(charge_refunded(t, "evt_3PTqC32eZvKYlo2Cv0x3cC03"))
    header = "t=%d,v1=%s,v0=%s" % (t, sign(t, body, SECRET_CURRENT),
                                   "6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")
    add("stripe-valid-extra-v0-scheme", SECRET_CURRENT, body, header, t + 1,
        "valid")

    # 4. non-ASCII body (raw UTF-8 in the signed payload)
    t = BASE_T + 300
    body = compact(customer_updated(t, "evt_1PTqD42eZvKYlo2CuTf8dD04",
                                    "cus_QKx4Dd4EeFf4Gg", "zoe@example.com",
                                    "Zoë Müller 東京"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-valid-non-ascii-body", SECRET_CURRENT, body, header, t + 3,
        "valid")

    # 5. wrong secret (signed with another endpoint's secret)
    t = BASE_T + 400
    body = compact(customer_updated(t, "evt_1PTqE52eZvKYlo2CwRn5eE05",
                                    "cus_QKx5Ee5FfGg5Hh", "grace@example.com",
                                    "Grace Hopper"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_WRONG))
    add("stripe-wrong-secret", SECRET_CURRENT, body, header, t + 2,
        "invalid_signature")

    # 6. tampered body: one character changed after signing
    t = BASE_T + 500
    body = compact(invoice_paid(t, "evt_1PTqF62eZvKYlo2CtMp6fF06"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    tampered = body.replace('"amount_paid":4900', '"amount_paid":4901', 1)
    assert tampered != body and len(tampered) == len(body)
    add("stripe-tampered-body", SECRET_CURRENT, tampered, header, t + 2,
        "invalid_signature")

    # 7. same JSON re-serialized with different whitespace
    t = BASE_T + 600
    obj = charge_refunded(t, "evt_3PTqG72eZvKYlo2CwSp7gG07")
    body = compact(obj)
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    reserialized = json.dumps(obj, indent=2, ensure_ascii=False)
    assert json.loads(reserialized) == json.loads(body) and reserialized != body
    add("stripe-reserialized-whitespace", SECRET_CURRENT, reserialized, header,
        t + 2, "invalid_signature")

    # 8. stale timestamp: now = t + 301
    t = BASE_T + 700
    body = compact(customer_updated(t, "evt_1PTqH82eZvKYlo2CsTl8hH08",
                                    "cus_QKx8Hh8IiJj8Kk", "alan@example.com",
                                    "Alan Turing"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-stale-timestamp", SECRET_CURRENT, body, header,
        t + TOLERANCE + 1, "stale_timestamp")

    # 9. exactly at the tolerance boundary: now = t + 300 (SDK decides)
    t = BASE_T + 800
    body = compact(invoice_paid(t, "evt_1PTqI92eZvKYlo2CbNd9iI09"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-tolerance-boundary", SECRET_CURRENT, body, header,
        t + TOLERANCE, None)

    # 10. future timestamp: t = now + 600 (SDK decides)
    now = BASE_T + 900
    t = now + 600
    body = compact(charge_refunded(t, "evt_3PTqJ02eZvKYlo2CfUt0jJ10"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-future-timestamp", SECRET_CURRENT, body, header, now, None)

    # 11. missing t=
    t = BASE_T + 1000
    body = compact(customer_updated(t, "evt_1PTqK12eZvKYlo2CnOt1kK11",
                                    "cus_QKx1Kk1LlMm1Nn", "linus@example.com",
                                    "Linus Torvalds"))
    header = "v1=%s" % sign(t, body, SECRET_CURRENT)
    add("stripe-missing-timestamp", SECRET_CURRENT, body, header, t + 2,
        "malformed_header")

    # 12. non-integer t
    t = BASE_T + 1100
    body = compact(invoice_paid(t, "evt_1PTqL22eZvKYlo2CnIt2lL12"))
    header = "t=%sabc,v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-non-integer-timestamp", SECRET_CURRENT, body, header, t + 2,
        "malformed_header")

    # 13. no v1 at all (only v0)
    t = BASE_T + 1200
    body = compact(charge_refunded(t, "evt_3PTqM32eZvKYlo2CnOv3mM13"))
    header = "t=%d,v0=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-no-v1-signature", SECRET_CURRENT, body, header, t + 2,
        "malformed_header")

    # 14. signer stripped the whsec_ prefix from the secret (the HMAC key is
    #     the full "whsec_..." string, so this must not verify)
    t = BASE_T + 1300
    body = compact(customer_updated(t, "evt_1PTqN42eZvKYlo2CpFx4nN14",
                                    "cus_QKx4Nn4OoPp4Qq", "barbara@example.com",
                                    "Barbara Liskov"))
    stripped = SECRET_CURRENT[len("whsec_"):]
    header = "t=%d,v1=%s" % (t, sign(t, body, stripped))
    add("stripe-secret-prefix-stripped", SECRET_CURRENT, body, header, t + 2,
        "invalid_signature")

    # 15. header timestamp altered: signed with t, header says t+1
    t = BASE_T + 1400
    body = compact(invoice_paid(t, "evt_1PTqO52eZvKYlo2CaTs5oO15"))
    header = "t=%d,v1=%s" % (t + 1, sign(t, body, SECRET_CURRENT))
    add("stripe-altered-timestamp", SECRET_CURRENT, body, header, t + 2,
        "invalid_signature")

    # 16. stale AND wrong signature: SDK checks the HMAC before the timestamp
    t = BASE_T + 1500
    body = compact(charge_refunded(t, "evt_3PTqP62eZvKYlo2CsBs6pP16"))
    header = "t=%d,v1=%s" % (t, sign(t, body, SECRET_WRONG))
    add("stripe-stale-and-wrong-secret", SECRET_CURRENT, body, header,
        t + TOLERANCE + 1000, "invalid_signature")

    # 17. space after comma: SDK does not trim, so " v1" is not "v1"
    t = BASE_T + 1600
    body = compact(customer_updated(t, "evt_1PTqQ72eZvKYlo2CwSc7qQ17",
                                    "cus_QKx7Qq7RrSs7Tt", "ken@example.com",
                                    "Ken Thompson"))
    header = "t=%d, v1=%s" % (t, sign(t, body, SECRET_CURRENT))
    add("stripe-space-after-comma", SECRET_CURRENT, body, header, t + 2,
        "malformed_header")

    return cases


def main():
    if stripe.VERSION != PINNED_VERSION:
        print("warning: stripe %s installed, script pinned to %s"
              % (stripe.VERSION, PINNED_VERSION), file=sys.stderr)

    vectors = []
    for vid, secret, body, header, now, intended in build_cases():
        expected, sdk_error = sdk_verdict(body, header, secret, now)
        reason = classify(sdk_error)
        if intended is not None and intended != reason:
            raise SystemExit("%s: intended %s but SDK says %s (%r)"
                             % (vid, intended, reason, sdk_error))
        vectors.append({
            "id": vid,
            "secret": secret,
            "body": body,
            "header": header,
            "now": now,
            "tolerance_s": TOLERANCE,
            "expected": expected,
            "reason": reason,
            "sdk_error": sdk_error,
        })

    out = {
        "generated_by": "scripts/gen-stripe-vectors.py with stripe==%s "
                        "(PyPI; WebhookSignature._compute_signature + "
                        "verify_header, tolerance=300, time.time patched)"
                        % stripe.VERSION,
        "vectors": vectors,
    }
    sys.stdout.buffer.write(
        (json.dumps(out, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()

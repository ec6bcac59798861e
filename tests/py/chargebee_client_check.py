"""Chargebee's own Python SDK (chargebee) against `billsync sim`: list every resource with the
SDK following `next_offset`, once newest-created first (the default) and once as billsync
pulls (`sort_by[asc]=updated_at`, an `updated_at[after]` window, `include_deleted`), list the
events, and read a delivered webhook with the SDK's `Event.deserialize`.

Chargebee signs no webhook: an endpoint may require HTTP Basic auth, configured with a user name
and password (https://www.chargebee.com/docs/2.0/webhook_settings.html, "Basic
Authentication"), sent per RFC 7617. chargebee-python has no verifier, so the check here is
the documented one: `Authorization: Basic base64(username:password)`, decoded and split at
the first colon, equals the endpoint's credentials.

Usage: python chargebee_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {stream: [ids]}, "ids_by_update": {...}, "events": N,
"webhook_event_id": ..., "authenticated": bool, "wrong_refused": bool}.
"""
import base64
import json
import sys
import urllib.request

import chargebee

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
# The SDK pins https with its bundled CA list unless told not to; the simulator is plain http.
chargebee.Chargebee.verify_ca_certs = False
cb = chargebee.Chargebee(api_key=api_key, site="sim-test", protocol="http")
# The SDK builds https://{site}.chargebee.com/api/v2; the simulator serves Chargebee under /chargebee.
cb.env.api_endpoint = base + "/chargebee/api/v2"

resources = {
    "customers": (cb.Customer, "customer"),
    "invoices": (cb.Invoice, "invoice"),
    "credit_notes": (cb.CreditNote, "credit_note"),
    "subscriptions": (cb.Subscription, "subscription"),
    "transactions": (cb.Transaction, "transaction"),
}


def every(resource, name, params):
    ids, offset = [], None
    while True:
        page = dict(params)
        if offset:
            page["offset"] = offset
        answer = resource.list(page)
        ids.extend(getattr(entry, name).id for entry in answer.list)
        offset = answer.next_offset
        if not offset:
            return ids


ids = {s: every(r, n, {"limit": 37}) for s, (r, n) in resources.items()}
by_update = {
    s: every(r, n, {"limit": 100, "sort_by": {"asc": "updated_at"}, "updated_at": {"after": 0},
                    "include_deleted": True})
    for s, (r, n) in resources.items()
}
events = len(every(cb.Event, "event", {"limit": 100, "sort_by": {"asc": "occurred_at"}}))

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)


def authenticated(headers, secret):
    scheme, _, encoded = headers.get("Authorization", "").partition(" ")
    if scheme != "Basic":
        return False
    user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    want_user, _, want_password = secret.partition(":")
    return (user, password) == (want_user, want_password)


event = cb.Event.deserialize(sample["payload"])
print(json.dumps({
    "ids": ids, "ids_by_update": by_update, "events": events,
    "webhook_event_id": event.id, "event_type": event.event_type,
    "authenticated": authenticated(sample["headers"], sample["secret"]),
    "wrong_refused": not authenticated(sample["headers"], sample["secret"] + "x"),
}))

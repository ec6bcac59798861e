"""Maxio's own Python SDK (maxio-advanced-billing-sdk, `advancedbilling`) against `billsync sim`:
page through customers, subscriptions, relationship invoices and credit notes, read one of each,
read the Events API and invoice events (every answer goes through the SDK's own models), and
check a delivered webhook's signature with the documented algorithm (the SDK has no verifier):
HMAC-SHA256 of the raw form body keyed with the site's Shared Key, hex, in
`X-Chargify-Webhook-Signature-Hmac-Sha-256`
(https://docs.maxio.com/hc/en-us/articles/24266136649869-Webhooks-Reference).

Usage: python maxio_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {stream: [ids...]}, "events": N, "invoice_events": N, ...}.
"""
import hashlib
import hmac
import json
import sys
import urllib.request

from advancedbilling.advanced_billing_client import AdvancedBillingClient
from advancedbilling.configuration import Configuration, Environment, Server
from advancedbilling.http.auth.basic_auth import BasicAuthCredentials

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]


class SimConfiguration(Configuration):
    """The SDK's configuration with the simulator as the site's host (only the base URI
    differs; every request and model is the SDK's)."""

    environments = {
        Environment.US: {Server.PRODUCTION: base + "/maxio", Server.EBB: base + "/maxio"},
    }


client = AdvancedBillingClient(
    config=SimConfiguration(
        environment=Environment.US,
        site="sim",
        max_retries=0,
        basic_auth_credentials=BasicAuthCredentials(username=api_key, password="x"),
    )
)


def pages(fetch, pick):
    """Every object of a page-numbered list: pages 1, 2, ... until an empty one."""
    out, page = [], 1
    while True:
        batch = pick(fetch(page))
        if not batch:
            return out
        out.extend(batch)
        page += 1


ids = {
    "customers": pages(
        lambda p: client.customers.list_customers({"page": p, "per_page": 37, "direction": "asc"}),
        lambda r: [c.customer.id for c in r],
    ),
    "subscriptions": pages(
        lambda p: client.subscriptions.list_subscriptions({"page": p, "per_page": 50}),
        lambda r: [s.subscription.id for s in r],
    ),
    "invoices": pages(
        lambda p: client.invoices.list_invoices({"page": p, "per_page": 100, "line_items": True}),
        lambda r: [i.uid for i in r.invoices],
    ),
    "credit_notes": pages(
        lambda p: client.invoices.list_credit_notes({"page": p, "per_page": 100, "line_items": True}),
        lambda r: [c.uid for c in r.credit_notes],
    ),
}

reads = {
    "customer": client.customers.read_customer(ids["customers"][0]).customer.id,
    "subscription": client.subscriptions.read_subscription(ids["subscriptions"][0]).subscription.id,
    "invoice": client.invoices.read_invoice(ids["invoices"][0]).uid,
    "credit_note": client.invoices.read_credit_note(ids["credit_notes"][0]).uid
    if ids["credit_notes"]
    else None,
}

# A customer's billing address is on its payment profiles, a separate resource (the
# customer's own address fields are its shipping address): read them as the SDK does.
billing_countries = {
    str(c): [p.payment_profile.billing_country
             for p in client.payment_profiles.list_payment_profiles({"customer_id": c, "per_page": 200})]
    for c in ids["customers"]
}

events = client.events.list_events({"direction": "asc", "per_page": 200})
invoice_events = client.invoices.list_invoice_events({"per_page": 200})
invoice_event_types = sorted({str(e.event_type) for e in invoice_events.events})

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)
payload, secret = sample["payload"].encode(), sample["secret"].encode()
headers = {k.lower(): v for k, v in sample["headers"].items()}
signature = headers["x-chargify-webhook-signature-hmac-sha-256"]
expected = hmac.new(secret, payload, hashlib.sha256).hexdigest()
tampered = hmac.new(secret, payload + b"&x=1", hashlib.sha256).hexdigest()

print(
    json.dumps(
        {
            "ids": ids,
            "reads": reads,
            "billing_countries": billing_countries,
            "events": len(events),
            "event_ids_ascending": [e.event.id for e in events] == sorted(e.event.id for e in events),
            "invoice_events": len(invoice_events.events),
            "invoice_event_types": invoice_event_types,
            "webhook_valid": hmac.compare_digest(signature, expected),
            "tampered_refused": not hmac.compare_digest(signature, tampered),
            "webhook_content_type": headers.get("content-type"),
            "webhook_id": headers.get("x-chargify-webhook-id"),
        }
    )
)

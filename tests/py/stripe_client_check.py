"""Stripe's own Python client against `billsync sim`: list every object with auto-pagination
and verify a delivered webhook with stripe.Webhook.construct_event.

Usage: python stripe_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {stream: [ids...]}, "webhook_event_id": "evt_..."}.
"""
import json
import sys
import urllib.request

import stripe

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
stripe.api_key = api_key
stripe.api_base = base + "/stripe"
stripe.max_network_retries = 0

lists = {
    "customers": lambda: stripe.Customer.list(limit=37),
    "invoices": lambda: stripe.Invoice.list(limit=100),
    "credit_notes": lambda: stripe.CreditNote.list(limit=100),
    "subscriptions": lambda: stripe.Subscription.list(limit=100, status="all"),
    "charges": lambda: stripe.Charge.list(limit=100),
    "refunds": lambda: stripe.Refund.list(limit=100),
}
ids = {name: [o.id for o in make().auto_paging_iter()] for name, make in lists.items()}

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)
event = stripe.Webhook.construct_event(sample["payload"], sample["signature"], sample["secret"])

# A tampered payload must be refused by Stripe's verifier too.
try:
    stripe.Webhook.construct_event(sample["payload"] + " ", sample["signature"], sample["secret"])
    tampered_refused = False
except stripe.error.SignatureVerificationError:
    tampered_refused = True

print(json.dumps({"ids": ids, "webhook_event_id": event.id, "tampered_refused": tampered_refused}))

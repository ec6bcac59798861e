"""Stripe's own Python client against `billsync sim`: list every object with auto-pagination
and verify a delivered webhook with stripe.Webhook.construct_event.

Also reads what Stripe keeps out of its objects the way Stripe's client does: each customer's
tax IDs (left out unless expanded, and their own list endpoint) and each invoice's lines (the
embedded list stops at ten; the rest is paged from /v1/invoices/{id}/lines).

Usage: python stripe_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {stream: [ids...]}, "webhook_event_id": "evt_...",
"unexpanded_tax_ids": n, "tax_ids": {customer: [values]}, "expanded_tax_ids": {customer: [values]},
"lines": {invoice: [line ids]}, "embedded_lines_max": n}.
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
objects = {name: list(make().auto_paging_iter()) for name, make in lists.items()}
ids = {name: [o.id for o in found] for name, found in objects.items()}

# Customers listed without expansion must not carry tax IDs; expanded or listed, they do.
unexpanded_tax_ids = sum(1 for c in objects["customers"] if "tax_ids" in c)
tax_ids = {c.id: [t.value for t in stripe.Customer.list_tax_ids(c.id, limit=2).auto_paging_iter()]
           for c in objects["customers"]}
expanded_tax_ids = {c.id: [t.value for t in c.tax_ids.data]
                    for c in stripe.Customer.list(limit=100, expand=["data.tax_ids"]).auto_paging_iter()}
lines = {i.id: [l.id for l in stripe.Invoice.list_lines(i.id, limit=100).auto_paging_iter()]
         for i in objects["invoices"]}
embedded_lines_max = max((len(i.lines.data) for i in objects["invoices"]), default=0)

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)
event = stripe.Webhook.construct_event(sample["payload"], sample["signature"], sample["secret"])

# A tampered payload must be refused by Stripe's verifier too.
try:
    stripe.Webhook.construct_event(sample["payload"] + " ", sample["signature"], sample["secret"])
    tampered_refused = False
except stripe.error.SignatureVerificationError:
    tampered_refused = True

print(json.dumps({"ids": ids, "webhook_event_id": event.id, "tampered_refused": tampered_refused,
                  "unexpanded_tax_ids": unexpanded_tax_ids, "tax_ids": tax_ids,
                  "expanded_tax_ids": expanded_tax_ids, "lines": lines,
                  "embedded_lines_max": embedded_lines_max}))

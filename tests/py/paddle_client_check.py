"""Paddle's own Python SDK (paddle-python-sdk) against `billsync sim`: list every entity with
the SDK's own pagination (following `meta.pagination.next`), parse every one into the SDK's
entity classes, and verify a simulator-signed webhook with the SDK's `Verifier`.

Usage: python paddle_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {stream: [ids...]}, "events": N, "parts": {"addresses": N,
"businesses": N, "tax_identifiers": N, "customers": N}, "webhook_event_id": ...,
"verified": bool, "tampered_refused": bool}.
"""
import json
import sys
import urllib.request

from paddle_billing import Client, Environment, Options
from paddle_billing.Entities.Event import Event
from paddle_billing.Notifications import Secret, Verifier
from paddle_billing.Resources.Addresses.Operations import ListAddresses
from paddle_billing.Resources.Adjustments.Operations import ListAdjustments
from paddle_billing.Resources.Businesses.Operations import ListBusinesses
from paddle_billing.Resources.Customers.Operations import ListCustomers
from paddle_billing.Resources.Events.Operations import ListEvents
from paddle_billing.Resources.Shared.Operations import Pager
from paddle_billing.Resources.Subscriptions.Operations import ListSubscriptions
from paddle_billing.Resources.Transactions.Operations import ListTransactions

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
client = Client(api_key, options=Options(Environment.SANDBOX), retry_count=0)

# The SDK joins paths onto its environment's host; the simulator serves Paddle under /paddle.
# Only the host changes: the SDK's own paths, parameters and `next` links are sent as they are.
host = Environment.SANDBOX.base_url
send = client.client.request


def to_sim(method, url, *args, **kwargs):
    if url.startswith(host):
        url = base + "/paddle" + url[len(host):]
    return send(method, url, *args, **kwargs)


client.client.request = to_sim

lists = {
    "customers": lambda: client.customers.list(ListCustomers(Pager(per_page=37))),
    "transactions": lambda: client.transactions.list(ListTransactions(Pager(per_page=200))),
    "subscriptions": lambda: client.subscriptions.list(ListSubscriptions(Pager(per_page=200))),
    "adjustments": lambda: client.adjustments.list(ListAdjustments(Pager(per_page=50))),
}
ids = {name: [entity.id for entity in make()] for name, make in lists.items()}
events = sum(1 for _ in client.events.list(ListEvents(Pager(per_page=200))))

# A customer's addresses and businesses are their own resources, paged like any list (one a
# page here, so the SDK follows `next`): parsed into the SDK's Address and Business entities.
parts = {"addresses": 0, "businesses": 0, "tax_identifiers": 0, "customers": 0}
for customer_id in ids["customers"][:25]:
    parts["customers"] += 1
    for address in client.addresses.list(customer_id, ListAddresses(Pager(per_page=1))):
        assert address.customer_id == customer_id
        parts["addresses"] += 1
    for business in client.businesses.list(customer_id, ListBusinesses(Pager(per_page=1))):
        assert business.customer_id == customer_id
        parts["businesses"] += 1
        parts["tax_identifiers"] += business.tax_identifier is not None

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)


class Delivered:
    """A received webhook as the Verifier reads it: raw body bytes and headers."""

    def __init__(self, body, headers):
        self.body = body.encode("utf-8")
        self.headers = headers


secret = Secret(sample["secret"])
verified = Verifier().verify(Delivered(sample["payload"], sample["headers"]), secret)
tampered_refused = not Verifier().verify(Delivered(sample["payload"] + " ", sample["headers"]), secret)
event = Event.from_dict(json.loads(sample["payload"]))

print(json.dumps({
    "ids": ids, "events": events, "parts": parts, "webhook_event_id": event.event_id,
    "verified": verified, "tampered_refused": tampered_refused,
}))

"""Recurly's own Python client (recurly 4.79.0) against `billsync sim`: list every object of
every list with the client's pager, read each kind back by its handle, see a 404 become the
client's NotFoundError, and check a sample webhook with Recurly's documented signature scheme
(the Python client has no verifier; see https://docs.recurly.com/docs/webhooks — JSON webhooks
carry `recurly-signature: <unix ms>,<hex HMAC-SHA256(secret, "<ms>.<raw body>")>`).

The client runs in strict mode (`RECURLY_STRICT_MODE`): every attribute of every answer
must be in the client's schema for v2021-02-25, or it raises. It also pages a long invoice's
line items (`list_invoice_line_items`) and reads a billing info (`get_billing_info`).

Usage: python recurly_client_check.py SIM_BASE_URL API_KEY
Prints one JSON document: {"ids": {list: [handles...]}, ...}.
"""
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import urllib.parse
import urllib.request

# Read when the package is imported: answers outside the schema raise.
os.environ["RECURLY_STRICT_MODE"] = "TRUE"
import recurly  # noqa: E402

assert recurly.STRICT_MODE

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
sim = urllib.parse.urlparse(base)


class SimConnection:
    """The client speaks HTTPS to v3.recurly.com:443; this sends its exact requests (method,
    path, headers, body) to the simulator's `/recurly` instead. Nothing else is changed."""

    def __init__(self):
        self.inner = http.client.HTTPConnection(sim.hostname, sim.port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        self.inner.request(method, "/recurly" + path, body, headers=headers or {})

    def getresponse(self):
        return self.inner.getresponse()


client = recurly.Client(api_key)
client._BaseClient__conn = SimConnection()

asc = {"sort": "updated_at", "order": "asc"}
accounts = list(client.list_accounts(params={"limit": 37, **asc}).items())
invoices = list(client.list_invoices(params={"limit": 200, **asc}).items())
subscriptions = list(client.list_subscriptions(params={"limit": 50}).items())
transactions = list(client.list_transactions(params={"limit": 200}).items())
ids = {
    "accounts": [a.code for a in accounts],
    "invoices": [i.number for i in invoices],
    "subscriptions": [s.uuid for s in subscriptions],
    "transactions": [t.uuid for t in transactions],
}

# Read one of each back by the handles billsync fetches with.
reads = {}
if accounts:
    reads["account"] = client.get_account("code-" + accounts[0].code).code
if invoices:
    inv = client.get_invoice("number-" + invoices[-1].number)
    reads["invoice"] = inv.number
    reads["invoice_total"] = inv.total
    reads["invoice_type"] = inv.type
if subscriptions:
    reads["subscription"] = client.get_subscription("uuid-" + subscriptions[0].uuid).uuid
if transactions:
    reads["transaction"] = client.get_transaction("uuid-" + transactions[0].uuid).uuid
# A long invoice embeds its first line items; the rest come from its line items list.
long = next((i for i in invoices if i.has_more_line_items), None)
if long is not None:
    reads["long_invoice"] = long.id
    reads["long_invoice_embedded"] = len(long.line_items)
    reads["long_invoice_lines"] = [
        li.id for li in client.list_invoice_line_items(long.id, params={"limit": 7, "order": "asc"}).items()
    ]
# Billing info: embedded in the account, and its own resource.
with_billing = next((a for a in accounts if a.billing_info is not None), None)
if with_billing is not None:
    reads["billing_info_account"] = with_billing.id
    reads["billing_info_vat"] = client.get_billing_info(with_billing.id).vat_number
    reads["billing_info_embedded_vat"] = with_billing.billing_info.vat_number
refund = next((i for i in invoices if i.previous_invoice_id), None)
if refund is not None:
    reads["refund_previous_type"] = client.get_invoice(refund.previous_invoice_id).type
try:
    client.get_account("code-no-such-account")
    not_found = False
except recurly.errors.NotFoundError:
    not_found = True


def verify(payload, header, secret, tolerance_ms=5 * 60 * 1000):
    """Recurly's documented check: timestamp (ms) within tolerance, then any signature."""
    timestamp, *signatures = header.split(",")
    if abs(time.time() * 1000 - int(timestamp)) > tolerance_ms:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)
header = sample["headers"]["recurly-signature"]
event = json.loads(sample["payload"])

print(json.dumps({
    "ids": ids,
    "reads": reads,
    "not_found_error": not_found,
    "created_at_is_datetime": bool(accounts) and accounts[0].created_at is not None,
    "webhook_verified": verify(sample["payload"], header, sample["secret"]),
    "tampered_refused": not verify(sample["payload"] + " ", header, sample["secret"]),
    "webhook": event,
}))

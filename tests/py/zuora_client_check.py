"""Zuora's own Python SDK (zuora-sdk 3.21.0) against `billsync sim`: the SDK's ZuoraClient
obtains an OAuth token with client credentials (POST /oauth/token), then lists every object of
every Object Query list with its cursors and reads invoices and subscriptions back by number.
A sample callout is checked against HTTP Basic auth as RFC 7617 defines it
(https://www.rfc-editor.org/rfc/rfc7617#section-2): Zuora's callouts have no signature scheme
of their own and no official verifier exists.

Usage: python zuora_client_check.py SIM_BASE_URL CLIENT_ID:CLIENT_SECRET
Prints one JSON document: {"ids": {list: [ids...]}, ...}.
"""
import base64
import json
import sys
import urllib.request

from zuora_sdk import Configuration
from zuora_sdk.zuora_client import ZuoraClient

base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
client_id, client_secret = api_key.split(":", 1)

config = Configuration()
config.host = base + "/zuora"
client = ZuoraClient(client_id, client_secret, env=None, config=config)
client.initialize()
token = client.get_token_info()
api = client.object_queries_api()


def walk(query, page_size, **kw):
    items, cursor, pages = [], None, 0
    while True:
        page = query(page_size=page_size, cursor=cursor, sort=["updateddate.ASC"], **kw)
        items.extend(page.data or [])
        pages += 1
        cursor = page.next_page
        if not cursor:
            return items, pages


accounts, account_pages = walk(api.query_accounts, 7, expand=["billto"])
invoices, _ = walk(api.query_invoices, 50, expand=["invoiceitems"])
memos, _ = walk(api.query_credit_memos, 50)
subscriptions, _ = walk(api.query_subscriptions, 50, expand=["rateplans", "rateplans.rateplancharges"])
payments, _ = walk(api.query_payments, 50, expand=["paymentapplications"])
refunds, _ = walk(api.query_refunds, 50)
ids = {
    "accounts": [a.id for a in accounts],
    "invoices": [i.id for i in invoices],
    "credit-memos": [m.id for m in memos],
    "subscriptions": [s.name for s in subscriptions],
    "payments": [p.id for p in payments],
    "refunds": ["refund-" + r.id for r in refunds],
}

reads = {"account_pages": account_pages}
if invoices:
    inv = api.query_invoice_by_key(key=invoices[-1].invoice_number, expand=["invoiceitems"])
    reads["invoice"] = inv.id
    reads["invoice_amount"] = inv.amount
    reads["invoice_items"] = len(inv.invoice_items or [])
# Payments name their invoice only in their applications (ExpandedPaymentApplication).
reads["payments_naming_an_invoice"] = sum(
    1 for p in payments if any(a.invoice_id for a in (p.payment_applications or []))
)
# The items of the longest invoice, read whole from the invoice-items list (the expansion
# holds at most pageSize of them).
if invoices:
    longest = max(invoices, key=lambda i: len(i.invoice_items or []))
    items, _ = walk(api.query_invoice_items, 50, filter=["invoiceid.EQ:" + longest.id])
    reads["longest_invoice_expanded_items"] = len(longest.invoice_items or [])
    reads["longest_invoice_items_listed"] = len(items)
    reads["longest_invoice_items_name_it"] = all(i.invoice_id == longest.id for i in items)
if subscriptions:
    sub = api.query_subscription_by_key(key=subscriptions[0].name)
    reads["subscription"] = sub.name
if accounts:
    reads["bill_to_email"] = accounts[0].bill_to.work_email if accounts[0].bill_to else None

with urllib.request.urlopen(base + "/_sim/sample_webhook") as r:
    sample = json.load(r)
headers = {k.lower(): v for k, v in sample["headers"].items()}
scheme, _, credentials = headers["authorization"].partition(" ")
body = json.loads(sample["payload"])
client.stop_auto_auth()

print(json.dumps({
    "ids": ids,
    "reads": reads,
    "token_obtained": bool(token["access_token"]) and not token["is_expired"],
    "basic_scheme": scheme.lower() == "basic",
    "basic_credentials_match": base64.b64decode(credentials).decode() == sample["secret"],
    "notification_id_header_matches_body": headers["zuora-notification-id"] == body["notificationId"],
    "webhook": body,
}))

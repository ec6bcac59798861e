// Chargebee webhook Basic-auth vectors, each verdict recorded from chargebee-node's own
// `basicAuthValidator` (Chargebee signs nothing; webhooks authenticate with HTTP Basic only).
//
//   npm install --prefix /tmp/cbvec chargebee
//   NODE_PATH=/tmp/cbvec/node_modules node scripts/gen-chargebee-vectors.mjs > tests/data/chargebee_webhook_vectors.json
//
// Each vector's `secrets` are billsync `webhook_secrets` entries (`username:password`); the
// validator callback accepts when the parsed username/password equal any entry split at its
// first ':', which is how billsync reads an entry.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + "/" : import.meta.url);
const { basicAuthValidator } = require("chargebee");
// The package exports no ./package.json: walk up from its entry point to read the version.
let dir = dirname(require.resolve("chargebee"));
while (!dir.endsWith("/chargebee")) dir = dirname(dir);
const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));

const b64 = (s) => Buffer.from(s, "utf8").toString("base64");
const BODY = JSON.stringify({
  id: "ev_16BPgETyVrQbiGhA",
  occurred_at: 1718899200,
  source: "admin_console",
  object: "event",
  api_version: "v2",
  event_type: "invoice_generated",
  content: { invoice: { id: "inv_0001", customer_id: "cus_01", status: "paid", currency_code: "USD", total: 4900, resource_version: 1718899200123 } },
});
const CURRENT = "billsync:hook-pass-9fK2mQ7x";
const OLD = "billsync-old:old-pass-3hJ5kD8s";
const COLON = "billsync:pa:ss:with:colons";

const vectors = [
  ["chargebee-valid", [CURRENT], { Authorization: "Basic " + b64(CURRENT) }, "valid credentials"],
  ["chargebee-rotation-old-entry", [CURRENT, OLD], { Authorization: "Basic " + b64(OLD) }, "second active entry during rotation"],
  ["chargebee-wrong-password", [CURRENT], { Authorization: "Basic " + b64("billsync:wrong") }, "right user, wrong password"],
  ["chargebee-missing-header", [CURRENT], {}, "no Authorization header"],
  ["chargebee-wrong-scheme", [CURRENT], { Authorization: "Bearer " + b64(CURRENT) }, "Bearer instead of Basic"],
  ["chargebee-password-with-colons", [COLON], { Authorization: "Basic " + b64(COLON) }, "decoded text splits at the first ':' only"],
  ["chargebee-password-colon-split-mistake", ["billsync:pa"], { Authorization: "Basic " + b64(COLON) }, "splitting at the last/every ':' would be wrong"],
  ["chargebee-no-colon", [CURRENT], { Authorization: "Basic " + b64("billsynchook-pass") }, "decoded text has no ':'"],
];

const out = [];
for (const [id, secrets, headers, note] of vectors) {
  const entries = secrets.map((e) => [e.slice(0, e.indexOf(":")), e.slice(e.indexOf(":") + 1)]);
  const validate = basicAuthValidator((u, p) => entries.some(([eu, ep]) => eu === u && ep === p));
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  let expected;
  try {
    await validate(lower);
    expected = "valid";
  } catch (e) {
    expected = "invalid";
  }
  out.push({ id, secrets, headers, body: BODY, now: 1718899205, tolerance_s: 300, expected, note,
    checked_with: `chargebee (npm) ${pkg.version} basicAuthValidator` });
}
process.stdout.write(JSON.stringify({ generated_by: "scripts/gen-chargebee-vectors.mjs", vectors: out }, null, 2) + "\n");

#!/usr/bin/env python3
"""Copies deploy/prometheus/billsync.rules.yml into monitoring.yaml's AMP rule groups namespace
(the `Data: |` block), verbatim. Run after editing the rules; tests/it/deploy.rs checks they agree."""
import pathlib

here = pathlib.Path(__file__).resolve().parent
rules = (here.parent / "prometheus" / "billsync.rules.yml").read_text()
path = here / "monitoring.yaml"
lines = path.read_text().split("\n")
start = lines.index("      Data: |") + 1
end = start
while end < len(lines) and (lines[end] == "" or lines[end].startswith("        ")):
    end += 1
while end > start and lines[end - 1] == "":
    end -= 1
block = [("        " + l) if l else "" for l in rules.rstrip("\n").split("\n")]
path.write_text("\n".join(lines[:start] + block + lines[end:]))

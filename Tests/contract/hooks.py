"""Schemathesis extensions for Gatehouse's contract test (ContractTests.swift), loaded through
SCHEMATHESIS_HOOKS.

`POST /v1/users/import` takes NDJSON (`application/x-ndjson`), which schemathesis has no
serializer for: the document describes the body as a string, so a generated string is sent as
its UTF-8 bytes, and anything else (a negative case) as one JSON line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    return {"data": (json.dumps(value) + "\n").encode("utf-8")}

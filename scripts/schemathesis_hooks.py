"""schemathesis hooks for the OpenAPI checks (SCHEMATHESIS_HOOKS).

The admin API's import takes JSON lines (`application/x-ndjson`), which
schemathesis has no serializer for: a generated body is sent as its JSON
lines, a string as its text.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", errors="ignore")}
    if isinstance(value, list):
        return {"data": "".join(json.dumps(item) + "\n" for item in value).encode()}
    return {"data": (json.dumps(value) + "\n").encode()}

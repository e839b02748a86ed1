#!/usr/bin/env python3
"""Checks the committed OpenAPI documents against a live gateway.

1. Every `openapi/<dialect>.json` validates as OpenAPI 3.1
   (openapi-spec-validator).
2. The demo gateway (`config/`, on free ports, a throwaway store) is started,
   and schemathesis fuzzes every demo tenant's live `/openapi.json` with the
   `not_a_server_error` and `response_schema_conformance` checks, once
   without a credential and once with a valid one.
3. openapi-python-client generates a client for every dialect, and each
   generated client, unmodified, is driven through every route of its
   dialect against the live gateway.

Run by ./scripts/test.sh inside the virtualenv it creates; exits non-zero on
the first failure. The gateway binary is $POLYAUTH_BIN or target/debug/polyauth.
"""

import importlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIALECTS = ["elyssa", "oauth-form", "payhub", "pixyle", "visualyze"]
# The demo tenants (config/tenants/*.toml) and their demo-only credentials.
PASSWORDS = {
    "oauth-form": ("demo@oauth-form.test", "demo-oauth-password"),
    "payhub": ("demo@payhub.test", "demo-payhub-password"),
    "pixyle": ("demo@pixyle.test", "demo-pixyle-password"),
    "visualyze": ("demo@visualyze.test", "demo-visualyze-password"),
}
ELYSSA_COMPANY = "8b2f5a1e-4c1d-4e8a-9f3b-2d7c6e5a4b10"
FUZZ_EXAMPLES = os.environ.get("OPENAPI_FUZZ_EXAMPLES", "25")


def step(text):
    print(f"\n--> {text}", flush=True)


def fail(text):
    print(f"FAILED: {text}", flush=True)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """The demo configuration served by the real binary."""

    def __init__(self, workdir):
        binary = os.environ.get("POLYAUTH_BIN", str(ROOT / "target/debug/polyauth"))
        self.base = f"http://127.0.0.1:{free_port()}"
        admin = f"127.0.0.1:{free_port()}"
        env = dict(
            os.environ,
            POLYAUTH__LISTEN=self.base.removeprefix("http://"),
            POLYAUTH__ADMIN_LISTEN=admin,
            POLYAUTH__STORE__KIND="embedded",
            POLYAUTH__STORE__PATH=str(workdir / "store.redb"),
            RUST_LOG="warn",
        )
        self.log = open(workdir / "gateway.log", "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--config", str(ROOT / "config")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                fail(f"the gateway exited; see {self.log.name}")
            try:
                urllib.request.urlopen(f"http://{admin}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        fail("the gateway did not come up within 60 s")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        logs = pathlib.Path(self.log.name).read_text()
        if "panicked" in logs:
            fail(f"the gateway panicked:\n{logs}")


def validate_documents():
    step("openapi-spec-validator: every committed document is valid OpenAPI 3.1")
    for dialect in DIALECTS:
        spec, _ = read_from_filename(str(ROOT / "openapi" / f"{dialect}.json"))
        if spec.get("openapi") != "3.1.0":
            fail(f"openapi/{dialect}.json is not OpenAPI 3.1.0")
        validate(spec)
        print(f"    openapi/{dialect}.json: valid")


def fuzz(gateway, dialect, headers=()):
    url = f"{gateway.base}/{dialect}/openapi.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", url,
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", FUZZ_EXAMPLES,
        "--exclude-tag", "admin",
        "--seed", "1",
        "--no-color",
    ]
    for header in headers:
        command += ["-H", header]
    label = " with a credential" if headers else ""
    print(f"    schemathesis {dialect}{label}", flush=True)
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout[-20000:])
        print(run.stderr[-5000:])
        fail(f"schemathesis found problems in {dialect}{label}")


def generate_clients(workdir):
    step("openapi-python-client: a client per dialect")
    packages = {}
    for dialect in DIALECTS:
        out = workdir / "clients" / dialect
        run = subprocess.run(
            [
                "openapi-python-client", "generate",
                "--path", str(ROOT / "openapi" / f"{dialect}.json"),
                "--output-path", str(out),
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0 or "Warning" in run.stdout + run.stderr:
            print(run.stdout, run.stderr)
            fail(f"openapi-python-client could not generate a clean client for {dialect}")
        [package] = [p.parent.name for p in out.glob("*/__init__.py")]
        sys.path.insert(0, str(out))
        packages[dialect] = package
        print(f"    {dialect}: {package}")
    return packages


class Driver:
    """Drives one generated client, as its README shows, through its routes."""

    def __init__(self, package, base):
        self.package = package
        self.base = base
        client = importlib.import_module(f"{package}.client")
        self.Client = client.Client
        self.AuthenticatedClient = client.AuthenticatedClient

    def api(self, tag, operation):
        return importlib.import_module(f"{self.package}.api.{tag}.{operation}")

    def model(self, name):
        return getattr(importlib.import_module(f"{self.package}.models"), name)

    def anonymous(self):
        return self.Client(base_url=self.base, raise_on_unexpected_status=True)

    def holding(self, token, header="Authorization", prefix="Bearer"):
        return self.AuthenticatedClient(
            base_url=self.base,
            token=token,
            auth_header_name=header,
            prefix=prefix,
            raise_on_unexpected_status=True,
        )


def expect(response, status, what):
    if response.status_code != status:
        fail(f"{what}: {response.status_code} {response.content[:500]!r}, expected {status}")
    if response.parsed is None and response.content:
        fail(f"{what}: the client could not parse {response.content[:500]!r}")
    print(f"    {what}: {status}")
    return response.parsed


def drive_pixyle(d):
    email, password = PASSWORDS["pixyle"]
    login = expect(
        d.api("pixyle", "login").sync_detailed(
            client=d.anonymous(), body=d.model("LoginBody")(email=email, password=password)
        ),
        200, "login",
    )
    access, refresh = login.access_token, login.refresh_token
    expect(d.api("gateway", "verify").sync_detailed(client=d.holding(access)), 200, "verify")
    refreshed = expect(
        d.api("pixyle", "refresh").sync_detailed(client=d.holding(refresh)), 200, "refresh"
    )
    expect(d.api("pixyle", "revoke").sync_detailed(client=d.holding(access)), 200, "revoke")
    expect(
        d.api("gateway", "verify_post").sync_detailed(client=d.holding(access)),
        401, "verify after revoke",
    )
    expect(
        d.api("gateway", "verify").sync_detailed(client=d.holding(refreshed.access_token)),
        200, "verify the refreshed token",
    )
    return [f"Authorization: Bearer {refreshed.access_token}"]


def drive_visualyze(d):
    email, password = PASSWORDS["visualyze"]
    for body in ("LoginFilesBody", "LoginDataBody", "LoginJsonBody"):
        login = expect(
            d.api("visualyze", "login").sync_detailed(
                "v1", client=d.anonymous(), body=d.model(body)(email=email, password=password)
            ),
            200, f"login ({body})",
        )
    access = login.data.token
    key = expect(
        d.api("visualyze", "generate_api_key").sync_detailed("v1", client=d.holding(access)),
        200, "generate_api_key",
    ).data.api_key
    expect(
        d.api("gateway", "verify").sync_detailed(client=d.holding(key, "x-api-key", "")),
        200, "verify with the API key",
    )
    expect(d.api("visualyze", "revoke").sync_detailed("v1", client=d.holding(access)), 200, "logout")
    expect(
        d.api("gateway", "verify").sync_detailed(client=d.holding(access)),
        401, "verify after logout",
    )
    return [f"x-api-key: {key}"]


def drive_payhub(d):
    email, password = PASSWORDS["payhub"]
    for body in ("LoginJsonBody", "LoginDataBody"):
        login = expect(
            d.api("payhub", "login").sync_detailed(
                client=d.anonymous(), body=d.model(body)(email_id=email, password=password)
            ),
            200, f"login ({body})",
        )
    data = login.response_data
    expect(
        d.api("gateway", "verify").sync_detailed(client=d.holding(data.token, "token", "")),
        200, "verify with the token",
    )
    expect(
        d.api("gateway", "verify_post").sync_detailed(client=d.holding(data.api_key, "apiKey", "")),
        200, "verify with the API key",
    )
    return [f"token: {data.token}"]


def drive_oauth_form(d):
    email, password = PASSWORDS["oauth-form"]
    for body in ("LoginDataBody", "LoginFilesBody", "LoginJsonBody"):
        login = expect(
            d.api("oauth_form", "login").sync_detailed(
                client=d.anonymous(), body=d.model(body)(username=email, password=password)
            ),
            200, f"login ({body})",
        )
    access = login.access_token
    expect(d.api("gateway", "verify").sync_detailed(client=d.holding(access)), 200, "verify")
    slid = expect(
        d.api("oauth_form", "refresh").sync_detailed(client=d.holding(access)), 200, "refresh"
    )
    expect(
        d.api("gateway", "verify").sync_detailed(client=d.holding(slid.access_token)),
        200, "verify the refreshed token",
    )
    return [f"Authorization: Bearer {slid.access_token}"]


def drive_elyssa(d):
    login = expect(
        d.api("elyssa", "client_login").sync_detailed(
            client=d.anonymous(), body=d.model("ClientLoginJsonBody")(company_id=ELYSSA_COMPANY)
        ),
        200, "client_login (JSON)",
    )
    login = expect(
        d.api("elyssa", "client_login").sync_detailed(
            client=d.anonymous(), body=d.model("ClientLoginDataBody")(company_id=ELYSSA_COMPANY)
        ),
        200, "client_login (form)",
    )
    refreshed = expect(
        d.api("elyssa", "refresh").sync_detailed(
            client=d.anonymous(), body=d.model("RefreshJsonBody")(refresh=login.refresh_token)
        ),
        200, "refresh",
    )
    expect(
        d.api("gateway", "verify").sync_detailed(
            client=d.holding(refreshed.access_token), x_company_id=ELYSSA_COMPANY
        ),
        200, "verify for its company",
    )
    expect(
        d.api("gateway", "verify").sync_detailed(
            client=d.holding(refreshed.access_token), x_company_id="someone-else"
        ),
        403, "verify for another company",
    )
    return [f"Authorization: Bearer {refreshed.access_token}"]


DRIVERS = {
    "elyssa": drive_elyssa,
    "oauth-form": drive_oauth_form,
    "payhub": drive_payhub,
    "pixyle": drive_pixyle,
    "visualyze": drive_visualyze,
}


def main():
    validate_documents()
    with tempfile.TemporaryDirectory(prefix="polyauth-openapi-") as tmp:
        workdir = pathlib.Path(tmp)
        packages = generate_clients(workdir)
        gateway = Gateway(workdir)
        try:
            credentials = {}
            for dialect in DIALECTS:
                step(f"generated {dialect} client against {gateway.base}/{dialect}")
                driver = Driver(packages[dialect], f"{gateway.base}/{dialect}")
                credentials[dialect] = DRIVERS[dialect](driver)
            step("schemathesis: live documents, server errors and response schemas")
            for dialect in DIALECTS:
                fuzz(gateway, dialect)
                fuzz(gateway, dialect, credentials[dialect])
        finally:
            gateway.stop()
    print("\nOpenAPI checks: all documents valid, all clients driven, nothing found by fuzzing")


if __name__ == "__main__":
    main()

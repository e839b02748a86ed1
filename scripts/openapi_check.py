#!/usr/bin/env python3
"""Checks the committed OpenAPI documents against a live gateway.

1. Every `openapi/<dialect>.json` validates as OpenAPI 3.1
   (openapi-spec-validator).
2. openapi-python-client generates a client for every dialect, and each
   generated client, unmodified, is driven through every route of its
   dialect against the demo gateway (`config/`, on free ports, a throwaway
   store); every answer must have the documented status, parse, and
   validate against the live document's schema for that status.
3. schemathesis fuzzes every demo tenant's live `/openapi.json`: no server
   error, every response's status, content type, headers and body as
   documented; once without a credential and once with a valid one (the
   operations that would end that credential are left to the drivers).
4. schemathesis fuzzes the admin API's live `/admin/v1/openapi.json`
   (`openapi/admin.json`) the same way, on a demo tenant, with and without
   the admin token (a random one for the run).

Run by ./scripts/test.sh inside the virtualenv it creates; exits non-zero on
the first failure. The gateway binary is $POLYAUTH_BIN or target/debug/polyauth.
"""

import importlib
import json
import os
import secrets
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import httpx
from jsonschema import Draft202012Validator
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
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
# Operations that end the credential they are given: driven, not fuzzed with it.
CREDENTIAL_ENDING = ["revoke", "refresh"]
# Everything here talks to this machine only, whatever proxy CI sets.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


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
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        binary = os.environ.get("POLYAUTH_BIN", str(target / "debug/polyauth"))
        self.base = f"http://127.0.0.1:{free_port()}"
        admin = f"127.0.0.1:{free_port()}"
        self.admin = f"http://{admin}"
        # The admin API on, with a token made for this run.
        self.admin_token = secrets.token_urlsafe(32)
        env = dict(
            os.environ,
            POLYAUTH__LISTEN=self.base.removeprefix("http://"),
            POLYAUTH__ADMIN_LISTEN=admin,
            POLYAUTH__ADMIN_TOKEN_ENV="POLYAUTH_CHECK_ADMIN_TOKEN",
            POLYAUTH_CHECK_ADMIN_TOKEN=self.admin_token,
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
                self.stop()
                fail(f"the gateway exited:\n{self.logs()}")
            try:
                urllib.request.urlopen(f"http://{admin}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        fail(f"the gateway did not come up within 60 s:\n{self.logs()}")

    def logs(self):
        self.log.flush()
        return pathlib.Path(self.log.name).read_text()[-20000:]

    def stop(self):
        """Stops it (SIGTERM, then SIGKILL after 30 s); True if it exited cleanly."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return False
        return self.process.returncode == 0 and "panicked" not in self.logs()


def validate_documents():
    step("openapi-spec-validator: every committed document is valid OpenAPI 3.1")
    for dialect in DIALECTS + ["admin"]:
        spec, _ = read_from_filename(str(ROOT / "openapi" / f"{dialect}.json"))
        if spec.get("openapi") != "3.1.0":
            fail(f"openapi/{dialect}.json is not OpenAPI 3.1.0")
        validate(spec)
        print(f"    openapi/{dialect}.json: valid")


def fuzz(gateway, dialect, workdir, headers=()):
    url = f"{gateway.base}/{dialect}/openapi.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", url,
        "--checks", CHECKS,
        "--max-examples", FUZZ_EXAMPLES,
        "--seed", "1",
        "--no-color",
    ]
    for header in headers:
        command += ["-H", header]
    if headers:
        for operation_id in CREDENTIAL_ENDING:
            command += ["--exclude-operation-id", operation_id]
    label = " with a credential" if headers else ""
    print(f"    schemathesis {dialect}{label}", flush=True)
    # Its own state (.schemathesis/, .hypothesis/) goes in the throwaway
    # directory: every run starts fresh and the work tree stays clean.
    run = subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=900)
    if run.returncode != 0:
        print(run.stdout[-20000:])
        print(run.stderr[-5000:])
        fail(f"schemathesis found problems in {dialect}{label}")


# The demo tenant the admin API is fuzzed on (its path parameter, fixed).
ADMIN_TENANT = "pixyle-demo"


def fuzz_admin(gateway, workdir, with_token):
    config = workdir / "schemathesis-admin.toml"
    config.write_text(f'[parameters]\n"path.tenant" = "{ADMIN_TENANT}"\n')
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{gateway.admin}/admin/v1/openapi.json",
        "--checks", CHECKS,
        "--max-examples", FUZZ_EXAMPLES,
        "--seed", "1",
        "--no-color",
    ]
    if with_token:
        command += ["-H", f"Authorization: Bearer {gateway.admin_token}"]
    label = " with the admin token" if with_token else ""
    print(f"    schemathesis admin API{label}", flush=True)
    # The import's JSON lines need a serializer of ours.
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
               PYTHONPATH=str(ROOT / "scripts"))
    run = subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=900,
                         env=env)
    if run.returncode != 0:
        print(run.stdout[-20000:].replace(gateway.admin_token, "<admin token>"))
        print(run.stderr[-5000:].replace(gateway.admin_token, "<admin token>"))
        fail(f"schemathesis found problems in the admin API{label}")
    cases = [line.strip() for line in run.stdout.splitlines() if " generated, " in line]
    print(f"      {cases[-1] if cases else 'no test case count printed'}", flush=True)


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
            timeout=300,
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
    """Drives one generated client, as its README shows, through its routes,
    checking every answer against the tenant's live document."""

    TIMEOUT = httpx.Timeout(30.0)

    def __init__(self, package, base):
        self.package = package
        self.base = base
        client = importlib.import_module(f"{package}.client")
        self.Client = client.Client
        self.AuthenticatedClient = client.AuthenticatedClient
        with urllib.request.urlopen(f"{base}/openapi.json", timeout=30) as answer:
            document = json.load(answer)
        self.operations = {
            operation["operationId"]: operation
            for item in document["paths"].values()
            for operation in item.values()
            if isinstance(operation, dict) and "operationId" in operation
        }

    def call(self, tag, operation_id, status, what, *args, **kwargs):
        module = importlib.import_module(f"{self.package}.api.{tag}.{operation_id}")
        response = module.sync_detailed(*args, **kwargs)
        if response.status_code != status:
            fail(f"{what}: {response.status_code} {response.content[:500]!r}, expected {status}")
        documented = self.operations[operation_id]["responses"].get(str(status))
        if documented is None:
            fail(f"{what}: status {status} is not documented")
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            if response.parsed is None:
                fail(f"{what}: the client could not parse {response.content[:500]!r}")
            errors = list(Draft202012Validator(schema).iter_errors(json.loads(response.content)))
            if errors:
                fail(f"{what}: the body does not match its schema: {errors[0].message}")
        elif response.content:
            fail(f"{what}: a body where the document says none: {response.content[:200]!r}")
        print(f"    {what}: {status}")
        return response.parsed

    def model(self, name):
        return getattr(importlib.import_module(f"{self.package}.models"), name)

    def anonymous(self):
        return self.Client(base_url=self.base, timeout=self.TIMEOUT, raise_on_unexpected_status=True)

    def holding(self, token, header="Authorization", prefix="Bearer"):
        return self.AuthenticatedClient(
            base_url=self.base,
            token=token,
            auth_header_name=header,
            prefix=prefix,
            timeout=self.TIMEOUT,
            raise_on_unexpected_status=True,
        )


def drive_pixyle(d):
    email, password = PASSWORDS["pixyle"]
    login = d.call(
        "pixyle", "login", 200, "login",
        client=d.anonymous(), body=d.model("LoginBody")(email=email, password=password),
    )
    access, refresh = login.access_token, login.refresh_token
    d.call("gateway", "verify", 200, "verify", client=d.holding(access))
    refreshed = d.call("pixyle", "refresh", 200, "refresh", client=d.holding(refresh))
    d.call("pixyle", "revoke", 200, "revoke", client=d.holding(access))
    d.call("gateway", "verify_post", 401, "verify after revoke", client=d.holding(access))
    d.call(
        "gateway", "verify", 200, "verify the refreshed token",
        client=d.holding(refreshed.access_token),
    )
    return [f"Authorization: Bearer {refreshed.access_token}"]


def drive_visualyze(d):
    email, password = PASSWORDS["visualyze"]
    for body in ("LoginFilesBody", "LoginDataBody", "LoginJsonBody"):
        login = d.call(
            "visualyze", "login", 200, f"login ({body})",
            "v1", client=d.anonymous(), body=d.model(body)(email=email, password=password),
        )
    access = login.data.token
    key = d.call(
        "visualyze", "generate_api_key", 200, "generate_api_key", "v1", client=d.holding(access)
    ).data.api_key
    d.call(
        "gateway", "verify", 200, "verify with the API key",
        client=d.holding(key, "x-api-key", ""),
    )
    d.call("visualyze", "revoke", 200, "logout", "v1", client=d.holding(access))
    d.call("gateway", "verify", 401, "verify after logout", client=d.holding(access))
    return [f"x-api-key: {key}"]


def drive_payhub(d):
    email, password = PASSWORDS["payhub"]
    for body in ("LoginJsonBody", "LoginDataBody"):
        login = d.call(
            "payhub", "login", 200, f"login ({body})",
            client=d.anonymous(), body=d.model(body)(email_id=email, password=password),
        )
    data = login.response_data
    d.call(
        "gateway", "verify", 200, "verify with the token",
        client=d.holding(data.token, "token", ""),
    )
    d.call(
        "gateway", "verify_post", 200, "verify with the API key",
        client=d.holding(data.api_key, "apiKey", ""),
    )
    return [f"token: {data.token}"]


def drive_oauth_form(d):
    email, password = PASSWORDS["oauth-form"]
    for body in ("LoginDataBody", "LoginFilesBody", "LoginJsonBody"):
        login = d.call(
            "oauth_form", "login", 200, f"login ({body})",
            client=d.anonymous(), body=d.model(body)(username=email, password=password),
        )
    access = login.access_token
    d.call("gateway", "verify", 200, "verify", client=d.holding(access))
    slid = d.call("oauth_form", "refresh", 200, "refresh", client=d.holding(access))
    d.call(
        "gateway", "verify", 200, "verify the refreshed token",
        client=d.holding(slid.access_token),
    )
    return [f"Authorization: Bearer {slid.access_token}"]


def drive_elyssa(d):
    for body in ("ClientLoginJsonBody", "ClientLoginDataBody"):
        login = d.call(
            "elyssa", "client_login", 200, f"client_login ({body})",
            client=d.anonymous(), body=d.model(body)(company_id=ELYSSA_COMPANY),
        )
    refreshed = d.call(
        "elyssa", "refresh", 200, "refresh (JSON)",
        client=d.anonymous(), body=d.model("RefreshJsonBody")(refresh=login.refresh_token),
    )
    d.call(
        "elyssa", "refresh", 200, "refresh (form)",
        client=d.anonymous(), body=d.model("RefreshDataBody")(refresh=login.refresh_token),
    )
    d.call(
        "gateway", "verify", 200, "verify for its company",
        client=d.holding(refreshed.access_token), x_company_id=ELYSSA_COMPANY,
    )
    d.call(
        "gateway", "verify", 403, "verify for another company",
        client=d.holding(refreshed.access_token), x_company_id="someone-else",
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
    # A SIGTERM (CI stopping) still stops the gateway on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    validate_documents()
    with tempfile.TemporaryDirectory(prefix="polyauth-openapi-") as tmp:
        workdir = pathlib.Path(tmp)
        packages = generate_clients(workdir)
        gateway = Gateway(workdir)
        clean = False
        try:
            credentials = {}
            for dialect in DIALECTS:
                step(f"generated {dialect} client against {gateway.base}/{dialect}")
                driver = Driver(packages[dialect], f"{gateway.base}/{dialect}")
                credentials[dialect] = DRIVERS[dialect](driver)
                keys = driver.call("gateway", "jwks", 200, "jwks", client=driver.anonymous())
                if not keys.keys:
                    fail(f"{dialect}: the JWKS lists no key")
            step("schemathesis: live documents, every answer as documented")
            for dialect in DIALECTS:
                fuzz(gateway, dialect, workdir)
                fuzz(gateway, dialect, workdir, credentials[dialect])
            step("schemathesis: the admin API, every answer as documented")
            fuzz_admin(gateway, workdir, with_token=False)
            fuzz_admin(gateway, workdir, with_token=True)
            clean = True
        finally:
            stopped = gateway.stop()
            if not clean or not stopped:
                print(f"gateway log:\n{gateway.logs()}")
        if not stopped:
            fail("the gateway did not stop cleanly (or panicked)")
    print("\nOpenAPI checks: all documents valid, all clients driven, nothing found by fuzzing (dialects and admin API)")


if __name__ == "__main__":
    main()

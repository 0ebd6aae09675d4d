"""Fixtures for driving a real `hearth server` with the PyPI cloudfoundry-client.

One server per pytest session. Every name created by the suite carries a
random per-run suffix so the suite can share a PostgreSQL database with other
runs (HEARTH_TEST_DATABASE_URL).
"""

import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from cloudfoundry_client.client import CloudFoundryClient

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "hearth"

# Fixed defaults (not random) so that a server reusing a shared database seeded
# by an earlier run still accepts the same credentials. Overridable from env.
ADMIN_PASSWORD = os.environ.get("HEARTH_TEST_ADMIN_PASSWORD", "hearth-test-admin-password")
ADMIN_CLIENT_SECRET = os.environ.get("HEARTH_TEST_ADMIN_CLIENT_SECRET", "hearth-test-admin-client-secret")

READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
JOB_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 30


# --------------------------------------------------------------------------
# small helpers (importable from tests as `from conftest import ...`)
# --------------------------------------------------------------------------

def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_jwt(token: str):
    """Return (header, payload, signing_input, signature) without verifying."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a JWS compact token: {token[:40]}..."
    header = json.loads(b64url_decode(parts[0]))
    payload = json.loads(b64url_decode(parts[1]))
    return header, payload, (parts[0] + "." + parts[1]).encode("ascii"), b64url_decode(parts[2])


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_verify(signing_input: bytes, signature: bytes, n: int, e: int) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256, in pure Python (no crypto dependency)."""
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    m = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return m == expected


def cf_error(exc) -> dict:
    """First V3 error of a cloudfoundry_client InvalidStatusCode."""
    body = exc.body
    assert isinstance(body, dict) and body.get("errors"), f"not a V3 error body: {body!r}"
    return body["errors"][0]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hearth:
    """A running server plus raw-HTTP helpers."""

    def __init__(self, base_url: str, proc: subprocess.Popen, stderr_path: Path, run_id: str):
        self.base_url = base_url
        self.proc = proc
        self.stderr_path = stderr_path
        self.run_id = run_id
        self.admin_password = ADMIN_PASSWORD
        self.admin_client_secret = ADMIN_CLIENT_SECRET
        self.http = requests.Session()
        self.http.trust_env = False  # never go through a proxy to 127.0.0.1
        self.created_org_guids: list[str] = []

    # names ---------------------------------------------------------------
    def name(self, prefix: str) -> str:
        """A name unique to this run (and to this call)."""
        return f"pyt-{prefix}-{self.run_id}-{secrets.token_hex(3)}"

    # raw http --------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("http://") or path_or_url.startswith("https://"):
            return path_or_url
        return self.base_url + path_or_url

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {}) or {}
        headers.setdefault("Accept", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        return self.http.request(method, self.url(path), headers=headers, **kwargs)

    def token(self, grant_type: str, client_id: str, client_secret: str = "", **form) -> requests.Response:
        """POST /oauth/token the way UAA clients do (HTTP Basic client auth)."""
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        return self.http.post(
            self.base_url + "/oauth/token",
            data=dict(grant_type=grant_type, **form),
            headers={"Accept": "application/json", "Authorization": f"Basic {basic}"},
            timeout=HTTP_TIMEOUT_S,
        )

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return "<no stderr captured>"

    def create_org(self, client: CloudFoundryClient, name: str | None = None, **kwargs):
        """Create an org through the library and remember it for cleanup at session end."""
        org = client.v3.organizations.create(name or self.name("org"), suspended=False, **kwargs)
        self.created_org_guids.append(org["guid"])
        return org

    # library clients -------------------------------------------------------
    def client(self, client_id: str = "cf", client_secret: str = "") -> CloudFoundryClient:
        return CloudFoundryClient(self.base_url, client_id=client_id, client_secret=client_secret)

    def user_client(self, username: str, password: str) -> CloudFoundryClient:
        c = self.client()
        c.init_with_user_credentials(username, password)
        return c

    def wait_for_job(self, client: CloudFoundryClient, job_guid: str, timeout: float = JOB_TIMEOUT_S):
        """Poll GET /v3/jobs/:guid through the library until COMPLETE (fail on FAILED/timeout)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            job = client.v3.jobs.get(job_guid)
            if job["state"] == "COMPLETE":
                return job
            assert job["state"] != "FAILED", f"job {job_guid} failed: {job.get('errors')}"
            assert job["state"] == "PROCESSING", f"unexpected job state: {job!r}"
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_guid} still {job['state']} after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hearth(tmp_path_factory) -> Hearth:
    binary = Path(os.environ.get("HEARTH_BIN", str(DEFAULT_BIN)))
    if not binary.exists():
        pytest.fail(f"hearth binary not found at {binary} (build it or set HEARTH_BIN)")

    data_dir = tmp_path_factory.mktemp("hearth-data")
    logs = tmp_path_factory.mktemp("hearth-logs")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"

    # The suite drives the API only: no containers, nothing under /var/lib/hearth.
    cmd = [str(binary), "server", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--no-containers"]
    db_url = os.environ.get("HEARTH_TEST_DATABASE_URL")
    if db_url:
        cmd += ["--database-url", db_url]

    env = dict(os.environ)
    env["HEARTH_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    env["HEARTH_ADMIN_CLIENT_SECRET"] = ADMIN_CLIENT_SECRET

    stdout_path = logs / "stdout.log"
    stderr_path = logs / "stderr.log"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    run_id = uuid.uuid4().hex[:8]
    h = Hearth(base_url, proc, stderr_path, run_id)

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"hearth server exited with {proc.returncode} before becoming ready\n"
                f"command: {' '.join(cmd)}\n--- stderr ---\n{h.stderr_text()}"
            )
        try:
            r = h.http.get(base_url + "/", timeout=2)
            if r.status_code == 200:
                break
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(
                f"hearth server not ready after {READY_TIMEOUT_S}s (last: {last})\n"
                f"command: {' '.join(cmd)}\n--- stderr ---\n{h.stderr_text()}"
            )
        time.sleep(0.1)

    yield h

    h.http.close()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"hearth server did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n"
                    f"--- stderr ---\n{h.stderr_text()}")
    assert rc == 0, f"hearth server exited with {rc} after SIGTERM\n--- stderr ---\n{h.stderr_text()}"


@pytest.fixture(scope="session")
def admin(hearth) -> CloudFoundryClient:
    """The library logged in as the `admin` user through the `cf` client (password grant).

    At session end it deletes (best effort) every org the suite created, so a
    shared PostgreSQL database does not grow without bound.
    """
    client = hearth.user_client("admin", hearth.admin_password)
    yield client
    job_guids = []
    for guid in hearth.created_org_guids:
        try:
            job_guid = client.v3.organizations.remove(guid, asynchronous=True)
            if job_guid:
                job_guids.append(job_guid)
        except Exception:  # already deleted by a test, or cleanup not possible
            pass
    for job_guid in job_guids:  # let the deletes finish before the server is stopped
        try:
            hearth.wait_for_job(client, job_guid, timeout=10)
        except BaseException:  # noqa: B036 - best effort only (pytest.fail raises BaseException)
            pass


@pytest.fixture(scope="session")
def admin_token(admin) -> str:
    return admin._access_token


@pytest.fixture(scope="session")
def uaa_admin_token(hearth) -> str:
    """A client_credentials token of the `admin` client (scim.read/scim.write, uaa.admin)."""
    r = hearth.token("client_credentials", "admin", hearth.admin_client_secret)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def org(hearth, admin):
    """A fresh org for one test."""
    return hearth.create_org(admin)


@pytest.fixture
def space(hearth, admin, org):
    return admin.v3.spaces.create(hearth.name("space"), org["guid"])

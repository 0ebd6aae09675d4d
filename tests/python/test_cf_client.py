"""Hearth driven by the PyPI `cloudfoundry-client` library (V3 managers), as a user would.

Run with:  python -m pytest tests/python -q
"""

import time
import uuid
from http import HTTPStatus
from urllib.parse import parse_qs, urlparse

import pytest
from cloudfoundry_client.client import CloudFoundryClient
from cloudfoundry_client.errors import InvalidStatusCode
from oauth2_client.credentials_manager import OAuthError

from conftest import b64url_decode, cf_error, decode_jwt, rs256_verify


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def guids(entities) -> list:
    return [e["guid"] for e in entities]


def assert_not_found(exc_info, detail_word: str | None = None):
    exc = exc_info.value
    assert exc.status_code == HTTPStatus.NOT_FOUND, f"expected 404, got {exc}"
    err = cf_error(exc)
    assert err["code"] == 10010, err
    assert err["title"] == "CF-ResourceNotFound", err
    assert isinstance(err.get("detail"), str) and err["detail"], err
    if detail_word:
        assert detail_word.lower() in err["detail"].lower(), err


def check_uaa_token_claims(hearth, token: str) -> dict:
    """Header/payload checks shared by every kind of access token. Returns the payload."""
    header, payload, signing_input, signature = decode_jwt(token)
    assert header["alg"] == "RS256", header
    assert header.get("kid"), f"no kid in JWT header: {header}"

    now = time.time()
    assert isinstance(payload["iat"], int) and isinstance(payload["exp"], int), payload
    assert payload["exp"] > payload["iat"], payload
    assert payload["iat"] <= now + 60, "iat is in the future"
    assert payload["exp"] > now, "token already expired"
    assert isinstance(payload["iss"], str) and payload["iss"].startswith("http"), payload
    assert payload["iss"].endswith("/oauth/token"), f"UAA iss is <uaa url>/oauth/token: {payload['iss']}"
    assert isinstance(payload["scope"], list), f"scope claim must be a JSON array: {payload['scope']!r}"
    assert payload.get("jti"), payload
    assert payload.get("client_id") and payload.get("cid") == payload["client_id"], payload
    assert payload.get("zid") == "uaa", payload
    assert isinstance(payload.get("aud"), list) and payload["aud"], payload

    # the kid names one of the published signing keys, and that key verifies the signature
    r = hearth.request("GET", "/token_keys")
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    matching = [k for k in keys if k.get("kid") == header["kid"]]
    assert matching, f"kid {header['kid']!r} not among /token_keys kids {[k.get('kid') for k in keys]}"
    key = matching[0]
    assert key.get("kty") == "RSA" and key.get("alg") == "RS256", key
    assert key.get("use", "sig") == "sig", key
    if key.get("n") and key.get("e"):
        n = int.from_bytes(b64url_decode(key["n"]), "big")
        e = int.from_bytes(b64url_decode(key["e"]), "big")
        assert rs256_verify(signing_input, signature, n, e), "JWT signature does not verify with its /token_keys key"
    return payload


# ---------------------------------------------------------------------------
# 1. login
# ---------------------------------------------------------------------------

def test_root_document_links_used_by_the_library(hearth):
    r = hearth.request("GET", "/")
    assert r.status_code == 200
    links = r.json()["links"]
    # the library strips a trailing "/v3" from this href and appends "/v3/<resource>"
    assert links["cloud_controller_v3"]["href"] == hearth.base_url + "/v3", links
    # token endpoint = (login or uaa or self).href + "/oauth/token"
    assert links["login"]["href"] == hearth.base_url, links
    assert links["uaa"]["href"] == hearth.base_url, links
    if links.get("cloud_controller_v2") is not None:
        assert links["cloud_controller_v2"]["href"] == hearth.base_url + "/v2", links


def test_login_with_password_grant(hearth):
    client = CloudFoundryClient(hearth.base_url)  # client_id "cf", empty secret
    assert client.info.api_v3_url == hearth.base_url + "/v3"
    assert client.info.authorization_endpoint == hearth.base_url
    client.init_with_user_credentials("admin", hearth.admin_password)
    # the password grant must return a refresh token (the library requires it)
    assert client.refresh_token
    payload = check_uaa_token_claims(hearth, client._access_token)
    assert payload["user_name"] == "admin", payload
    assert payload["client_id"] == "cf", payload
    assert payload["grant_type"] == "password", payload
    assert payload.get("origin") == "uaa", payload
    assert payload.get("user_id") and payload.get("sub") == payload["user_id"], payload
    for scope in ("cloud_controller.admin", "scim.read", "scim.write"):
        assert scope in payload["scope"], payload["scope"]
    assert "cloud_controller" in payload["aud"], payload["aud"]

    # the token works against the API through the library
    client.v3.organizations.list(per_page=1)

    # and against /userinfo
    r = hearth.request("GET", "/userinfo", token=client._access_token)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["user_name"] == "admin", info
    assert info["user_id"] == payload["user_id"], info
    assert info["sub"] == payload["user_id"], info


def test_login_with_client_credentials(hearth):
    client = hearth.client("admin", hearth.admin_client_secret)
    client.init_with_client_credentials()
    payload = check_uaa_token_claims(hearth, client._access_token)
    assert payload["client_id"] == "admin", payload
    assert payload["sub"] == "admin", payload
    assert payload["grant_type"] == "client_credentials", payload
    assert "user_name" not in payload and "user_id" not in payload, payload
    for scope in ("cloud_controller.admin", "scim.read", "scim.write", "uaa.admin"):
        assert scope in payload["scope"], payload["scope"]
    # an admin client can use the API
    org = hearth.create_org(client)
    assert client.v3.organizations.get(org["guid"])["name"] == org["name"]


def test_wrong_password_raises_oauth_error(hearth):
    with pytest.raises(OAuthError) as ei:
        hearth.user_client("admin", hearth.admin_password + "-wrong")
    assert ei.value.status_code == HTTPStatus.UNAUTHORIZED
    assert ei.value.error == "unauthorized", str(ei.value)

    with pytest.raises(OAuthError) as ei:
        hearth.user_client("no-such-user-" + uuid.uuid4().hex[:8], "whatever")
    assert ei.value.status_code == HTTPStatus.UNAUTHORIZED


def test_wrong_client_secret_raises_oauth_error(hearth):
    client = hearth.client("admin", hearth.admin_client_secret + "-wrong")
    with pytest.raises(OAuthError) as ei:
        client.init_with_client_credentials()
    assert ei.value.status_code == HTTPStatus.UNAUTHORIZED


def test_api_rejects_missing_and_invalid_tokens(hearth):
    r = hearth.request("GET", "/v3/organizations")
    assert r.status_code == 401, r.text
    err = r.json()["errors"][0]
    assert (err["code"], err["title"]) == (10002, "CF-NotAuthenticated"), err

    # the library refreshes its token only on exactly this error (code 1000)
    r = hearth.request("GET", "/v3/organizations", token="not.a.token")
    assert r.status_code == 401, r.text
    err = r.json()["errors"][0]
    assert (err["code"], err["title"]) == (1000, "CF-InvalidAuthToken"), err


# ---------------------------------------------------------------------------
# 2. orgs and spaces
# ---------------------------------------------------------------------------

def test_create_get_list_orgs(hearth, admin):
    name = hearth.name("org")
    org = hearth.create_org(admin, name, meta_labels={"hearth-test-run": hearth.run_id})
    assert org["name"] == name
    assert org["suspended"] is False
    assert org["created_at"] and org["updated_at"]
    assert org["metadata"]["labels"] == {"hearth-test-run": hearth.run_id}
    assert org["metadata"]["annotations"] == {}
    assert org["links"]["self"]["href"] == f"{hearth.base_url}/v3/organizations/{org['guid']}"
    assert "quota" in org["relationships"]
    uuid.UUID(org["guid"])

    got = admin.v3.organizations.get(org["guid"])
    assert got["guid"] == org["guid"] and got["name"] == name

    # filter by names (the library sends names=a%2Cb)
    other = hearth.create_org(admin)
    listed = list(admin.v3.organizations.list(names=[name, other["name"]]))
    assert sorted(guids(listed)) == sorted([org["guid"], other["guid"]])
    listed = list(admin.v3.organizations.list(names=name))
    assert guids(listed) == [org["guid"]]
    assert admin.v3.organizations.get_first(names=name)["guid"] == org["guid"]
    assert list(admin.v3.organizations.list(names=hearth.name("absent"))) == []

    # filter by guids
    listed = list(admin.v3.organizations.list(guids=[org["guid"]]))
    assert guids(listed) == [org["guid"]]

    # update
    new_name = hearth.name("renamed")
    updated = admin.v3.organizations.update(org["guid"], new_name)
    assert updated["name"] == new_name
    assert admin.v3.organizations.get(org["guid"])["name"] == new_name


def test_duplicate_org_name_is_unprocessable(hearth, admin, org):
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.organizations.create(org["name"], suspended=False)
    assert ei.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    err = cf_error(ei.value)
    assert (err["code"], err["title"]) == (10008, "CF-UnprocessableEntity"), err


def test_unknown_org_is_not_found(admin):
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.organizations.get(str(uuid.uuid4()))
    assert_not_found(ei, "organization")


def test_create_get_list_spaces(hearth, admin, org):
    name = hearth.name("space")
    space = admin.v3.spaces.create(name, org["guid"])
    assert space["name"] == name
    assert space["relationships"]["organization"]["data"]["guid"] == org["guid"]
    assert space["links"]["self"]["href"] == f"{hearth.base_url}/v3/spaces/{space['guid']}"
    assert space["links"]["organization"]["href"] == f"{hearth.base_url}/v3/organizations/{org['guid']}"

    # navigable link built by the library from links.organization
    assert space.organization()["guid"] == org["guid"]

    got = admin.v3.spaces.get(space["guid"])
    assert got["guid"] == space["guid"] and got["name"] == name

    second = admin.v3.spaces.create(hearth.name("space"), org["guid"])
    in_org = list(admin.v3.spaces.list(organization_guids=org["guid"]))
    assert sorted(guids(in_org)) == sorted([space["guid"], second["guid"]])

    by_name = list(admin.v3.spaces.list(names=name))
    assert guids(by_name) == [space["guid"]]
    by_both = list(admin.v3.spaces.list(names=[name, second["name"]], organization_guids=[org["guid"]]))
    assert sorted(guids(by_both)) == sorted([space["guid"], second["guid"]])

    # same space name in another org is fine; in the same org it is not
    other_org = hearth.create_org(admin)
    admin.v3.spaces.create(name, other_org["guid"])
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.spaces.create(name, org["guid"])
    assert ei.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert cf_error(ei.value)["code"] == 10008

    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.spaces.get(str(uuid.uuid4()))
    assert_not_found(ei, "space")


# ---------------------------------------------------------------------------
# 3. paging
# ---------------------------------------------------------------------------

def test_paging_through_library_iterator(hearth, admin):
    names = [hearth.name(f"page{i:02d}") for i in range(12)]
    created = {hearth.create_org(admin, n)["guid"]: n for n in names}

    # filtered, ordered: exactly our 12, each once, in name order, over 3 pages
    pages = admin.v3.organizations.list(names=names, per_page=5, order_by="name")
    assert pages.total_results == 12
    seen = list(pages)
    assert [o["name"] for o in seen] == sorted(names)
    assert sorted(guids(seen)) == sorted(created)

    # unfiltered: every org the admin can see, our 12 among them exactly once
    all_orgs = guids(admin.v3.organizations.list(per_page=5))
    assert len(all_orgs) == len(set(all_orgs)), "an org was returned on two pages"
    for guid in created:
        assert all_orgs.count(guid) == 1, f"org {created[guid]} seen {all_orgs.count(guid)} times"


def test_pagination_document(hearth, admin, admin_token):
    names = [hearth.name(f"pdoc{i:02d}") for i in range(12)]
    for n in names:
        hearth.create_org(admin, n)

    query = {"names": ",".join(names), "per_page": 5, "order_by": "name"}
    r = hearth.request("GET", "/v3/organizations", token=admin_token, params=query)
    assert r.status_code == 200, r.text
    body = r.json()
    pag = body["pagination"]
    assert pag["total_results"] == 12
    assert pag["total_pages"] == 3
    assert len(body["resources"]) == 5
    for link, page in (("first", "1"), ("last", "3"), ("next", "2")):
        assert pag.get(link) is not None, f"pagination.{link} missing: {pag}"
        href = pag[link]["href"]
        assert href.startswith(hearth.base_url + "/v3/organizations?"), (link, href)
        params = parse_qs(urlparse(href).query)
        assert params.get("page") == [page], (link, href)
        assert params.get("per_page") == ["5"], (link, href)
        assert params.get("names") == [",".join(names)], f"{link} href lost the names filter: {href}"
    assert pag["previous"] is None

    seen = [o["name"] for o in body["resources"]]
    href = pag["next"]["href"]
    pages = 1
    while href:
        r = hearth.request("GET", href, token=admin_token)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert body["pagination"]["total_results"] == 12
        assert body["pagination"]["previous"] is not None
        seen += [o["name"] for o in body["resources"]]
        href = (body["pagination"]["next"] or {}).get("href")
    assert pages == 3
    assert len(body["resources"]) == 2
    assert seen == sorted(names)

    # a page past the end is empty but still well-formed
    r = hearth.request("GET", "/v3/organizations", token=admin_token, params={**query, "page": 4})
    assert r.status_code == 200, r.text
    assert r.json()["resources"] == []
    assert r.json()["pagination"]["total_results"] == 12

    # per_page is bounded by the V3 API (1..5000)
    r = hearth.request("GET", "/v3/organizations", token=admin_token, params={"per_page": 0})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["title"] == "CF-BadQueryParameter"


# ---------------------------------------------------------------------------
# 4. a user's view
# ---------------------------------------------------------------------------

def create_uaa_user(hearth, uaa_admin_token, username, password) -> str:
    r = hearth.request(
        "POST", "/Users", token=uaa_admin_token,
        json={
            "userName": username,
            "password": password,
            "emails": [{"value": f"{username}@example.com", "primary": True}],
            "name": {"givenName": "Py", "familyName": "Test"},
            "origin": "uaa",
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["userName"] == username
    assert user["id"]
    assert "password" not in user
    return user["id"]


def test_user_sees_only_what_its_roles_allow(hearth, admin, uaa_admin_token):
    mine = hearth.create_org(admin)
    my_space = admin.v3.spaces.create(hearth.name("mine"), mine["guid"])
    sibling_space = admin.v3.spaces.create(hearth.name("sibling"), mine["guid"])
    foreign = hearth.create_org(admin)
    foreign_space = admin.v3.spaces.create(hearth.name("foreign"), foreign["guid"])

    username = hearth.name("user")
    password = "pw-" + uuid.uuid4().hex
    user_guid = create_uaa_user(hearth, uaa_admin_token, username, password)

    cc_user = admin.v3.users.create(user_guid)
    assert cc_user["guid"] == user_guid
    assert cc_user["username"] == username
    assert cc_user["origin"] == "uaa"

    org_role = admin.v3.roles._create({
        "type": "organization_user",
        "relationships": {
            "user": {"data": {"guid": user_guid}},
            "organization": {"data": {"guid": mine["guid"]}},
        },
    })
    assert org_role["type"] == "organization_user"
    assert org_role["relationships"]["user"]["data"]["guid"] == user_guid
    assert org_role["relationships"]["organization"]["data"]["guid"] == mine["guid"]

    space_role = admin.v3.roles._create({
        "type": "space_developer",
        "relationships": {
            "user": {"data": {"guid": user_guid}},
            "space": {"data": {"guid": my_space["guid"]}},
        },
    })
    assert space_role["type"] == "space_developer"
    assert space_role["relationships"]["space"]["data"]["guid"] == my_space["guid"]
    got_role = admin.v3.roles.get(space_role["guid"])
    assert got_role["guid"] == space_role["guid"]
    listed_roles = guids(admin.v3.roles.list(user_guids=user_guid))
    assert sorted(listed_roles) == sorted([org_role["guid"], space_role["guid"]])

    # log in as that user with the library
    user = hearth.user_client(username, password)
    claims = decode_jwt(user._access_token)[1]
    assert claims["user_name"] == username
    assert claims["user_id"] == user_guid
    assert "cloud_controller.admin" not in claims["scope"]

    assert guids(user.v3.organizations.list()) == [mine["guid"]]
    assert guids(user.v3.spaces.list()) == [my_space["guid"]]
    assert user.v3.organizations.get(mine["guid"])["name"] == mine["name"]
    assert user.v3.spaces.get(my_space["guid"])["name"] == my_space["name"]

    for getter, guid, word in (
        (user.v3.organizations.get, foreign["guid"], "organization"),
        (user.v3.spaces.get, foreign_space["guid"], "space"),
        (user.v3.spaces.get, sibling_space["guid"], "space"),
    ):
        with pytest.raises(InvalidStatusCode) as ei:
            getter(guid)
        assert_not_found(ei, word)

    # ordinary users cannot create orgs (feature flag user_org_creation is off by default)
    with pytest.raises(InvalidStatusCode) as ei:
        user.v3.organizations.create(hearth.name("nope"), suspended=False)
    assert ei.value.status_code == HTTPStatus.FORBIDDEN
    err = cf_error(ei.value)
    assert (err["code"], err["title"]) == (10003, "CF-NotAuthorized"), err


def test_space_role_requires_org_membership(hearth, admin, uaa_admin_token, space):
    username = hearth.name("loner")
    user_guid = create_uaa_user(hearth, uaa_admin_token, username, "pw-" + uuid.uuid4().hex)
    admin.v3.users.create(user_guid)
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.roles._create({
            "type": "space_developer",
            "relationships": {
                "user": {"data": {"guid": user_guid}},
                "space": {"data": {"guid": space["guid"]}},
            },
        })
    assert ei.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert cf_error(ei.value)["code"] == 10008


# ---------------------------------------------------------------------------
# 5. deletes (async jobs)
# ---------------------------------------------------------------------------

def test_delete_space_and_org_via_jobs(hearth, admin, org, space):
    # raw DELETE through the library's HTTP layer: 202 + Location /v3/jobs/<guid>
    response = admin.delete(f"{hearth.base_url}/v3/spaces/{space['guid']}")
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.startswith(hearth.base_url + "/v3/jobs/"), location
    job_guid = location.rsplit("/", 1)[-1]
    job = hearth.wait_for_job(admin, job_guid)
    assert job["guid"] == job_guid
    assert job["operation"] == "space.delete"
    assert job["errors"] == [] and job["warnings"] == []
    assert job["links"]["self"]["href"] == location
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.spaces.get(space["guid"])
    assert_not_found(ei, "space")

    # the library's own remove() returns the job guid parsed from Location
    job_guid = admin.v3.organizations.remove(org["guid"], asynchronous=True)
    assert job_guid, "DELETE /v3/organizations/:guid returned no Location header"
    job = hearth.wait_for_job(admin, job_guid)
    assert job["operation"] == "organization.delete"
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.organizations.get(org["guid"])
    assert_not_found(ei, "organization")

    # deleting it again is a 404, not another job
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.organizations.remove(org["guid"])
    assert_not_found(ei)


def test_delete_org_with_spaces_is_recursive(hearth, admin, org, space):
    job_guid = admin.v3.organizations.remove(org["guid"], asynchronous=True)
    hearth.wait_for_job(admin, job_guid)
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.spaces.get(space["guid"])
    assert_not_found(ei, "space")


def test_unknown_job_is_not_found(admin):
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.jobs.get(str(uuid.uuid4()))
    assert_not_found(ei, "job")


# ---------------------------------------------------------------------------
# 6. refresh tokens
# ---------------------------------------------------------------------------

def test_refresh_token_grant(hearth, org):
    r = hearth.token("password", "cf", "", username="admin", password=hearth.admin_password)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["token_type"].lower() == "bearer"
    assert isinstance(first["expires_in"], int) and first["expires_in"] > 0
    assert first["refresh_token"] and first["access_token"]
    assert first.get("jti")

    r = hearth.token("refresh_token", "cf", "", refresh_token=first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["access_token"] and second["access_token"] != first["access_token"]
    claims = check_uaa_token_claims(hearth, second["access_token"])
    assert claims["user_name"] == "admin"
    assert claims["grant_type"] == "refresh_token" or claims["grant_type"] == "password", claims
    assert "cloud_controller.admin" in claims["scope"]

    r = hearth.request("GET", f"/v3/organizations/{org['guid']}", token=second["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["guid"] == org["guid"]

    # a made-up refresh token is rejected the UAA way
    r = hearth.token("refresh_token", "cf", "", refresh_token="not-a-refresh-token")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token", r.text


def test_library_refreshes_on_invalid_token(hearth, org):
    client = hearth.user_client("admin", hearth.admin_password)
    original = client._access_token
    # simulate an expired/revoked access token; the library sees 401 CF-InvalidAuthToken
    # (code 1000), uses its refresh token, and retries the request
    client._session.headers["Authorization"] = "Bearer not.a.token"
    assert client.v3.organizations.get(org["guid"])["guid"] == org["guid"]
    assert client._access_token not in ("not.a.token", None)
    assert client._access_token != original
    assert decode_jwt(client._access_token)[1]["user_name"] == "admin"


# ---------------------------------------------------------------------------
# tasks (the library's TaskManager; running ones need containers: crates/hearth/tests/tasks.rs)
# ---------------------------------------------------------------------------

def test_tasks_need_a_droplet_and_are_listed_through_the_library(hearth, admin, admin_token, space):
    body = {"name": hearth.name("app"), "relationships": {"space": {"data": {"guid": space["guid"]}}}}
    r = hearth.request("POST", "/v3/apps", admin_token, json=body)
    assert r.status_code == HTTPStatus.CREATED, r.text
    app_guid = r.json()["guid"]
    # The library sends every optional field, as null when not given.
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.tasks.create(app_guid, command="echo hi", name="hi")
    assert ei.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    err = cf_error(ei.value)
    assert (err["code"], err["detail"]) == (10008, "Task must have a droplet. Assign a current droplet to the app.")
    assert list(admin.v3.tasks.list(app_guids=app_guid)) == []
    with pytest.raises(InvalidStatusCode) as ei:
        admin.v3.tasks.cancel(str(uuid.uuid4()))
    assert_not_found(ei, "task")
# user-provided service instances and bindings
# ---------------------------------------------------------------------------

def test_user_provided_service_instances_and_bindings(hearth, admin, admin_token, space):
    # The library creates managed instances only: refused, as no service brokers exist yet.
    with pytest.raises(InvalidStatusCode) as exc_info:
        admin.v3.service_instances.create("managed-db", space["guid"], "no-such-plan")
    assert exc_info.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "service broker" in cf_error(exc_info.value)["detail"]

    name = hearth.name("db")
    body = {"type": "user-provided", "name": name, "credentials": {"uri": "postgres://u:p@h/d"}, "tags": ["sql"],
            "relationships": {"space": {"data": {"guid": space["guid"]}}}}
    r = hearth.request("POST", "/v3/service_instances", admin_token, json=body)
    assert r.status_code == 201, r.text
    si = r.json()

    listed = list(admin.v3.service_instances.list(space_guids=space["guid"]))
    assert guids(listed) == [si["guid"]]
    assert listed[0]["type"] == "user-provided" and listed[0]["tags"] == ["sql"]
    got = admin.v3.service_instances.get(si["guid"])
    assert got["name"] == name and "credentials" not in got
    renamed = admin.v3.service_instances.update(si["guid"], name=name + "-2")
    assert renamed["name"] == name + "-2"

    # (the library's app manager has no create: the plain request a user would send)
    body = {"name": hearth.name("app"), "relationships": {"space": {"data": {"guid": space["guid"]}}}}
    r = hearth.request("POST", "/v3/apps", admin_token, json=body)
    assert r.status_code == HTTPStatus.CREATED, r.text
    app = r.json()
    binding = admin.v3.service_credential_bindings.create(
        "primary", "app", si["guid"], app["guid"], None, None, None, asynchronous=False)
    assert binding["name"] == "primary" and binding["type"] == "app"
    bound = list(admin.v3.service_credential_bindings.list(app_guids=app["guid"]))
    assert guids(bound) == [binding["guid"]]
    env = hearth.request("GET", f"/v3/apps/{app['guid']}/env", admin_token).json()
    entry = env["system_env_json"]["VCAP_SERVICES"]["user-provided"][0]
    assert entry["name"] == "primary" and entry["credentials"] == {"uri": "postgres://u:p@h/d"}

    # Bound: not deleted; unbound: gone.
    with pytest.raises(InvalidStatusCode) as exc_info:
        admin.v3.service_instances.remove(si["guid"])
    assert exc_info.value.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    # (the library's binding manager has no remove: the plain request a user would send)
    r = hearth.request("DELETE", f"/v3/service_credential_bindings/{binding['guid']}", admin_token)
    assert r.status_code == 204, r.text
    admin.v3.service_instances.remove(si["guid"])
    with pytest.raises(InvalidStatusCode) as exc_info:
        admin.v3.service_instances.get(si["guid"])
    assert_not_found(exc_info, "service instance")

"""The consumer side through python-zaqarclient, unchanged: listing with
paging and echo, claims held, renewed, released and expired, pop, delete
with a claim id, stats and purge; and another project sees none of it."""

import time
import uuid

import pytest
import requests
from zaqarclient.queues.v2 import client as zaqar
from zaqarclient.transport import errors as zaqar_errors

from tests.e2e.conftest import Fleet

# Claims as short as a test can wait for (Zaqar's minimum is 60 s).
CONF = "[transport]\nmin_claim_ttl = 1\nmin_claim_grace = 0\n"


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("zaqar"), redis_server.url, CONF)
    running.start("api")
    yield running
    running.stop()


def connect(api, project, client_uuid=None):
    conf = {"auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}}
    if client_uuid:
        conf["client_uuid"] = client_uuid
    return zaqar.Client(api.url[: -len("/v2")], version=2, conf=conf)


@pytest.fixture
def queue(api, project):
    return connect(api, project).queue("jobs")


def post(queue, count, start=0):
    queue.post([{"body": {"n": n}, "ttl": 300} for n in range(start, start + count)])


def numbers(messages):
    return [m.body["n"] for m in messages]


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_listing_pages_oldest_first_and_echo_shows_the_callers_own(api, project, queue):
    post(queue, 15)
    post(queue, 10, start=15)
    assert numbers(queue.messages(echo=False)) == []  # all are this client's
    first = queue.messages(echo=True, limit=10)
    assert numbers(first) == list(range(10))
    every = list(queue.messages(echo=True, limit=10).stream())
    assert numbers(every) == list(range(25))

    other = connect(api, project).queue("jobs")  # another Client-ID
    assert numbers(other.messages(limit=5)) == list(range(5))


def test_messages_by_id_and_deleted_by_ids(api, project, queue):
    post(queue, 3)
    ids = [m.id for m in queue.messages(echo=True)]
    assert numbers(queue.messages(ids[0], ids[2])) == [0, 2]
    queue.delete_messages(ids[0], ids[1])
    assert numbers(queue.messages(echo=True)) == [2]


def test_a_claim_holds_its_messages_until_it_is_released(api, project, queue):
    post(queue, 5)
    claim = queue.claim(ttl=60, grace=60, limit=3)
    held = list(claim)
    assert numbers(held) == [0, 1, 2]
    assert all(m.claim_id == claim.id for m in held)
    assert numbers(queue.claim(ttl=60, grace=60, limit=10)) == [3, 4]
    assert list(queue.claim(ttl=60, grace=60)) == []  # 204: nothing free
    assert numbers(queue.messages(echo=True)) == []
    assert len(list(queue.messages(echo=True, include_claimed=True))) == 5

    fetched = queue.claim(id=claim.id)
    assert fetched.ttl == 60
    assert numbers(fetched) == [0, 1, 2]
    claim.delete()
    assert numbers(queue.messages(echo=True)) == [0, 1, 2]
    assert numbers(queue.claim(ttl=60, grace=60)) == [0, 1, 2]


def test_an_expired_claim_frees_its_messages_and_a_renewed_one_keeps_them(api, project, queue):
    post(queue, 2)
    short = queue.claim(ttl=1, grace=0, limit=1)
    renewed = queue.claim(ttl=1, grace=0, limit=1)
    renewed.update(ttl=60)
    assert wait_until(lambda: numbers(queue.messages(echo=True)) == [0])
    assert numbers(queue.claim(ttl=60, grace=0)) == [0]
    with pytest.raises(zaqar_errors.ResourceNotFound):
        queue.claim(id=short.id).ttl  # noqa: B018 - reading it asks the server
    assert numbers(queue.claim(id=renewed.id)) == [1]


def test_a_claimed_message_is_deleted_only_with_its_claim_id(api, project, queue):
    post(queue, 2)
    claim = queue.claim(ttl=60, grace=60, limit=1)
    [message] = list(claim)
    free = next(iter(queue.messages(echo=True)))
    url = f"{api.url}/queues/jobs/messages"
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project}

    refused = requests.delete(f"{url}/{message.id}", headers=headers, timeout=5)
    assert refused.status_code == 403 and refused.json()["title"]
    other = requests.delete(
        f"{url}/{message.id}?claim_id={uuid.uuid4().hex}", headers=headers, timeout=5
    )
    assert other.status_code == 403
    unclaimed = requests.delete(f"{url}/{free.id}?claim_id={claim.id}", headers=headers, timeout=5)
    assert unclaimed.status_code == 403
    bad = requests.delete(f"{url}/{message.id}?claim_id=nope", headers=headers, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "claim_id"

    message.delete()  # the client sends the claim id of its href
    assert numbers(queue.messages(echo=True, include_claimed=True)) == [1]
    free.delete()
    assert numbers(queue.messages(echo=True, include_claimed=True)) == []


def test_pop_takes_the_oldest_free_messages(api, project, queue):
    post(queue, 5)
    queue.claim(ttl=60, grace=60, limit=1)
    assert numbers(queue.pop(2)) == [1, 2]
    assert numbers(queue.messages(echo=True, include_claimed=True)) == [0, 3, 4]


def test_stats_count_free_and_claimed_and_purge_empties_the_queue(api, project, queue):
    post(queue, 4)
    queue.claim(ttl=60, grace=60, limit=1)
    stats = queue.stats["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (3, 1, 4)
    assert stats["oldest"]["id"] != stats["newest"]["id"]
    queue.purge(resource_types=["messages"])
    stats = queue.stats["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "body, field",
    [({"ttl": 0}, "ttl"), ({"ttl": 43201}, "ttl"), ({"grace": 43201}, "grace"), ([], "body")],
)
def test_claims_out_of_zaqars_limits_are_refused(api, project, body, field):
    response = requests.post(
        f"{api.url}/queues/jobs/claims?limit=1",
        json=body,
        headers={"Client-ID": str(uuid.uuid4()), "X-Project-ID": project},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    "query, field",
    [("limit=21", "limit"), ("limit=0", "limit"), ("marker=abc", "marker")],
)
def test_bad_listing_parameters_are_refused(api, project, query, field):
    response = requests.get(
        f"{api.url}/queues/jobs/messages?{query}",
        headers={"Client-ID": str(uuid.uuid4()), "X-Project-ID": project},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_another_project_cannot_list_claim_delete_or_count(api, project, queue):
    post(queue, 2)
    claim = queue.claim(ttl=60, grace=60, limit=1)
    [claimed] = list(claim)
    intruder = connect(api, "intruder" + uuid.uuid4().hex[:6]).queue("jobs")
    assert list(intruder.messages(echo=True, include_claimed=True)) == []
    assert list(intruder.messages(claimed.id)) == []
    assert list(intruder.claim(ttl=60, grace=60)) == []
    assert list(intruder.pop(2)) == []
    with pytest.raises(zaqar_errors.ResourceNotFound):
        intruder.claim(id=claim.id).ttl  # noqa: B018
    intruder.claim(id=claim.id).delete()  # no such claim here: nothing happens
    intruder.delete_messages(claimed.id)
    assert intruder.stats["messages"]["total"] == 0
    assert numbers(queue.messages(echo=True, include_claimed=True)) == [0, 1]
    assert numbers(queue.claim(id=claim.id)) == [0]


def test_topics_stay_delivery_only(api, project):
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project}
    for method, path in [("GET", "messages"), ("POST", "claims"), ("GET", "stats")]:
        response = requests.request(
            method, f"{api.url}/topics/t/{path}", headers=headers, timeout=5
        )
        assert response.status_code in (404, 405)

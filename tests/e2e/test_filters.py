"""Filter policies decided by the workers at fan-out, end to end."""

from tests.e2e.test_pipeline import post, subscribe


def attribute(value, data_type="String"):
    return {"DataType": data_type, "StringValue": str(value)}


def test_three_filtered_subscriptions_each_get_exactly_their_share(fleet, receiver, project):
    subscribe(fleet, project, "shop", receiver.url + "/placed", filter_policies=["order_placed"])
    subscribe(
        fleet,
        project,
        "shop",
        receiver.url + "/big-eu",
        filter_policy={"region": [{"prefix": "eu-"}], "total": [{"numeric": [">=", 100]}]},
    )
    subscribe(
        fleet,
        project,
        "shop",
        receiver.url + "/body-vip",
        filter_policy={"customer": {"tier": ["vip"]}},
        filter_policy_scope="MessageBody",
    )
    messages = [
        {
            "ttl": 120,
            "body": {"n": 0, "customer": {"tier": "vip"}},
            "filter_policies": ["order_placed"],
            "attributes": {"region": attribute("eu-west"), "total": attribute(150, "Number")},
        },
        {
            "ttl": 120,
            "body": {"n": 1, "customer": {"tier": "basic"}},
            "filter_policies": ["order_cancelled"],
            "attributes": {"region": attribute("eu-north"), "total": attribute(99, "Number")},
        },
        {
            "ttl": 120,
            "body": {"n": 2, "customer": {"tier": "vip"}},
            "attributes": {"region": attribute("us-east"), "total": attribute(500, "Number")},
        },
        {
            "ttl": 120,
            "body": {"n": 3},
            "filter_policies": ["order_placed", "x"],
            "attributes": {"region": attribute("eu-central"), "total": attribute(100, "Number")},
        },
        {"ttl": 120, "body": {"n": 4}},
    ]
    post(fleet, project, "shop", messages)
    expected = {"/placed": [0, 3], "/big-eu": [0, 3], "/body-vip": [0, 2]}

    for path, share in expected.items():
        receiver.wait_for(len(share), path, timeout=30)
    receiver.wait_for(7, timeout=2)  # give a wrong delivery time to show
    for path, share in expected.items():
        got = sorted(r.json()["body"]["n"] for r in receiver.received(path))
        assert got == share, path
    assert len(receiver.received()) == 6

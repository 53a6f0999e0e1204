"""Member-ID prefixes: what the aggregate shows and what reaches a BMC."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from racklet.rmc._uris import add_prefix, prefix_document, route, strip_document

segment = st.text(alphabet=st.sampled_from("abcXYZ019-._~:@"), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
collection = st.sampled_from(["Systems", "Chassis", "Managers"])


@given(collection, segment, st.lists(segment, max_size=3))
def test_a_prefixed_uri_routes_back_to_the_bmcs_own(
    coll: str, member: str, rest: list[str]
) -> None:
    local = "/".join(["/redfish/v1", coll, member, *rest])
    shown = add_prefix(local, "unit-3")
    assert shown.startswith(f"/redfish/v1/{coll}/unit-3_{member}")
    assert route(shown) == ("unit-3", local)


@given(st.text(max_size=40))
def test_nothing_routed_can_climb_out_of_its_collection(tail: str) -> None:
    found = route("/redfish/v1/Systems/unit-1_x/" + tail)
    if found is not None:
        parts = found[1].split("/")
        assert parts[:4] == ["", "redfish", "v1", "Systems"]
        assert ".." not in parts and "." not in parts
        assert not any(c in found[1] for c in "?#%\\")


def test_uris_outside_the_aggregated_collections_are_left_alone() -> None:
    for uri in ("/redfish/v1/SessionService/Sessions/1", "/redfish/v1/Systems", "/redfish/v1"):
        assert add_prefix(uri, "unit-1") == uri
        assert route(uri) is None
    assert route("/redfish/v1/Systems/unit-1_a/../../AccountService") is None
    assert route("/redfish/v1/Systems/unit-1_a//x") is None
    assert route("/redfish/v1/Systems/nounderscore") is None


def test_documents_are_rewritten_everywhere_and_the_member_id_follows_its_uri() -> None:
    document = {
        "@odata.id": "/redfish/v1/Systems/u1",
        "Id": "u1",
        "Links": {"ManagedBy": [{"@odata.id": "/redfish/v1/Managers/bmc"}]},
        "Actions": {"#X.Reset": {"target": "/redfish/v1/Systems/u1/Actions/X.Reset"}},
        "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"},
        "Description": "not a URI: /redfish/v1/Systems/u1 is mentioned in prose",
    }
    shown = prefix_document(document, "unit-1")
    assert shown["@odata.id"] == "/redfish/v1/Systems/unit-1_u1"
    assert shown["Id"] == "unit-1_u1"
    assert shown["Links"]["ManagedBy"][0]["@odata.id"] == "/redfish/v1/Managers/unit-1_bmc"
    assert shown["Actions"]["#X.Reset"]["target"] == "/redfish/v1/Systems/unit-1_u1/Actions/X.Reset"
    assert shown["Sessions"] == document["Sessions"]
    assert shown["Description"] == document["Description"]
    assert strip_document(shown, "unit-1")["Links"] == document["Links"]
    # Another BMC's URIs in a request body are not turned into this BMC's.
    assert strip_document(shown, "unit-2")["Links"] == shown["Links"]

"""The C-STORE receiver's allow-list: entries, matching, seeding from settings and its admin."""

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from imaging.dicom.peers import dicom_peer_allowed, dicom_peers_seed, peer_entry_parse
from imaging.models import DicomPeer

pytestmark = pytest.mark.django_db


def peer(ae_title: str, network: str, **fields) -> DicomPeer:
    entry = DicomPeer(ae_title=ae_title, network=network, **fields)
    entry.full_clean()
    entry.save()
    return entry


def test_a_peer_is_its_title_and_its_address_or_network():
    peer("CT1", "10.1.2.3")
    peer("WARD", "10.9.0.0/16")
    assert dicom_peer_allowed(ae_title="CT1", address="10.1.2.3")
    assert dicom_peer_allowed(ae_title="CT1  ", address="10.1.2.3")  # trailing spaces are padding
    assert not dicom_peer_allowed(ae_title="CT1", address="10.1.2.4")  # the right name from the wrong host
    assert not dicom_peer_allowed(ae_title="ct1", address="10.1.2.3")  # AE titles are case-sensitive
    assert not dicom_peer_allowed(ae_title="CT2", address="10.1.2.3")
    assert dicom_peer_allowed(ae_title="WARD", address="10.9.200.7")
    assert dicom_peer_allowed(ae_title="WARD", address="::ffff:10.9.200.7")  # IPv4 on a dual-stack socket
    assert not dicom_peer_allowed(ae_title="WARD", address="10.10.0.1")
    assert not dicom_peer_allowed(ae_title="WARD", address="not an address")
    assert not dicom_peer_allowed(ae_title="", address="10.1.2.3")


def test_an_inactive_peer_and_an_empty_list_refuse_everyone():
    assert not dicom_peer_allowed(ae_title="CT1", address="127.0.0.1")
    peer("CT1", "127.0.0.1", active=False)
    assert not dicom_peer_allowed(ae_title="CT1", address="127.0.0.1")


def test_entries_are_checked_and_written_one_way():
    entry = peer("  CT1 ", "10.1.2.3")
    assert (entry.ae_title, entry.network) == ("CT1", "10.1.2.3/32")
    assert str(peer("MR1", "10.1.2.77/24").network) == "10.1.2.0/24"
    for title, network in [("", "10.1.2.3"), ("A" * 17, "10.1.2.3"), ("BAD\\AE", "10.1.2.3"), ("CT1", "10.1.2")]:
        with pytest.raises(ValidationError):
            peer(title, network)
    with pytest.raises(ValidationError):
        peer("CT1", "10.1.2.3/32")  # the same peer twice


def test_settings_entries_are_parsed_and_seeded_once_without_undoing_an_admin():
    assert peer_entry_parse("CT1@10.1.2.3").network == "10.1.2.3/32"
    with pytest.raises(ValidationError):
        peer_entry_parse("CT1")
    with pytest.raises(ValidationError):
        dicom_peers_seed(entries=["CT1@10.1.2.3", "MR1@nowhere"])
    assert not DicomPeer.objects.exists()  # nothing added when one entry is wrong

    added = dicom_peers_seed(entries=["CT1@10.1.2.3", "WARD@10.9.0.0/16", ""])
    assert [str(p) for p in added] == ["CT1 @ 10.1.2.3/32", "WARD @ 10.9.0.0/16"]
    assert AuditEvent.objects.filter(object_type="imaging.dicompeer", action="create", interface="system").count() == 2
    DicomPeer.objects.filter(ae_title="CT1").update(active=False)
    assert dicom_peers_seed(entries=["CT1@10.1.2.3"]) == []
    assert not DicomPeer.objects.get(ae_title="CT1").active  # an administrator's decision stands


def test_administrators_keep_the_list_in_the_admin_and_it_is_audited(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/imaging/dicompeer/add/",
        {"ae_title": "CT1", "network": "10.1.2.3", "description": "CT room 1", "active": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    added = DicomPeer.objects.get()
    assert added.network == "10.1.2.3/32"
    created = AuditEvent.objects.get(object_type="imaging.dicompeer", action="create")
    assert (created.actor, created.interface, created.object_id) == (admin_user, "admin", str(added.id))
    before = AuditEvent.objects.latest("id").id
    assert client.get("/admin/imaging/dicompeer/").status_code == 200
    listed = AuditEvent.objects.get(id__gt=before)
    assert (listed.action, listed.detail, listed.object_id) == ("read", "list", str(added.id))
    response = client.post("/admin/imaging/dicompeer/add/", {"ae_title": "CT2", "network": "10.1.2", "active": "on"})
    assert response.status_code == 200 and DicomPeer.objects.count() == 1


def test_staff_cannot_open_the_list(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/admin/imaging/dicompeer/").status_code == 302  # to the admin's log in

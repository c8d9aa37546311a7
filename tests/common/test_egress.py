"""The stream allow-list itself: what each entry allows, what every kind of internal address is called, and a
wrong entry stopping a service at start. The routes through the gateway and capture: tests/gateway/test_sources.py
and tests/capture/test_stream_guard.py."""

from __future__ import annotations

import re
from ipaddress import ip_address

import pytest
from pydantic import ValidationError

from emotune_common.egress import StreamAllow, endpoint, redacted
from emotune_common.settings import SourceSettings
from emotune_common.sources import SourceError


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("192.168.1.1", "192.168.1.1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is the cloud metadata address"),
        ("169.254.1.1", "169.254.1.1 is a link-local address"),
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("100.64.0.1", "100.64.0.1 is not a public address"),  # carrier-grade NAT
        ("240.0.0.1", "240.0.0.1 is a private address"),
        ("::1", "::1 is a loopback address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("fd00:ec2::254", "fd00:ec2::254 is the cloud metadata address"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe carries 169.254.169.254, the cloud metadata address"),
        ("64:ff9b::a00:1", "64:ff9b::a00:1 is a reserved address"),
        ("2002:a00:1::", "2002:a00:1:: carries 10.0.0.1, a private address"),
    ],
)
def test_every_kind_of_internal_address_is_refused_by_default(address, why):
    assert StreamAllow.parse("public").why_refused(ip_address(address)) == f"{why}, not named in EMOTUNE_STREAM_ALLOW"


def test_public_addresses_pass_and_the_list_names_the_rest():
    default = StreamAllow.parse("public")
    assert default.why_refused(ip_address("8.8.8.8")) is None
    assert default.why_refused(ip_address("2001:4860:4860::8888")) is None
    listed = StreamAllow.parse("10.0.5.0/24, cam.local. 127.0.0.1 [::1]")
    assert listed.why_refused(ip_address("10.0.5.7")) is None
    assert listed.why_refused(ip_address("::ffff:127.0.0.1")) is None  # the IPv4 address it maps is named
    assert listed.why_refused(ip_address("::1")) is None
    assert listed.why_refused(ip_address("10.0.6.1")) == "10.0.6.1 is a private address, not named in " \
                                                        "EMOTUNE_STREAM_ALLOW"  # fmt: skip
    assert listed.why_refused(ip_address("192.168.1.9"), host="CAM.local") is None  # named by its host
    assert "allows no public address" in listed.why_refused(ip_address("8.8.8.8"))


def test_a_wrong_entry_stops_the_service_at_start():
    with pytest.raises(ValidationError, match=re.escape("'10.0.0.0/33' is not 'public', a host name, an address")):
        SourceSettings(stream_allow="public 10.0.0.0/33")
    assert SourceSettings().stream_policy() == StreamAllow.parse("public")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://evil.example\\@127.0.0.1/", "backslashes"),
        ("http://evil.example#@127.0.0.1/", "no #fragment"),
        ("http://a@b@127.0.0.1/", "more than one '@'"),
        ("http://127.0.0.1:99999/", "bad port"),
        ("http:///x", "no host"),
        ("http://cam.local/a b", "white space"),
    ],
)
def test_a_url_that_parsers_could_read_differently_is_refused(url, why):
    """FFmpeg's URL parser is not Python's: where they could disagree on the host, nothing is guessed."""
    with pytest.raises(SourceError, match=why):
        endpoint(url)


def test_answers_show_no_password():
    assert redacted("rtsp://admin:secret@cam.local:554/live") == "rtsp://cam.local:554/live"
    assert redacted("http://cam.local/x") == "http://cam.local/x"

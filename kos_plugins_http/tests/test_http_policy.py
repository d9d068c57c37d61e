"""The requester's URL policy (``kos_plugins_http.policy.Policy``), without a kernel.

Host names used here resolve without a network: ``localhost`` and IP literals.
"""

from __future__ import annotations

import ipaddress

import pytest

from kos_core import pluginlib
from kos_plugins_http import FileIOError
from kos_plugins_http.policy import SCHEMES, Policy, embedded_ipv4, is_public
from kos_plugins_http.settings import SETTINGS


def from_section(section: dict[str, str]) -> Policy:
    """The policy a ``[http]`` section gives (its keys read as the plugin reads them)."""
    return Policy.from_settings(pluginlib.settings(SETTINGS, section))


def allowed(policy: Policy, url: str) -> bool:
    try:
        policy.check_url(url)
    except FileIOError:
        return False
    return True


def refusal(policy: Policy, url: str) -> str:
    with pytest.raises(FileIOError) as caught:
        policy.check_url(url)
    return str(caught.value)


# ---------------------------------------------------------------------------- settings


def test_defaults() -> None:
    policy = from_section({})
    assert policy == Policy()
    assert policy.allow_hosts == () and policy.deny_hosts == ()
    assert policy.max_size == 100 * 1024 * 1024
    assert policy.max_redirects == 5
    assert policy.timeout == 30.0
    assert policy.ca_file == ""
    assert SCHEMES == ("http", "https", "ftp")


def test_from_settings_reads_every_key() -> None:
    policy = from_section(
        {
            "allow-hosts": "*.example.org, 127.0.0.1\n  10.0.0.0/8",
            "deny-hosts": "bad.example.org",
            "max-size": " 2048 ",
            "max-redirects": "0",
            "timeout": "2.5",
            "ca-file": " /etc/my-ca.pem ",
            "child-start": "exec",  # not a policy key: ignored by the policy
        }
    )
    assert policy.allow_hosts == ("*.example.org", "127.0.0.1", "10.0.0.0/8")
    assert policy.deny_hosts == ("bad.example.org",)
    assert policy.max_size == 2048
    assert policy.max_redirects == 0
    assert policy.timeout == 2.5
    assert policy.ca_file == "/etc/my-ca.pem"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max-size", "lots"),
        ("max-size", "-1"),
        ("max-size", "1.5"),
        ("max-redirects", "many"),
        ("max-redirects", "-3"),
        ("timeout", "soon"),
        ("timeout", "-0.5"),
    ],
)
def test_a_bad_number_is_refused_naming_its_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f'^bad value for {key}: "{value}" '):
        from_section({key: value})


@pytest.mark.parametrize("key", ["allow-hosts", "deny-hosts"])
def test_a_bad_network_is_refused_naming_its_key(key: str) -> None:
    with pytest.raises(ValueError) as caught:
        from_section({key: "127.0.0.1 10.0.0.0/99"})
    assert "10.0.0.0/99" in str(caught.value)
    assert key in str(caught.value)


def test_json_round_trip() -> None:
    policy = Policy(("127.0.0.1", "*.org"), ("10.0.0.0/8",), 10, 1, 2.5, "/ca.pem")
    assert Policy.from_json(policy.to_json()) == policy


# ---------------------------------------------------------------------------- schemes


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/plain,hi",
        "gopher://127.0.0.1/1",
        "javascript:alert(1)",
        "ftps://127.0.0.1/x",
        "/relative/path",
        "127.0.0.1/no-scheme",
    ],
)
def test_schemes_other_than_http_https_ftp_are_refused(url: str) -> None:
    message = refusal(Policy(allow_hosts=("127.0.0.1",)), url)
    assert "is not allowed" in message and "http, https, ftp" in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "HTTPS://127.0.0.1:8443/x?y#z", "ftp://127.0.0.1/f.txt"]
)
def test_http_https_ftp_are_allowed(url: str) -> None:
    assert allowed(Policy(allow_hosts=("127.0.0.1",)), url)


def test_a_url_without_a_host_is_refused() -> None:
    assert "no host" in refusal(Policy(), "http:///path")


def test_a_malformed_url_is_refused() -> None:
    assert "bad URL" in refusal(Policy(), "http://[::1/")


# ---------------------------------------------------------------------------- default policy


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "localhost",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.4",
        "169.254.1.1",
        "0.0.0.0",
        "[::1]",
        "[fe80::1]",
        "[fd00::1]",
        "100.64.0.1",
    ],
)
def test_the_default_policy_refuses_local_and_private_addresses(host: str) -> None:
    message = refusal(Policy(), f"http://{host}/")
    assert "local or private address" in message and "allow-hosts" in message


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "[2606:4700:4700::1111]"])
def test_the_default_policy_allows_public_addresses(host: str) -> None:
    assert allowed(Policy(), f"http://{host}/")


# ---------------------------------------------------------------------------- patterns


def test_allow_hosts_replaces_the_default_rule() -> None:
    policy = Policy(allow_hosts=("127.0.0.1",))
    assert allowed(policy, "http://127.0.0.1/")
    assert allowed(policy, "http://localhost/")  # matched by its address
    assert "not in allow-hosts" in refusal(policy, "http://127.0.0.2/")
    assert "not in allow-hosts" in refusal(policy, "http://93.184.216.34/")  # public, unlisted


def test_cidr_patterns() -> None:
    policy = Policy(allow_hosts=("127.0.0.0/30", "::1/128"))
    assert allowed(policy, "http://127.0.0.1/")
    assert allowed(policy, "http://127.0.0.3/")
    assert not allowed(policy, "http://127.0.0.4/")
    assert allowed(policy, "http://[::1]:8080/")
    assert not allowed(policy, "http://[::2]/")


def test_glob_patterns_match_names_case_insensitively() -> None:
    policy = Policy(allow_hosts=("LOCAL*",))
    assert allowed(policy, "http://localhost/")
    assert allowed(policy, "http://LocalHost:8080/")
    assert not allowed(policy, "http://127.0.0.1/")  # a name pattern does not match an IP


def test_glob_patterns_on_address_text() -> None:
    policy = Policy(allow_hosts=("127.0.0.*",))
    assert allowed(policy, "http://127.0.0.9/")
    assert not allowed(policy, "http://127.0.1.9/")


def test_deny_wins_over_allow() -> None:
    policy = Policy(allow_hosts=("127.0.0.0/8", "localhost"), deny_hosts=("127.0.0.1",))
    assert allowed(policy, "http://127.0.0.2/")
    assert "denied by deny-hosts" in refusal(policy, "http://127.0.0.1/")
    assert "denied by deny-hosts" in refusal(policy, "http://localhost/")  # by its address


def test_deny_hosts_alone_keeps_the_default_rule() -> None:
    policy = Policy(deny_hosts=("8.8.8.8",))
    assert "denied by deny-hosts" in refusal(policy, "http://8.8.8.8/")
    assert allowed(policy, "http://8.8.4.4/")
    assert "local or private" in refusal(policy, "http://127.0.0.1/")


def test_deny_by_name_glob() -> None:
    policy = Policy(allow_hosts=("127.0.0.1",), deny_hosts=("*host",))
    assert "denied by deny-hosts" in refusal(policy, "http://localhost/")
    assert allowed(policy, "http://127.0.0.1/")


def test_an_unresolvable_host_is_refused() -> None:
    message = refusal(Policy(allow_hosts=("*",)), "http://no-such-host.invalid/")
    assert "cannot resolve" in message


# ---------------------------------------------------------------------------- loopback spellings

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "127.000.000.001",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "127.255.255.254",
    "0",
    "0.0.0.0",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[::7f00:1]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::]",
    "[2002:7f00:1:0:0:0:0:1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "evil.example@127.0.0.1",
    "127.0.0.1:80",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_every_spelling_of_the_loopback_is_refused(scheme: str, host: str) -> None:
    message = refusal(Policy(), f"{scheme}://{host}/x")
    assert "local or private" in message or "cannot resolve" in message, message


# ---------------------------------------------------------------------------- IPv6 forms of IPv4

#: IPv6 addresses that carry traffic to a non-global IPv4 address, and that address
EMBEDDED_PRIVATE = [
    ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible (Python 3.11 calls it global)
    ("::10.0.0.1", "10.0.0.1"),
    ("::a9fe:a9fe", "169.254.169.254"),  # the cloud metadata address
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
    ("::ffff:192.168.1.1", "192.168.1.1"),
    ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64, well-known prefix
    ("64:ff9b::a00:1", "10.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:7f00:1::", "127.0.0.1"),  # 6to4
    ("2002:c0a8:101::1", "192.168.1.1"),
    ("2002:a9fe:a9fe::", "169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize(("address", "inside"), EMBEDDED_PRIVATE)
def test_ipv6_forms_of_a_private_ipv4_address_are_refused(address: str, inside: str) -> None:
    parsed = ipaddress.IPv6Address(address)
    assert ipaddress.IPv4Address(inside) in embedded_ipv4(parsed)
    assert not is_public(parsed)
    message = refusal(Policy(), f"http://[{address}]/")
    assert "local or private" in message and inside in message, message


@pytest.mark.parametrize("address", ["64:ff9b:1::7f00:1", "64:ff9b:1::808:808", "64:ff9b:1:ffff::"])
def test_the_local_use_nat64_prefix_is_refused_whatever_it_carries(address: str) -> None:
    assert not is_public(ipaddress.IPv6Address(address))
    assert "local or private" in refusal(Policy(), f"https://[{address}]/")


@pytest.mark.parametrize(
    "address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"]
)
def test_ipv6_forms_of_a_public_ipv4_address_pass(address: str) -> None:
    assert is_public(ipaddress.IPv6Address(address))
    assert allowed(Policy(), f"http://[{address}]/")


def test_embedded_ipv4_of_plain_addresses_is_empty() -> None:
    assert embedded_ipv4(ipaddress.IPv4Address("127.0.0.1")) == []
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) == []
    assert embedded_ipv4(ipaddress.IPv6Address("fe80::1")) == []


def test_deny_hosts_by_ipv4_network_also_denies_its_ipv6_forms() -> None:
    policy = Policy(allow_hosts=("*",), deny_hosts=("127.0.0.0/8", "10.0.0.0/8"))
    for host in ("[::ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::a00:1]", "[2002:a00:1::]"):
        assert "denied by deny-hosts" in refusal(policy, f"http://{host}/"), host
    assert allowed(policy, "http://[::ffff:8.8.8.8]/")

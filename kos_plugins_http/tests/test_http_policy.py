"""The requester's URL policy (``kos_plugins_http.policy.Policy``), without a kernel.

Host names used here resolve without a network: ``localhost`` and IP literals.
"""

from __future__ import annotations

import pytest

from kos_plugins_http import FileIOError
from kos_plugins_http.policy import SCHEMES, Policy


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
    policy = Policy.from_options({})
    assert policy == Policy()
    assert policy.allow_hosts == () and policy.deny_hosts == ()
    assert policy.max_size == 100 * 1024 * 1024
    assert policy.max_redirects == 5
    assert policy.timeout == 30.0
    assert policy.ca_file == ""
    assert SCHEMES == ("http", "https", "ftp")


def test_from_options_reads_every_key() -> None:
    policy = Policy.from_options(
        {
            "allow-hosts": "*.example.org, 127.0.0.1\n  10.0.0.0/8",
            "deny-hosts": "bad.example.org",
            "max-size": " 2048 ",
            "max-redirects": "0",
            "timeout": "2.5",
            "ca-file": " /etc/my-ca.pem ",
            "child-start": "exec",  # not a policy key: ignored here
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
    with pytest.raises(ValueError, match=f"^{key}: "):
        Policy.from_options({key: value})


@pytest.mark.parametrize("key", ["allow-hosts", "deny-hosts"])
def test_a_bad_network_is_refused_naming_its_key(key: str) -> None:
    with pytest.raises(ValueError) as caught:
        Policy.from_options({key: "127.0.0.1 10.0.0.0/99"})
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

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llavero.core.restrictions import (
    UNRESTRICTED,
    CompiledRestrictions,
    RequestContext,
    compile_restrictions,
    normalize,
)
from llavero.errors import InvalidArgument

FP = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
FP_COLONS = ":".join(FP[i : i + 2] for i in range(0, 40, 2))
OTHER_FP = "00" * 20
GEMINI = "generativelanguage.googleapis.com"
QUALIFIED = "google.ai.generativelanguage.v1beta.GenerativeService.generateContent"


def compiled(restrictions: dict[str, Any]) -> CompiledRestrictions:
    return compile_restrictions(normalize(restrictions))


# --- normalize: canonical form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (None, {}),
        ({}, {}),
        ({"allowed_ips": [], "api_targets": None}, {}),
        ({"allowed_ips": ["2001:DB8::/32"]}, {"allowed_ips": ["2001:db8::/32"]}),
        ({"allowed_ips": [" 203.0.113.7 "]}, {"allowed_ips": ["203.0.113.7"]}),
        ({"allowed_ips": ["203.0.113.7/32"]}, {"allowed_ips": ["203.0.113.7"]}),
        ({"allowed_ips": ["2001:db8::1/128"]}, {"allowed_ips": ["2001:db8::1"]}),
        ({"allowed_ips": ["10.0.0.0/255.0.0.0"]}, {"allowed_ips": ["10.0.0.0/8"]}),
        ({"allowed_ips": ["::ffff:203.0.113.0/120"]}, {"allowed_ips": ["203.0.113.0/24"]}),
        ({"allowed_ips": ["10.0.0.1", "10.0.0.1/32"]}, {"allowed_ips": ["10.0.0.1"]}),
        (
            {"allowed_referrers": ["*.Example.COM/*", "HTTPS://App.example.com:443/Api/*"]},
            {"allowed_referrers": ["*.example.com/*", "https://app.example.com/Api/*"]},
        ),
        ({"allowed_referrers": ["example.com:8080"]}, {"allowed_referrers": ["example.com:8080"]}),
        (
            {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": FP.lower()}]},
            {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": FP_COLONS}]},
        ),
        ({"ios_bundle_ids": ["com.example.App-1"]}, {"ios_bundle_ids": ["com.example.App-1"]}),
        (
            {"api_targets": [{"service": "GenerativeLanguage.googleapis.com", "methods": []}]},
            {"api_targets": [{"service": GEMINI}]},
        ),
        (
            {"api_targets": [{"service": GEMINI, "methods": ["*.generateContent", "get*"]}]},
            {"api_targets": [{"service": GEMINI, "methods": ["*.generateContent", "get*"]}]},
        ),
    ],
)
def test_normalize_canonical_form(given_: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert normalize(given_) == expected
    assert normalize(normalize(given_)) == normalize(given_)


def test_normalize_keeps_application_and_api_targets_together() -> None:
    given_ = {"api_targets": [{"service": GEMINI}], "allowed_ips": ["10.0.0.0/8"]}
    assert normalize(given_) == {
        "allowed_ips": ["10.0.0.0/8"],
        "api_targets": [{"service": GEMINI}],
    }


# --- normalize: every invalid input names its field --------------------------------------------


def long(n: int) -> str:
    return "a" * n


@pytest.mark.parametrize(
    ("given_", "field"),
    [
        ("allowed_ips", "restrictions"),
        ({"foo": []}, "restrictions.foo"),
        ({"allowed_ips": "10.0.0.1"}, "restrictions.allowed_ips"),
        ({"allowed_ips": ["10.0.0.1", "10.0.0.300"]}, "restrictions.allowed_ips[1]"),
        ({"allowed_ips": ["10.0.0.1/24"]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": ["2001:db8::/129"]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": ["fe80::1%eth0"]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": [""]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": [42]}, "restrictions.allowed_ips[0]"),
        ({"allowed_ips": [f"10.0.{i // 256}.{i % 256}" for i in range(101)]},
         "restrictions.allowed_ips"),
        ({"allowed_ips": ["10.0.0.0/8"], "ios_bundle_ids": ["com.example.app"]}, "restrictions"),
        ({"allowed_referrers": ["example.com"], "allowed_ips": ["10.0.0.1"]}, "restrictions"),
        ({"allowed_referrers": ["ftp://example.com/*"]}, "restrictions.allowed_referrers[0]"),
        ({"allowed_referrers": ["*"]}, "restrictions.allowed_referrers[0]"),
        ({"allowed_referrers": ["ex*ample.com"]}, "restrictions.allowed_referrers[0]"),
        ({"allowed_referrers": ["example.com:99999"]}, "restrictions.allowed_referrers[0]"),
        ({"allowed_referrers": ["example.com/a?b=1"]}, "restrictions.allowed_referrers[0]"),
        ({"allowed_referrers": ["example.com/" + long(2048)]}, "restrictions.allowed_referrers[0]"),
        ({"android_apps": [{"package_name": "", "sha1_fingerprint": FP}]},
         "restrictions.android_apps[0].package_name"),
        ({"android_apps": [{"sha1_fingerprint": FP}]},
         "restrictions.android_apps[0].package_name"),
        ({"android_apps": [{"package_name": "app", "sha1_fingerprint": FP}]},
         "restrictions.android_apps[0].package_name"),
        ({"android_apps": [{"package_name": "com.1example", "sha1_fingerprint": FP}]},
         "restrictions.android_apps[0].package_name"),
        ({"android_apps": [{"package_name": "com.example", "sha1_fingerprint": FP[:-1]}]},
         "restrictions.android_apps[0].sha1_fingerprint"),
        ({"android_apps": [{"package_name": "com.example", "sha1_fingerprint": "G" * 40}]},
         "restrictions.android_apps[0].sha1_fingerprint"),
        ({"android_apps": [{"package_name": "com.example"}]},
         "restrictions.android_apps[0].sha1_fingerprint"),
        ({"android_apps": [{"package_name": "com.example", "sha1_fingerprint": FP, "x": 1}]},
         "restrictions.android_apps[0].x"),
        ({"android_apps": ["com.example"]}, "restrictions.android_apps[0]"),
        ({"ios_bundle_ids": ["example"]}, "restrictions.ios_bundle_ids[0]"),
        ({"ios_bundle_ids": ["com.example.app_1"]}, "restrictions.ios_bundle_ids[0]"),
        ({"ios_bundle_ids": ["com." + long(300)]}, "restrictions.ios_bundle_ids[0]"),
        ({"api_targets": [{"service": ""}]}, "restrictions.api_targets[0].service"),
        ({"api_targets": [{"methods": ["get"]}]}, "restrictions.api_targets[0].service"),
        ({"api_targets": [{"service": "bad service"}]}, "restrictions.api_targets[0].service"),
        ({"api_targets": [{"service": GEMINI, "methods": "get"}]},
         "restrictions.api_targets[0].methods"),
        ({"api_targets": [{"service": GEMINI, "methods": ["get", "a/b"]}]},
         "restrictions.api_targets[0].methods[1]"),
        ({"api_targets": [{"service": GEMINI, "version": "v1"}]},
         "restrictions.api_targets[0].version"),
    ],
)  # fmt: skip
def test_normalize_refuses_invalid_input_naming_the_field(given_: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        normalize(given_)
    assert raised.value.field == field
    assert raised.value.message.startswith(f"{field}: ")


def test_normalize_uses_the_given_field_prefix() -> None:
    with pytest.raises(InvalidArgument) as raised:
        normalize({"allowed_ips": ["nope"]}, field="key.restrictions")
    assert raised.value.field == "key.restrictions.allowed_ips[0]"


def test_host_bits_error_suggests_the_network() -> None:
    with pytest.raises(InvalidArgument) as raised:
        normalize({"allowed_ips": ["10.0.0.1/24"]})
    assert "write 10.0.0.0/24 for the range or 10.0.0.1 for the single address" in str(raised.value)


# --- matching ----------------------------------------------------------------------------------

IPS = {"allowed_ips": ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]}
REFERRERS = {
    "allowed_referrers": [
        "*.example.com/*",
        "https://app.example.org/api/*",
        "shop.example.net",
        "dev.example.net:8080/*",
        "http://docs.example.net/guide",
    ]
}
ANDROID = {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": FP}]}
IOS = {"ios_bundle_ids": ["com.example.app"]}
API = {
    "api_targets": [
        {"service": GEMINI, "methods": ["*.generateContent", "count*"]},
        {"service": "maps.googleapis.com"},
    ]
}


@pytest.mark.parametrize(
    ("restrictions", "ctx", "code"),
    [
        # IPv4 CIDR edges, single addresses, IPv6 and IPv4-mapped IPv6.
        (IPS, RequestContext(ip="203.0.113.0"), None),
        (IPS, RequestContext(ip="203.0.113.255"), None),
        (IPS, RequestContext(ip="203.0.114.0"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="203.0.112.255"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="198.51.100.7"), None),
        (IPS, RequestContext(ip="198.51.100.8"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="::ffff:203.0.113.7"), None),
        (IPS, RequestContext(ip="::ffff:198.51.100.8"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="2001:db8::"), None),
        (IPS, RequestContext(ip="2001:DB8:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"), None),
        (IPS, RequestContext(ip="2001:db9::"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="not-an-ip"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip="203.0.113.7, 10.0.0.1"), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(ip=""), "IP_NOT_ALLOWED"),
        (IPS, RequestContext(), "IP_NOT_ALLOWED"),
        ({"allowed_ips": ["::ffff:203.0.113.0/120"]}, RequestContext(ip="203.0.113.9"), None),
        ({"allowed_ips": ["::/0"]}, RequestContext(ip="::ffff:10.0.0.1"), None),
        ({"allowed_ips": ["::/0"]}, RequestContext(ip="10.0.0.1"), "IP_NOT_ALLOWED"),
        # Referrers: subdomain wildcard (not the apex), scheme, port, path, case.
        (REFERRERS, RequestContext(referrer="https://a.example.com/page"), None),
        (REFERRERS, RequestContext(referrer="http://a.b.EXAMPLE.com/"), None),
        (REFERRERS, RequestContext(referrer="https://a.example.com"), None),
        (REFERRERS, RequestContext(referrer="https://example.com/page"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://badexample.com/"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://a.example.com.evil.io/"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://a.example.com:8443/"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://a.example.com:443/x"), None),
        (REFERRERS, RequestContext(referrer="https://app.example.org/api/v1?key=x#y"), None),
        (REFERRERS, RequestContext(referrer="http://app.example.org/api/v1"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://app.example.org/other"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://app.example.org/API/v1"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="http://shop.example.net/any/path"), None),
        (REFERRERS, RequestContext(referrer="https://shop.example.net"), None),
        (REFERRERS, RequestContext(referrer="https://x.shop.example.net/"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="http://dev.example.net:8080/a"), None),
        (REFERRERS, RequestContext(referrer="https://dev.example.net:8080/a"), None),
        (REFERRERS, RequestContext(referrer="http://dev.example.net/a"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="http://docs.example.net/guide"), None),
        (REFERRERS, RequestContext(referrer="http://docs.example.net/guide/2"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="a.example.com/page"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="ftp://a.example.com/"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="https://a.example.com:99999/"),
         "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(referrer="http://[::1"), "REFERRER_NOT_ALLOWED"),
        (REFERRERS, RequestContext(ip="203.0.113.7"), "REFERRER_NOT_ALLOWED"),
        # Android: package and certificate must match one entry; any case, colons optional.
        (ANDROID, RequestContext(android_package="com.example.app", android_cert=FP), None),
        (ANDROID, RequestContext(android_package="com.example.app", android_cert=FP.lower()),
         None),
        (ANDROID, RequestContext(android_package="com.example.app", android_cert=FP_COLONS),
         None),
        (ANDROID, RequestContext(android_package="com.example.app",
                                 android_cert=FP_COLONS.lower()), None),
        (ANDROID, RequestContext(android_package="com.example.app", android_cert=OTHER_FP),
         "APP_NOT_ALLOWED"),
        (ANDROID, RequestContext(android_package="com.example.other", android_cert=FP),
         "APP_NOT_ALLOWED"),
        (ANDROID, RequestContext(android_package="com.example.app", android_cert="zz"),
         "APP_NOT_ALLOWED"),
        (ANDROID, RequestContext(android_package="com.example.app"), "APP_NOT_ALLOWED"),
        (ANDROID, RequestContext(android_cert=FP), "APP_NOT_ALLOWED"),
        # iOS: exact bundle identifier.
        (IOS, RequestContext(ios_bundle_id="com.example.app"), None),
        (IOS, RequestContext(ios_bundle_id="com.example.App"), "APP_NOT_ALLOWED"),
        (IOS, RequestContext(ios_bundle_id="com.example.app.extra"), "APP_NOT_ALLOWED"),
        (IOS, RequestContext(), "APP_NOT_ALLOWED"),
        # API targets: services, method wildcards, bare and qualified method names, case.
        (API, RequestContext(service=GEMINI, method="generateContent"), None),
        (API, RequestContext(service=GEMINI, method=QUALIFIED), None),
        (API, RequestContext(service=GEMINI.upper(), method="GENERATECONTENT"), None),
        (API, RequestContext(service=GEMINI, method="streamGenerateContent"), "API_NOT_ALLOWED"),
        (API, RequestContext(service=GEMINI, method="countTokens"), None),
        (API, RequestContext(service=GEMINI, method="embedContent"), "API_NOT_ALLOWED"),
        (API, RequestContext(service=GEMINI), "API_NOT_ALLOWED"),
        (API, RequestContext(service="maps.googleapis.com", method="anything"), None),
        (API, RequestContext(service="maps.googleapis.com"), None),
        (API, RequestContext(service="translate.googleapis.com", method="x"), "API_NOT_ALLOWED"),
        (API, RequestContext(method="generateContent"), "API_NOT_ALLOWED"),
        ({"api_targets": [{"service": GEMINI, "methods": ["*"]}]},
         RequestContext(service=GEMINI, method="anything"), None),
        # Application restriction is checked before api_targets.
        ({**IPS, **API}, RequestContext(ip="10.0.0.1", service="other.example.com"),
         "IP_NOT_ALLOWED"),
        ({**IPS, **API}, RequestContext(ip="203.0.113.1", service="other.example.com"),
         "API_NOT_ALLOWED"),
        ({**IPS, **API}, RequestContext(ip="203.0.113.1", service="maps.googleapis.com"), None),
        ({}, RequestContext(), None),
    ],
)  # fmt: skip
def test_check(restrictions: dict[str, Any], ctx: RequestContext, code: str | None) -> None:
    rules = compiled(restrictions)
    assert rules.check(ctx) == code
    explanation = rules.explain(ctx)
    assert explanation.code == code
    assert [c.allowed for c in explanation.checks if not c.allowed][:1] == ([False] if code else [])
    for check in explanation.checks:
        assert check.reason
        assert (check.matched_rule is not None) == check.allowed
        assert "key=x" not in check.reason


@pytest.mark.parametrize(
    ("restrictions", "ctx", "restriction", "matched", "reason"),
    [
        (IPS, RequestContext(ip="203.0.113.7"), "allowed_ips", "203.0.113.0/24",
         "203.0.113.7 is inside 203.0.113.0/24"),
        (IPS, RequestContext(ip="198.51.100.7"), "allowed_ips", "198.51.100.7",
         "198.51.100.7 matches 198.51.100.7"),
        (IPS, RequestContext(), "allowed_ips", None, "the request carries no client IP address"),
        (REFERRERS, RequestContext(referrer="https://a.example.com/p?key=secret"),
         "allowed_referrers", "*.example.com/*",
         "the referrer from https://a.example.com:443 matches *.example.com/*"),
        (ANDROID, RequestContext(android_package="com.example.app", android_cert=OTHER_FP),
         "android_apps", None, "com.example.app is allowed only with another certificate"),
        (IOS, RequestContext(ios_bundle_id="com.example.app"), "ios_bundle_ids",
         "com.example.app", "com.example.app is an allowed iOS app"),
        (API, RequestContext(service=GEMINI, method="generateContent"), "api_targets",
         f"{GEMINI} *.generateContent", f"generateContent matches {GEMINI} *.generateContent"),
        (API, RequestContext(service="maps.googleapis.com"), "api_targets",
         "maps.googleapis.com", "every method of maps.googleapis.com is allowed"),
    ],
)  # fmt: skip
def test_explain_names_the_rule_and_why(
    restrictions: dict[str, Any],
    ctx: RequestContext,
    restriction: str,
    matched: str | None,
    reason: str,
) -> None:
    (check,) = compiled(restrictions).explain(ctx).checks
    assert (check.restriction, check.matched_rule, check.reason) == (restriction, matched, reason)
    assert check.allowed == (matched is not None)


def test_explain_lists_every_restriction_even_after_a_refusal() -> None:
    explanation = compiled({**IPS, **API}).explain(RequestContext(ip="10.0.0.1"))
    assert explanation.code == "IP_NOT_ALLOWED"
    assert [(c.restriction, c.allowed) for c in explanation.checks] == [
        ("allowed_ips", False),
        ("api_targets", False),
    ]


def test_unrestricted_is_shared_and_allows_everything() -> None:
    assert compile_restrictions({}) is UNRESTRICTED
    assert UNRESTRICTED.unrestricted
    assert UNRESTRICTED.check(RequestContext()) is None
    assert UNRESTRICTED.explain(RequestContext()).code is None
    assert not compiled(IPS).unrestricted


def test_compile_refuses_invalid_stored_restrictions() -> None:
    with pytest.raises(InvalidArgument):
        compile_restrictions({"allowed_ips": ["10.0.0.1/8"]})


# --- property: CIDR matching agrees with ipaddress ---------------------------------------------


ADDRESSES = {4: st.ip_addresses(v=4), 6: st.ip_addresses(v=6)}


@st.composite
def network_and_address(
    draw: st.DrawFn,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]:
    version = draw(st.sampled_from([4, 6]))
    base = draw(ADDRESSES[version])
    prefix = draw(st.integers(0, base.max_prefixlen))
    network = ipaddress.ip_network((base, prefix), strict=False)
    inside = draw(st.booleans())
    if inside:
        offset = draw(st.integers(0, network.num_addresses - 1))
        address = str(network.network_address + offset)
    else:
        address = str(draw(ADDRESSES[version]))
    return network, address


@settings(max_examples=200, deadline=None)
@given(network_and_address())
def test_cidr_matching_agrees_with_ipaddress(
    case: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str],
) -> None:
    network, address = case
    rules = compile_restrictions(normalize({"allowed_ips": [str(network)]}))
    expected = ipaddress.ip_address(address) in network
    assert (rules.check(RequestContext(ip=address)) is None) == expected


def maybe(*values: str) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(values) | st.text(max_size=30)


CONTEXTS = st.builds(
    RequestContext,
    ip=maybe("203.0.113.7", "::ffff:203.0.113.7", "2001:db8::1", "10.0.0.1", "::1"),
    referrer=maybe(
        "https://a.example.com/x", "https://example.com/", "http://shop.example.net/p",
        "https://app.example.org/api/v1", "http://dev.example.net:8080/", "http://[::1",
    ),
    android_package=maybe("com.example.app", "com.example.other"),
    android_cert=maybe(FP, FP_COLONS.lower(), OTHER_FP, "zz"),
    ios_bundle_id=maybe("com.example.app", "com.example.App"),
    service=maybe(GEMINI, GEMINI.upper(), "maps.googleapis.com", "other.example.com"),
    method=maybe("generateContent", QUALIFIED, "countTokens", "embedContent", "GET*"),
)  # fmt: skip
RULE_SETS = [IPS, REFERRERS, ANDROID, IOS, API, {**IPS, **API}, {**REFERRERS, **API}]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RULE_SETS), CONTEXTS)
def test_explain_agrees_with_check(restrictions: dict[str, Any], ctx: RequestContext) -> None:
    rules = compiled(restrictions)
    explanation = rules.explain(ctx)
    assert explanation.code == rules.check(ctx)
    assert len(explanation.checks) == len(restrictions)

"""Rule evaluation: placeholders, conditions, DENY over ALLOW, subscriptions."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mqttauth.acl.mosquitto import parse_mosquitto_acl
from mqttauth.acl.rules import (
    Access,
    Attribute,
    Outcome,
    Requirement,
    Rule,
    RuleSet,
    TopicTemplate,
)
from mqttauth.acl.tabular import parse_csv_rules
from mqttauth.auth.interfaces import Identity


def identity(
    principal="alice",
    client_id="c1",
    organization=None,
    groups=(),
    anonymous_client=False,
    **attrs,
):
    return Identity(
        principal,
        client_id,
        organization,
        tuple(groups),
        attributes=attrs,
        anonymous=anonymous_client,
    )


def csv_rules(*rows):
    return RuleSet(parse_csv_rules("\n".join(rows)))


def test_no_rules_decide_nothing():
    rules = RuleSet([])
    assert rules.may_publish(identity(), "a") is None
    assert rules.may_subscribe(identity(), "a/#") is None


def test_deny_beats_allow_in_any_order():
    for rows in (
        ["a/#, ALL, , ALLOW", "a/secret, ALL, , DENY"],
        ["a/secret, ALL, , DENY", "a/#, ALL, , ALLOW"],
    ):
        rules = csv_rules(*rows)
        assert rules.may_publish(identity(), "a/secret") is False
        assert rules.may_publish(identity(), "a/open") is True


def test_action_limits_access():
    rules = csv_rules("in/#, PUBLISH, , ALLOW", "out/#, SUBSCRIBE, , ALLOW")
    assert rules.may_publish(identity(), "in/x") is True
    assert rules.may_subscribe(identity(), "in/x") is None
    assert rules.may_publish(identity(), "out/x") is None
    assert rules.may_subscribe(identity(), "out/x") is True


def test_deny_publish_leaves_subscribe():
    rules = csv_rules("a/#, ALL, , ALLOW", "a/b, PUBLISH, , DENY")
    assert rules.may_publish(identity(), "a/b") is False
    assert rules.may_subscribe(identity(), "a/b") is True


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("t/alice/#", True),
        ("t/alice/+", True),
        ("t/alice", True),
        ("t/#", None),
        ("t/+/x", None),
        ("#", None),
        ("t/bob/x", None),
    ],
)
def test_subscribe_needs_whole_filter_covered(requested, expected):
    rules = csv_rules("t/{username}/#, SUBSCRIBE, , ALLOW")
    assert rules.may_subscribe(identity(), requested) is expected


def test_subscribe_denied_when_filter_reaches_deny():
    rules = csv_rules("t/#, SUBSCRIBE, , ALLOW", "t/secret/+, SUBSCRIBE, , DENY")
    assert rules.may_subscribe(identity(), "t/#") is False
    assert rules.may_subscribe(identity(), "t/+/x") is False
    assert rules.may_subscribe(identity(), "t/open/#") is True
    assert rules.may_subscribe(identity(), "t/secret") is True


def test_subscribe_covered_by_union():
    rules = csv_rules("t, SUBSCRIBE, , ALLOW", "t/+/#, SUBSCRIBE, , ALLOW")
    assert rules.may_subscribe(identity(), "t/#") is True


def test_subscribe_invalid_filter_denied():
    rules = csv_rules("#, ALL, , ALLOW")
    assert rules.may_subscribe(identity(), "a/#/b") is False


def test_publish_wildcard_topic_denied():
    rules = csv_rules("#, ALL, , ALLOW")
    assert rules.may_publish(identity(), "a/+") is False


def test_dollar_topics_need_dollar_rules():
    rules = csv_rules("#, ALL, , ALLOW", "$SYS/broker/#, SUBSCRIBE, , ALLOW")
    assert rules.may_publish(identity(), "$SYS/x") is None
    assert rules.may_subscribe(identity(), "$SYS/#") is None
    assert rules.may_subscribe(identity(), "$SYS/broker/load") is True
    assert rules.may_subscribe(identity(), "#") is True


@pytest.mark.parametrize("principal", ["#", "+", "a/b", "", "x#", "a+b"])
def test_bad_principal_matches_nothing(principal):
    rules = csv_rules("t/{username}/#, ALL, , ALLOW", "#, PUBLISH, , DENY")
    who = identity(principal=principal)
    assert rules.may_subscribe(who, "t/#") is None
    assert rules.may_subscribe(who, "t/x/#") is None
    assert rules.may_subscribe(who, "t/" + principal) is not True


def test_principal_hash_reads_only_its_own():
    rules = csv_rules("t/{username}/#, SUBSCRIBE, , ALLOW")
    hashed = identity(principal="#")
    assert rules.may_subscribe(hashed, "t/#") is None
    assert rules.may_subscribe(hashed, "t/alice/x") is None


def test_principal_dollar_cannot_reach_dollar_topics():
    rules = csv_rules("{username}/#, ALL, , ALLOW")
    assert rules.may_subscribe(identity(principal="$SYS"), "$SYS/#") is None
    assert rules.may_subscribe(identity(principal="alice"), "alice/#") is True


def test_literal_dollar_rule_keeps_working():
    rules = csv_rules("$devices/{username}/#, ALL, , ALLOW")
    assert rules.may_publish(identity(), "$devices/alice/x") is True


def test_organization_with_slash_matches_nothing():
    rules = csv_rules("t/{organization}/{username}/#, ALL, , ALLOW")
    assert rules.may_publish(identity(organization="a/b"), "t/a/b/alice/x") is None
    assert rules.may_publish(identity(organization=None), "t/None/alice/x") is None
    assert rules.may_publish(identity(organization="org1"), "t/org1/alice/x") is True


def test_group_placeholder_skips_bad_groups():
    rules = csv_rules("g/{group}/#, ALL, , ALLOW")
    who = identity(groups=["ok", "#", "a/b", "", "+", "fine"])
    assert rules.may_publish(who, "g/ok/x") is True
    assert rules.may_publish(who, "g/fine/x") is True
    assert rules.may_subscribe(who, "g/#") is None
    assert rules.may_subscribe(who, "g/+/x") is None
    assert rules.may_publish(who, "g/a/b/x") is None


def test_group_placeholder_without_groups():
    rules = csv_rules("g/{group}/#, ALL, , ALLOW")
    assert rules.may_publish(identity(), "g/x/y") is None


def test_placeholder_inside_level():
    rules = csv_rules("dev-{clientid}/#, ALL, , ALLOW")
    assert rules.may_publish(identity(client_id="7"), "dev-7/up") is True
    assert rules.may_publish(identity(client_id="7"), "dev-8/up") is None


def test_mosquitto_aliases():
    template = TopicTemplate.parse("a/%u/%c")
    concrete = list(template.expand(identity(principal="u1", client_id="c1")))
    assert concrete == [("a", "u1", "c1")]


def test_condition_conjunction():
    rules = csv_rules("adm/#, ALL, username=alice&group=admin, ALLOW")
    assert rules.may_publish(identity(groups=["admin"]), "adm/x") is True
    assert rules.may_publish(identity(groups=["staff"]), "adm/x") is None
    assert (
        rules.may_publish(identity(principal="bob", groups=["admin"]), "adm/x") is None
    )


@pytest.mark.parametrize(
    ("condition", "who", "expected"),
    [
        ("clientid=c1", identity(), True),
        ("clientid=c2", identity(), None),
        ("organization=o1", identity(organization="o1"), True),
        ("organization=o1", identity(), None),
        ("group=g", identity(groups=["x", "g"]), True),
    ],
)
def test_condition_attributes(condition, who, expected):
    rules = csv_rules(f"a, ALL, {condition}, ALLOW")
    assert rules.may_publish(who, "a") is expected


def test_anonymous_only_rule():
    rule = Rule(
        TopicTemplate.parse("pub/#"), Access.READ, Outcome.ALLOW, anonymous_only=True
    )
    rules = RuleSet([rule])
    anonymous = identity(principal="c1", anonymous_client=True)
    assert rules.may_subscribe(anonymous, "pub/#") is True
    assert rules.may_subscribe(identity(), "pub/#") is None


def test_anonymous_has_no_username():
    rules = csv_rules("u/{username}, ALL, , ALLOW", "x, ALL, username=c1, ALLOW")
    anonymous = identity(principal="c1", anonymous_client=True)
    assert rules.may_publish(anonymous, "u/c1") is None
    assert rules.may_publish(anonymous, "x") is None
    assert rules.may_publish(identity(principal="c1"), "u/c1") is True


def test_anonymous_claim_not_anonymous():
    # A JWT's claims become the identity's attributes, so a token can carry a
    # claim named "anonymous". That claim must not make the ACL treat the
    # client as one that sent no User Name.
    rule = Rule(
        TopicTemplate.parse("pub/#"), Access.READ, Outcome.ALLOW, anonymous_only=True
    )
    rules = RuleSet([rule, *csv_rules("u/{username}, ALL, , ALLOW").rules])
    claimed = identity(principal="c1", anonymous=True)
    assert rules.may_subscribe(claimed, "pub/#") is None
    assert rules.may_publish(claimed, "u/c1") is True


def test_cache_keeps_identities_apart():
    rules = csv_rules("t/{username}, ALL, , ALLOW")
    assert rules.may_publish(identity(principal="a"), "t/a") is True
    assert rules.may_publish(identity(principal="b"), "t/a") is None
    assert rules.may_publish(identity(principal="a"), "t/a") is True


def test_caches_stay_bounded():
    rules = RuleSet(
        parse_csv_rules("t/{username}/#, ALL, , ALLOW"),
        identity_cache_size=2,
        decision_cache_size=2,
    )
    for name in ("a", "b", "c"):
        for topic in ("x", "y", "z"):
            assert rules.may_publish(identity(principal=name), f"t/{name}/{topic}")
    assert len(rules._policies) == 2
    assert len(rules._by_object) == 2
    policy = rules.policy_for(identity(principal="c"))
    assert len(policy._publish_cache) == 2


def test_equal_identities_share_policy():
    rules = csv_rules("t/{username}, ALL, , ALLOW")
    first = rules.policy_for(identity(principal="a"))
    assert rules.policy_for(identity(principal="a")) is first
    assert rules.policy_for(identity(principal="b")) is not first


def test_requirement_for_groups():
    requirement = Requirement(Attribute.GROUP, "g")
    assert requirement.holds(identity(groups=["g"]))
    assert not requirement.holds(identity(groups=["h"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a/{user}", "unknown placeholder {user}"),
        ("a/{username}+", "'+' and '#' must fill a whole level"),
        ("a/#/{group}", "'#' must be the last level"),
        ("", "empty topic filter"),
    ],
)
def test_template_errors(text, message):
    with pytest.raises(
        ValueError, match=message.replace("+", r"\+").replace("{", r"\{")
    ):
        TopicTemplate.parse(text)


def test_template_keeps_other_braces():
    template = TopicTemplate.parse("a/{b")
    assert list(template.expand(identity())) == [("a", "{b")]


def test_organization_username_scoping():
    rules = RuleSet(
        parse_mosquitto_acl("pattern readwrite t/{organization}/{username}/#")
    )
    app1_dev1 = identity(principal="dev1", organization="app1")
    app2_dev1 = identity(principal="dev1", organization="app2")
    assert rules.may_publish(app1_dev1, "t/app1/dev1/temp") is True
    assert rules.may_publish(app1_dev1, "t/app2/dev1/temp") is None
    assert rules.may_subscribe(app2_dev1, "t/app2/dev1/#") is True
    assert rules.may_subscribe(app2_dev1, "t/app2/#") is None


VALUE_TEXT = st.text(alphabet="ab/+#$ ", max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    principal=VALUE_TEXT,
    organization=st.none() | VALUE_TEXT,
    groups=st.lists(VALUE_TEXT, max_size=3),
    topic=st.lists(
        st.sampled_from(["t", "a", "b", "ab", "$a", "", "g"]), min_size=1, max_size=5
    ),
)
@example(principal="a", organization="b", groups=[], topic=["t", "b", "a", "x"])
@example(principal="a", organization=None, groups=["#", "ab"], topic=["g", "ab"])
def test_placeholders_never_widen(principal, organization, groups, topic):
    rules = csv_rules(
        "t/{organization}/{username}/#, ALL, , ALLOW",
        "g/{group}, ALL, , ALLOW",
    )
    who = identity(principal=principal, organization=organization, groups=groups)
    name = "/".join(topic)
    if not rules.may_publish(who, name):
        return
    if topic[0] == "t":
        assert topic[1:3] == [organization, principal]
    else:
        assert topic[0] == "g"
        assert len(topic) == 2
        assert topic[1] in groups

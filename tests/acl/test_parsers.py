"""Both rule-file syntaxes: what they produce and their error messages."""

import pytest

from mqttauth.acl.authorizer import detect_format
from mqttauth.acl.mosquitto import parse_mosquitto_acl
from mqttauth.acl.rules import (
    Access,
    AclSyntaxError,
    Attribute,
    Outcome,
    Requirement,
    RuleSet,
)
from mqttauth.acl.tabular import parse_csv_rules
from mqttauth.auth.interfaces import Identity

MOSQUITTO_FILE = """\
# anonymous clients
topic read public/#

user alice
topic alice/#
topic write   inbox/with space
topic deny alice/secret

group admin
topic readwrite admin/#

pattern read devices/%c/config
pattern deny devices/%u/locked
"""


def who(principal="alice", client_id="c1", groups=(), anonymous=False):
    return Identity(principal, client_id, None, tuple(groups), anonymous=anonymous)


def test_mosquitto_sections():
    rules = parse_mosquitto_acl(MOSQUITTO_FILE, "acl.conf")
    summary = [
        (r.topic.text, r.access, r.outcome, r.requirements, r.anonymous_only, r.origin)
        for r in rules
    ]
    alice = (Requirement(Attribute.USERNAME, "alice"),)
    admin = (Requirement(Attribute.GROUP, "admin"),)
    assert summary == [
        ("public/#", Access.READ, Outcome.ALLOW, (), True, "acl.conf:2"),
        ("alice/#", Access.READWRITE, Outcome.ALLOW, alice, False, "acl.conf:5"),
        ("inbox/with space", Access.WRITE, Outcome.ALLOW, alice, False, "acl.conf:6"),
        ("alice/secret", Access.READWRITE, Outcome.DENY, alice, False, "acl.conf:7"),
        ("admin/#", Access.READWRITE, Outcome.ALLOW, admin, False, "acl.conf:10"),
        ("devices/%c/config", Access.READ, Outcome.ALLOW, (), False, "acl.conf:12"),
        ("devices/%u/locked", Access.READWRITE, Outcome.DENY, (), False, "acl.conf:13"),
    ]


def test_mosquitto_decisions():
    rules = RuleSet(parse_mosquitto_acl(MOSQUITTO_FILE))
    anonymous = who(principal="c9", client_id="c9", anonymous=True)
    assert rules.may_subscribe(anonymous, "public/#") is True
    assert rules.may_subscribe(who(), "public/#") is None
    assert rules.may_publish(who(), "alice/x") is True
    assert rules.may_publish(who(), "alice/secret") is False
    assert rules.may_publish(who(principal="bob", groups=["admin"]), "admin/x") is True
    assert rules.may_subscribe(who(principal="bob"), "devices/c1/config") is True
    assert rules.may_publish(who(), "devices/alice/locked") is False


def test_mosquitto_single_word_is_topic():
    (rule,) = parse_mosquitto_acl("user u\ntopic read")
    assert rule.topic.text == "read"
    assert rule.access is Access.READWRITE


def test_mosquitto_tabs_and_indent():
    (rule,) = parse_mosquitto_acl("user u\n\ttopic\tread\ta/b\n")
    assert rule.topic.text == "a/b"
    assert rule.access is Access.READ


def test_mosquitto_user_name_with_space():
    (rule,) = parse_mosquitto_acl("user Jane Doe\ntopic a")
    assert rule.requirements == (Requirement(Attribute.USERNAME, "Jane Doe"),)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("topic a\nuser\n", 2, "missing name after 'user'"),
        ("topic a\n\ngroup   \n", 3, "missing name after 'group'"),
        ("topc a/b", 1, "unknown keyword 'topc'"),
        ("# c\ntopic writ a/b", 2, "unknown access 'writ'"),
        ("topic read a/#/b", 1, "'#' must be the last level"),
        ("pattern", 1, "missing topic after 'pattern'"),
        ("user u\npattern read a/{name}", 2, "unknown placeholder {name}"),
    ],
)
def test_mosquitto_errors(text, line, reason):
    with pytest.raises(AclSyntaxError) as caught:
        parse_mosquitto_acl(text, "acl.conf")
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"acl.conf, line {line}: ")


CSV_FILE = """\
# the rules of the fleet
Topic, Action, Condition, Outcome
t/{organization}/{username}/#, ALL, , ALLOW
#, SUBSCRIBE, group=ops, ALLOW
"a,b/#", publish, username=alice & clientid=c1, allow
admin/#, ALL, group=admin, DENY
"""


def test_csv_rows():
    rules = parse_csv_rules(CSV_FILE, "rules.csv")
    summary = [
        (r.topic.text, r.access, r.outcome, r.requirements, r.origin) for r in rules
    ]
    assert summary == [
        (
            "t/{organization}/{username}/#",
            Access.READWRITE,
            Outcome.ALLOW,
            (),
            "rules.csv:3",
        ),
        (
            "#",
            Access.READ,
            Outcome.ALLOW,
            (Requirement(Attribute.GROUP, "ops"),),
            "rules.csv:4",
        ),
        (
            "a,b/#",
            Access.WRITE,
            Outcome.ALLOW,
            (
                Requirement(Attribute.USERNAME, "alice"),
                Requirement(Attribute.CLIENTID, "c1"),
            ),
            "rules.csv:5",
        ),
        (
            "admin/#",
            Access.READWRITE,
            Outcome.DENY,
            (Requirement(Attribute.GROUP, "admin"),),
            "rules.csv:6",
        ),
    ]


def test_csv_without_header():
    rules = parse_csv_rules("a, ALL, , ALLOW")
    assert len(rules) == 1


def test_csv_header_only_first():
    with pytest.raises(AclSyntaxError) as caught:
        parse_csv_rules("a, ALL, , ALLOW\nTopic, Action, Condition, Outcome")
    assert caught.value.line == 2


def test_csv_value_keeps_inner_spaces():
    (rule,) = parse_csv_rules("a, ALL, username = Jane Doe, ALLOW")
    assert rule.requirements == (Requirement(Attribute.USERNAME, "Jane Doe"),)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "a, ALL, ALLOW",
            1,
            "expected 4 cells (Topic, Action, Condition, Outcome), found 3",
        ),
        (
            "\n\na, PUB, , ALLOW",
            3,
            "unknown action 'PUB'; expected PUBLISH, SUBSCRIBE or ALL",
        ),
        ("a, ALL, , PERMIT", 1, "unknown outcome 'PERMIT'; expected ALLOW or DENY"),
        ("a, ALL, user=x, ALLOW", 1, "unknown condition attribute 'user'"),
        ("a, ALL, username, ALLOW", 1, "condition test 'username' has no '='"),
        ("a, ALL, group=, ALLOW", 1, "condition test 'group' has no value"),
        ("a/#/b, ALL, , ALLOW", 1, "'#' must be the last level"),
        ("a, ALL, username=eve and group=x, DENY", 1, "join tests with '&'"),
        ("a, ALL, group=x OR group=y, DENY", 1, "contains 'and' or 'or'"),
        ('a, ALL, , ALLOW\n#,ALL,,ALLOW\n"a, ALL, , ALLOW', 3, "invalid CSV"),
    ],
)
def test_csv_errors(text, line, reason):
    with pytest.raises(AclSyntaxError) as caught:
        parse_csv_rules(text, "rules.csv")
    assert caught.value.line == line
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("acl.csv", "topic a", "csv"),
        ("acl", "# comment\n\nuser bob\ntopic a", "mosquitto"),
        ("acl", "pattern read a/%u", "mosquitto"),
        ("acl", "Topic, Action, Condition, Outcome", "csv"),
        ("acl", "# comment\n#, ALL, , ALLOW", "csv"),
        ("acl", "", "mosquitto"),
    ],
)
def test_detect_format(path, text, expected):
    assert detect_format(text, path) == expected

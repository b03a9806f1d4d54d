"""The acl-file authorizer: loading, reload, no-match choice, the plugin."""

import pytest
from twisted.logger import Logger
from zope.interface.verify import verifyObject

from mqttauth.acl.authorizer import AclAuthorizer, AclFilePlugin
from mqttauth.acl.rules import AclSyntaxError
from mqttauth.auth.interfaces import IAuthorizer, IAuthorizerPlugin, Identity
from mqttauth.service.config import ConfigError

ALICE = Identity("alice", "c1", "org1", ("staff",))


def capture_log(authorizer):
    events = []
    authorizer.log = Logger(observer=events.append)
    return events


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_authorizer_provides_interface(tmp_path):
    authorizer = AclAuthorizer(write(tmp_path / "acl", "pattern a/%u"))
    assert verifyObject(IAuthorizer, authorizer)


def test_authorizer_decides(tmp_path):
    authorizer = AclAuthorizer(write(tmp_path / "acl", "pattern write a/%u\n"))
    assert authorizer.authorize_publish(ALICE, "a/alice", 1, False) is True
    assert authorizer.authorize_publish(ALICE, "a/bob", 1, False) is False
    assert authorizer.authorize_subscribe(ALICE, "a/alice", 1) is False


def test_no_match_next_defers(tmp_path):
    authorizer = AclAuthorizer(
        write(tmp_path / "acl", "pattern deny a/%u\n"), no_match="next"
    )
    assert authorizer.authorize_publish(ALICE, "b", 0, False) is None
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is False


def test_csv_file_by_extension(tmp_path):
    path = write(tmp_path / "rules.csv", "topic, ALL, , ALLOW\n")
    authorizer = AclAuthorizer(path)
    assert authorizer.authorize_publish(ALICE, "topic", 0, False) is True


def test_forced_format(tmp_path):
    path = write(tmp_path / "rules", "topic, ALL, , ALLOW\n")
    with pytest.raises(AclSyntaxError):
        AclAuthorizer(path, rule_format="mosquitto")


def test_inline_rules_add_to_file(tmp_path):
    path = write(tmp_path / "acl", "pattern read in/%u\n")
    authorizer = AclAuthorizer(path, inline="out/#, PUBLISH, group=staff, ALLOW")
    assert authorizer.authorize_subscribe(ALICE, "in/alice", 0) is True
    assert authorizer.authorize_publish(ALICE, "out/x", 0, False) is True


def test_reload_puts_new_rules_in_force(tmp_path):
    path = tmp_path / "acl"
    authorizer = AclAuthorizer(write(path, "pattern a/%u\n"))
    events = capture_log(authorizer)
    write(path, "pattern b/%u\n")
    assert authorizer.reload() is True
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is False
    assert authorizer.authorize_publish(ALICE, "b/alice", 0, False) is True
    assert events[-1]["count"] == 1


def test_reload_broken_file_keeps_rules(tmp_path):
    path = tmp_path / "acl"
    authorizer = AclAuthorizer(write(path, "pattern a/%u\n"))
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is True
    events = capture_log(authorizer)
    write(path, "pattern b/%u\ntopic read a/#/x\n")
    assert authorizer.reload() is False
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is True
    assert authorizer.authorize_publish(ALICE, "b/alice", 0, False) is False
    (event,) = events
    assert event["line"] == 2
    assert "'#' must be the last level" in event["reason"]
    assert event["path"] == str(path)


def test_reload_missing_file_keeps_rules(tmp_path):
    path = tmp_path / "acl"
    authorizer = AclAuthorizer(write(path, "pattern a/%u\n"))
    events = capture_log(authorizer)
    path.unlink()
    assert authorizer.reload() is False
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is True
    assert isinstance(events[0]["error"], FileNotFoundError)


def test_reload_clears_decision_cache(tmp_path):
    path = tmp_path / "acl"
    authorizer = AclAuthorizer(write(path, "pattern a/%u\n"))
    assert authorizer.authorize_subscribe(ALICE, "a/alice", 0) is True
    write(path, "pattern deny a/%u\npattern a/#\n")
    authorizer.reload()
    assert authorizer.authorize_subscribe(ALICE, "a/alice", 0) is False


def test_plugin_provides_interface():
    assert verifyObject(IAuthorizerPlugin, AclFilePlugin())


def test_plugin_builds(tmp_path):
    path = write(tmp_path / "acl", "pattern a/%u\n")
    authorizer = AclFilePlugin().build({"acl_file": path}, None)
    assert authorizer.authorize_publish(ALICE, "a/alice", 0, False) is True


def test_plugin_inline_only():
    settings = {"acl_rules": "x/#, ALL, , ALLOW", "acl_no_match": "next"}
    authorizer = AclFilePlugin().build(settings, None)
    assert authorizer.authorize_publish(ALICE, "x/1", 0, False) is True
    assert authorizer.authorize_publish(ALICE, "y", 0, False) is None


def test_plugin_needs_a_source():
    with pytest.raises(ConfigError) as caught:
        AclFilePlugin().build({"acl_file": None}, None)
    assert caught.value.setting == "acl-file"


def test_plugin_missing_file(tmp_path):
    path = str(tmp_path / "absent")
    with pytest.raises(ConfigError) as caught:
        AclFilePlugin().build({"acl_file": path}, None)
    assert caught.value.setting == "acl-file"
    assert "No such file or directory" in str(caught.value)


def test_plugin_unparsable_file(tmp_path):
    path = write(tmp_path / "acl", "user\n")
    with pytest.raises(ConfigError) as caught:
        AclFilePlugin().build({"acl_file": path}, None)
    assert caught.value.setting == "acl-file"
    assert f"{path}, line 1: missing name after 'user'" in str(caught.value)


def test_plugin_unparsable_inline():
    with pytest.raises(ConfigError) as caught:
        AclFilePlugin().build({"acl_rules": "a, ALL, , ALLOW\nb, ALL"}, None)
    assert caught.value.setting == "acl-rules"
    assert "line 2: expected 4 cells" in str(caught.value)


def test_plugin_not_utf8(tmp_path):
    path = tmp_path / "acl"
    path.write_bytes(b"topic \xff\n")
    with pytest.raises(ConfigError) as caught:
        AclFilePlugin().build({"acl_file": str(path)}, None)
    assert "not UTF-8 text" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("acl-format", " CSV ", "csv"), ("acl-no-match", "Next", "next")],
)
def test_plugin_option_coerce(name, value, expected):
    option = next(o for o in AclFilePlugin.options if o.name == name)
    assert option.coerce(value) == expected


def test_plugin_option_rejects_unknown():
    option = next(o for o in AclFilePlugin.options if o.name == "acl-format")
    with pytest.raises(ValueError, match="expected one of auto, mosquitto, csv"):
        option.coerce("yaml")


def test_file_with_bom_and_crlf(tmp_path):
    # Windows editors may add a byte order mark and CRLF line ends.
    path = tmp_path / "acl"
    path.write_bytes(b"\xef\xbb\xbfuser alice\r\ntopic write a/#\r\n")
    authorizer = AclAuthorizer(str(path))
    assert authorizer.authorize_publish(ALICE, "a/x", 0, False) is True
    assert authorizer.authorize_subscribe(ALICE, "a/x", 0) is False

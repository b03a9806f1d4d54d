"""Enhanced authentication, re-authentication and credential expiry."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttauth.auth.interfaces import (
    AuthContinue,
    AuthenticationError,
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    IAuthorizer,
    Identity,
)
from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import PropertyId, ReasonCode
from mqttauth.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.clocked import START, FakeClient, clocked_broker

METHOD = PropertyId.AUTHENTICATION_METHOD
DATA = PropertyId.AUTHENTICATION_DATA
REASON_STRING = PropertyId.REASON_STRING


@implementer(IAuthenticator)
class ChallengeAuthenticator:
    """Asks for one more round: sends b"nonce", accepts the answer b"answer"."""

    methods = ("CHALLENGE",)

    def authenticate(self, request: AuthRequest) -> AuthSuccess | AuthContinue:
        if request.state is None:
            return AuthContinue(data=b"nonce", state="challenged")
        if request.data != b"answer":
            raise AuthenticationError(
                ReasonCode.NOT_AUTHORIZED, "wrong answer", "bad_answer"
            )
        identity = Identity(principal="device", client_id=request.client_id)
        return AuthSuccess(identity, data=b"welcome")


@implementer(IAuthenticator)
class TokenAuthenticator:
    """Reads b"PRINCIPAL:SECONDS" tokens, as password or Authentication Data.

    The identity expires SECONDS after the clock's time; b"bad" is refused.
    """

    methods = ("TOKEN",)

    def __init__(self, clock) -> None:  # noqa: ANN001
        self.clock = clock
        self.requests: list[AuthRequest] = []

    def authenticate(self, request: AuthRequest) -> AuthSuccess:
        self.requests.append(request)
        token = request.data if request.method else request.password
        if not token or token == b"bad":
            raise AuthenticationError(
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                "The token is invalid",
                "bad_token",
            )
        principal, seconds = token.decode().split(":")
        identity = Identity(
            principal=principal,
            client_id=request.client_id,
            expires_at=self.clock.seconds() + int(seconds),
        )
        return AuthSuccess(identity)


@implementer(IAuthenticator)
class DeferredAuthenticator:
    """Answers with a Deferred that the test fires."""

    methods = ()

    def __init__(self) -> None:
        self.pending: list[tuple[AuthRequest, Deferred]] = []

    def authenticate(self, request: AuthRequest) -> Deferred:
        deferred: Deferred = Deferred()
        self.pending.append((request, deferred))
        return deferred


@implementer(IAuthenticator)
class CrashingAuthenticator:
    methods = ()

    def authenticate(self, request: AuthRequest) -> AuthSuccess:
        raise ValueError("bug in the authenticator")


def test_authenticators_provide_interface():
    assert verifyObject(IAuthenticator, ChallengeAuthenticator())
    assert verifyObject(IAuthenticator, TokenAuthenticator(None))
    assert verifyObject(IAuthenticator, DeferredAuthenticator())
    assert verifyObject(IAuthenticator, CrashingAuthenticator())


def test_challenge_round_then_connack():
    broker = clocked_broker(authenticator=ChallengeAuthenticator())
    client = FakeClient(broker)
    client.send(Connect("c", properties={METHOD: "CHALLENGE"}))
    assert client.received() == [
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, {METHOD: "CHALLENGE", DATA: b"nonce"})
    ]
    client.send(
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, {METHOD: "CHALLENGE", DATA: b"answer"})
    )
    [connack] = client.received()
    assert connack.reason_code == 0
    assert connack.properties[METHOD] == "CHALLENGE"
    assert connack.properties[DATA] == b"welcome"


def test_challenge_wrong_answer_refused():
    broker = clocked_broker(authenticator=ChallengeAuthenticator())
    client = FakeClient(broker)
    client.send(Connect("c", properties={METHOD: "CHALLENGE"}))
    client.received()
    client.send(
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, {METHOD: "CHALLENGE", DATA: b"no"})
    )
    [connack] = client.received()
    assert connack.reason_code == ReasonCode.NOT_AUTHORIZED
    assert connack.properties[REASON_STRING] == "wrong answer"
    assert client.closing


def test_other_packet_during_challenge():
    broker = clocked_broker(authenticator=ChallengeAuthenticator())
    client = FakeClient(broker)
    client.send(Connect("c", properties={METHOD: "CHALLENGE"}))
    client.received()
    client.send(Pingreq())
    [connack] = client.received()
    assert connack.reason_code == ReasonCode.PROTOCOL_ERROR
    assert client.closing


def test_unknown_method_0x8c():
    broker = clocked_broker(authenticator=ChallengeAuthenticator())
    connack = FakeClient(broker).connect(properties={METHOD: "OTHER"})
    assert connack.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD


def test_rejection_v5_has_reason_string():
    broker = clocked_broker(authenticator=TokenAuthenticator(None))
    client = FakeClient(broker)
    connack = client.connect(username="JWT", password=b"bad")
    assert connack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert connack.properties[REASON_STRING] == "The token is invalid"
    assert client.closing


def test_rejection_v311_return_code_4():
    broker = clocked_broker(authenticator=TokenAuthenticator(None))
    client = FakeClient(broker, protocol_level=4)
    connack = client.connect(username="JWT", password=b"bad")
    assert connack.reason_code == 4
    assert client.closing


def test_reason_string_dropped_to_fit():
    broker = clocked_broker(authenticator=TokenAuthenticator(None))
    client = FakeClient(broker)
    connack = client.connect(
        username="JWT", password=b"bad", properties={PropertyId.MAXIMUM_PACKET_SIZE: 16}
    )
    assert connack == Connack(ReasonCode.BAD_USER_NAME_OR_PASSWORD, False, {})


def test_crash_gives_0x80():
    broker = clocked_broker(authenticator=CrashingAuthenticator())
    connack = FakeClient(broker).connect()
    assert connack.reason_code == ReasonCode.UNSPECIFIED_ERROR


def test_crash_v311_gives_code_3():
    broker = clocked_broker(authenticator=CrashingAuthenticator())
    connack = FakeClient(broker, protocol_level=4).connect()
    assert connack.reason_code == 3


def test_no_method_in_plain_connack():
    broker = clocked_broker()
    connack = FakeClient(broker).connect()
    assert METHOD not in connack.properties


def test_auth_without_method_0x82():
    broker = clocked_broker()
    client = FakeClient(broker)
    client.connect()
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN"}))
    assert client.received() == [Disconnect(ReasonCode.PROTOCOL_ERROR)]
    assert client.closing


def test_pending_auth_holds_packets():
    authenticator = DeferredAuthenticator()
    broker = clocked_broker(authenticator=authenticator)
    client = FakeClient(broker)
    client.send(Connect("c"))
    client.send(Subscribe(1, [Subscription("t", 1)]))
    assert client.received() == []
    request, deferred = authenticator.pending[0]
    deferred.callback(AuthSuccess(Identity("p", request.client_id)))
    packets = client.received()
    assert isinstance(packets[0], Connack)
    assert packets[1] == Suback(1, [1])


def test_failed_auth_keeps_connected_client():
    clock_broker = clocked_broker()
    clock_broker.authenticator = TokenAuthenticator(clock_broker.reactor)
    first = FakeClient(clock_broker)
    assert first.connect("same", username="u", password=b"alice:100").reason_code == 0
    second = FakeClient(clock_broker)
    assert second.connect("same", username="u", password=b"bad").reason_code != 0
    first.send(Pingreq())
    assert first.received() == [Pingresp()]
    assert not first.closing


def token_client(broker, clock, token=b"alice:10"):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    connack = client.connect(properties={METHOD: "TOKEN", DATA: token})
    assert connack.reason_code == 0
    return client


def test_reauth_success_extends_expiry():
    broker = clocked_broker()
    clock = broker.reactor
    broker.authenticator = authenticator = TokenAuthenticator(clock)
    client = token_client(broker, clock)
    clock.advance(5)
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN", DATA: b"alice:100"}))
    assert client.received() == [Auth(ReasonCode.SUCCESS, {METHOD: "TOKEN"})]
    assert authenticator.requests[-1].current.principal == "alice"
    clock.advance(20)
    assert not client.closing
    clock.advance(100)
    assert client.closing


@implementer(IAuthenticator)
class GroupTokenAuthenticator:
    """Reads b"PRINCIPAL:GROUP" tokens from Authentication Data."""

    methods = ("TOKEN",)

    def authenticate(self, request: AuthRequest) -> AuthSuccess:
        principal, group = request.data.decode().split(":")
        return AuthSuccess(
            Identity(principal=principal, client_id=request.client_id, groups=(group,))
        )


@implementer(IAuthorizer)
class GroupAuthorizer:
    """Allows a subscription to g/GROUP/# only to members of GROUP."""

    def authorize_publish(self, identity: Identity, topic: str, qos: int, retain: bool):  # noqa: ANN201
        return True

    def authorize_subscribe(self, identity: Identity, topic_filter: str, qos: int):  # noqa: ANN201
        return topic_filter.split("/")[1] in identity.groups


def test_reauth_rechecks_subscriptions():
    broker = clocked_broker(
        authenticator=GroupTokenAuthenticator(), authorizers=[GroupAuthorizer()]
    )
    client = FakeClient(broker)
    client.connect(properties={METHOD: "TOKEN", DATA: b"alice:g1"})
    client.send(Subscribe(1, [Subscription("g/g1/#", qos=0)]))
    assert client.received() == [Suback(1, [0])]
    publisher = FakeClient(broker)
    publisher.connect("pub", properties={METHOD: "TOKEN", DATA: b"pub:g0"})
    publisher.send(Publish("g/g1/a", b"before", qos=0))
    [before] = client.received()
    assert before.payload == b"before"
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN", DATA: b"alice:g2"}))
    assert client.received() == [Auth(ReasonCode.SUCCESS, {METHOD: "TOKEN"})]
    publisher.send(Publish("g/g1/a", b"after", qos=0))
    assert client.received() == []
    assert not client.closing


def test_reauth_other_principal_0x87():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = token_client(broker, broker.reactor)
    client.send(
        Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN", DATA: b"mallory:100"})
    )
    [disconnect] = client.received()
    assert disconnect.reason_code == ReasonCode.NOT_AUTHORIZED
    assert client.closing


def test_reauth_other_method_0x82():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = token_client(broker, broker.reactor)
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "OTHER", DATA: b"alice:100"}))
    assert client.received() == [Disconnect(ReasonCode.PROTOCOL_ERROR)]


def test_reauth_failure_disconnects():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = token_client(broker, broker.reactor)
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN", DATA: b"bad"}))
    # 0x86 is a CONNACK code only: a DISCONNECT says 0x87 Not authorized.
    assert client.received() == [
        Disconnect(ReasonCode.NOT_AUTHORIZED, {REASON_STRING: "The token is invalid"})
    ]
    assert client.closing


def test_reauth_lets_packets_flow():
    authenticator = DeferredAuthenticator()
    authenticator.methods = ("TOKEN",)
    broker = clocked_broker(authenticator=authenticator)
    client = FakeClient(broker)
    client.send(Connect("c", properties={METHOD: "TOKEN", DATA: b"x"}))
    request, deferred = authenticator.pending.pop()
    deferred.callback(AuthSuccess(Identity("alice", "c")))
    client.received()
    client.send(Auth(ReasonCode.RE_AUTHENTICATE, {METHOD: "TOKEN", DATA: b"y"}))
    client.send(Pingreq())
    assert client.received() == [Pingresp()]
    _, deferred = authenticator.pending.pop()
    deferred.callback(AuthSuccess(Identity("alice", "c")))
    assert client.received() == [Auth(ReasonCode.SUCCESS, {METHOD: "TOKEN"})]


def test_expiry_disconnects_0x87():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = token_client(broker, broker.reactor)
    broker.reactor.advance(10)
    [disconnect] = client.received()
    assert disconnect.reason_code == ReasonCode.NOT_AUTHORIZED
    assert disconnect.properties[REASON_STRING] == "The credential has expired"
    assert client.closing


def test_expiry_reason_code_setting():
    settings = BrokerSettings(
        credential_expiry_reason_code=ReasonCode.MAXIMUM_CONNECT_TIME
    )
    broker = clocked_broker(settings=settings)
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = token_client(broker, broker.reactor)
    broker.reactor.advance(10)
    [disconnect] = client.received()
    assert disconnect.reason_code == ReasonCode.MAXIMUM_CONNECT_TIME


def test_expiry_closes_v311():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    client = FakeClient(broker, protocol_level=4)
    client.connect(username="JWT", password=b"alice:10")
    broker.reactor.advance(10)
    assert client.received() == []
    assert client.closing


def test_expiry_publishes_will():
    broker = clocked_broker()
    broker.authenticator = TokenAuthenticator(broker.reactor)
    watcher = FakeClient(broker)
    watcher.connect("watcher", username="u", password=b"bob:1000")
    watcher.send(Subscribe(1, [Subscription("wills/#", 0)]))
    watcher.received()
    device = FakeClient(broker)
    device.connect(
        "device", username="u", password=b"alice:10", will=Will("wills/a", b"bye")
    )
    broker.reactor.advance(10)
    assert watcher.received() == [Publish("wills/a", b"bye")]
    assert broker.reactor.seconds() == START + 10

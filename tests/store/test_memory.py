from zope.interface.verify import verifyObject

from mqttauth.store.interfaces import ISessionStore
from mqttauth.store.memory import MemoryStore
from mqttauth.store.records import MessageRecord, SessionRecord


def test_memory_store_provides_interface():
    assert verifyObject(ISessionStore, MemoryStore())


def test_memory_store_load_orders_messages_by_key():
    store = MemoryStore()
    store.put_message("c", MessageRecord(key=2, topic="t", payload=b"2", qos=1))
    store.put_message("c", MessageRecord(key=1, topic="t", payload=b"1", qos=1))
    keys = [message.key for message in store.load().messages["c"]]
    assert keys == [1, 2]


def test_memory_store_delete_session_drops_messages():
    store = MemoryStore()
    store.put_session(SessionRecord("c", 5, 60))
    store.put_message("c", MessageRecord(key=1, topic="t", payload=b"", qos=1))
    store.put_inbound("c", 7)
    store.delete_session("c")
    state = store.load()
    assert "c" not in state.sessions
    assert "c" not in state.messages
    assert "c" not in state.inbound


def test_memory_store_load_returns_copies():
    store = MemoryStore()
    store.put_session(SessionRecord("c", 5, 60))
    store.load().sessions["c"].expiry_interval = 0
    assert store.load().sessions["c"].expiry_interval == 60

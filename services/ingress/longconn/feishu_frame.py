"""The binary frame of Feishu's long connection: protobuf ``pbbp2.Frame`` (proto2), as lark-oapi defines it.

The message is small (nine fields and a key/value header), so its descriptor is declared here and the
class built by the ``protobuf`` runtime, rather than importing lark-oapi's generated ``pbbp2_pb2`` at run
time: that module sits in a package whose import pulls in the whole SDK (requests, websockets, every API
model) and sets an event loop for the importing thread. The field numbers and types are lark-oapi's
(``lark_oapi/ws/pb/pbbp2_pb2.py``); the tests parse our frames with that generated class and ours with it.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CONTROL, DATA = 0, 1  # Frame.method
# header keys and values (lark_oapi/ws/const.py, enum.py)
TYPE, MESSAGE_ID, SUM, SEQ, TRACE_ID, BIZ_RT = "type", "message_id", "sum", "seq", "trace_id", "biz_rt"
PING, PONG, EVENT, CARD = "ping", "pong", "event", "card"


def _frame_class() -> Any:
    fdp = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="agentbus/pbbp2.proto", package="pbbp2", syntax="proto2")
    header = f.message_type.add(name="Header")
    header.field.add(name="key", number=1, type=fdp.TYPE_STRING, label=fdp.LABEL_REQUIRED)
    header.field.add(name="value", number=2, type=fdp.TYPE_STRING, label=fdp.LABEL_REQUIRED)
    frame = f.message_type.add(name="Frame")
    for name, number, kind in (("SeqID", 1, fdp.TYPE_UINT64), ("LogID", 2, fdp.TYPE_UINT64),
                               ("service", 3, fdp.TYPE_INT32), ("method", 4, fdp.TYPE_INT32)):
        frame.field.add(name=name, number=number, type=kind, label=fdp.LABEL_REQUIRED)
    frame.field.add(name="headers", number=5, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_REPEATED,
                    type_name=".pbbp2.Header")
    for name, number, kind in (("payload_encoding", 6, fdp.TYPE_STRING), ("payload_type", 7, fdp.TYPE_STRING),
                               ("payload", 8, fdp.TYPE_BYTES), ("LogIDNew", 9, fdp.TYPE_STRING)):
        frame.field.add(name=name, number=number, type=kind, label=fdp.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # a private pool: no clash with any other "pbbp2" loaded
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pbbp2.Frame"))


Frame: Any = _frame_class()


class FrameError(ValueError):
    """Bytes that are not a complete ``pbbp2.Frame``."""


def parse(data: bytes) -> Any:
    frame = Frame()
    try:
        frame.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError, and missing required fields
        raise FrameError(f"not a pbbp2 frame: {exc}") from None
    return frame


def header(frame: Any, key: str) -> str | None:
    for h in frame.headers:
        if h.key == key:
            return str(h.value)
    return None


def ping(service_id: int) -> bytes:
    """The client's keep-alive, as lark-oapi's ``_new_ping_frame`` builds it."""
    frame = Frame(SeqID=0, LogID=0, service=service_id, method=CONTROL)
    frame.headers.add(key=TYPE, value=PING)
    return bytes(frame.SerializeToString())


def answer(frame: Any, code: int, biz_rt_ms: int | None, data: bytes | None = None) -> bytes:
    """The same frame sent back with the JSON ``{"code": ...}`` as payload: how an event is acknowledged.
    ``data``: a callback's answer (a card press's toast), base64 in ``data`` as lark-oapi's client sends
    what its callback handler returned."""
    reply = Frame()
    reply.CopyFrom(frame)
    if biz_rt_ms is not None:
        reply.headers.add(key=BIZ_RT, value=str(biz_rt_ms))
    body: dict[str, Any] = {"code": code}
    if data is not None:
        body["data"] = base64.b64encode(data).decode()
    reply.payload = orjson.dumps(body)
    return bytes(reply.SerializeToString())

"""Wire constants of AMQP 0-9-1 (spec §4.2.3 frame format, §1.4 class ids)."""

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"
#: type (1) + channel (2) + size (4)
FRAME_HEADER_SIZE = 7
#: header (7) + frame-end octet (1): what frame_max counts beyond the payload
FRAME_OVERHEAD = 8
#: the smallest frame_max a peer may negotiate (spec §4.2.1)
FRAME_MIN_SIZE = 4096

CLASS_CONNECTION = 10
CLASS_CHANNEL = 20
CLASS_EXCHANGE = 40
CLASS_QUEUE = 50
CLASS_BASIC = 60
CLASS_CONFIRM = 85
CLASS_TX = 90

# (class_id, method_id) of the hot methods decoded with struct
BASIC_PUBLISH = (60, 40)
BASIC_RETURN = (60, 50)
BASIC_DELIVER = (60, 60)
BASIC_GET_OK = (60, 71)
BASIC_ACK = (60, 80)
BASIC_REJECT = (60, 90)
BASIC_NACK = (60, 120)
# (class_id, method_id) of the methods a closing channel still answers (spec §1.5.2.5)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)

#: methods followed by a content header and body frames (spec §2.3.5.2)
CONTENT_METHODS = frozenset({BASIC_PUBLISH, BASIC_RETURN, BASIC_DELIVER, BASIC_GET_OK})

HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

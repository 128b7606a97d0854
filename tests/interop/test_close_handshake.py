"""After connection.close-ok (issue 17; rabbit_reader.erl ``close_connection``
and ``handle_frame`` in state closed): what only Leveret's own log and
timer show. The frame order itself is compared with RabbitMQ in
tests/differential/test_diff_frame_order.py.
"""

from __future__ import annotations

from pamqp import commands as spec

from tests.interop.raw_client import RawClient, connected, method_frame

CONNECTION_CLOSE = method_frame(0, spec.Connection.Close(reply_code=200, reply_text="Goodbye", class_id=0,
                                                         method_id=0))


def test_frames_after_connection_close_are_not_parsed(broker):
    """Frames behind connection.close in the same write are discarded
    unread: close-ok is the only answer, and the log has no connection
    error for them (it used to warn UNEXPECTED_FRAME)."""
    with connected(broker) as client:
        port = client.sock.getsockname()[1]
        client.send(CONNECTION_CLOSE + method_frame(2, spec.Channel.Open())
                    + method_frame(7, spec.Basic.Qos(prefetch_count=1)))
        client.expect(spec.Connection.CloseOk, 0)
        # a later connection's handshake: whatever the server did with the
        # first one's chunk is logged before it answers this one
        connected(broker).close()
    lines = [line for line in broker.log_text().splitlines() if f":{port} -> " in line]
    assert any("closed by client" in line for line in lines), lines
    assert not any("connection error" in line or "UNEXPECTED_FRAME" in line for line in lines), lines


def test_socket_closed_by_timer_when_client_stays(fresh_broker):
    """A client that never closes its socket after close-ok is
    disconnected after min(heartbeat, 30 s): heartbeat 1 here."""
    broker = fresh_broker()
    with RawClient.for_broker(broker) as client:
        client.handshake(heartbeat=1)
        client.send(CONNECTION_CLOSE)
        client.expect(spec.Connection.CloseOk, 0)
        assert client.wait_socket_closed(10.0), "the broker kept the socket open past its closing timer"

"""Service logs on the wire: a node's k8s-file record becomes one frame of Docker's multiplexed
stream, on the task's stream (1 stdout, 2 stderr), with the timestamp and details when asked."""

from __future__ import annotations

from shoal.api.logs import details_prefix, format_line, frame, task_context
from shoal.cli.service_logs import Demuxer, LogFormatter
from shoal.runtime.oci.k8slog import Record, parse_line

TASK = {"ID": "t" * 25, "ServiceID": "s" * 25, "NodeID": "n" * 25, "Slot": 2}


def test_a_record_goes_over_the_wire_on_its_stream_with_timestamp_and_details() -> None:
    rec = Record("2026-12-02T11:24:17.051182539Z", 2, b"oops\n")
    stamp, stream, partial, data = parse_line(rec.to_line().rstrip(b"\n"))  # what the node sends
    assert (stamp, stream, partial, data) == (rec.timestamp, 2, False, b"oops")
    body = format_line(stamp, data + b"\n", timestamps=True, details=details_prefix(task_context(TASK)))
    frames = Demuxer().feed(frame(body, stream))
    assert [s for s, _ in frames] == [2]
    fmt = LogFormatter(lambda _: TASK, lambda _: "web", lambda _: "swarm01", timestamps=True)
    assert fmt.format(frames[0][1].decode()) == f"{stamp} web.2.{'t' * 12}@swarm01    | oops\n"
    raw = format_line(stamp, b"oops\n", timestamps=False, details=b"")
    assert raw == b"oops\n"  # --raw without timestamps: the line as the task wrote it

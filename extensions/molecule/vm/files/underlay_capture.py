"""Count what crosses the VM testbed's underlay bridge for a while (an AF_PACKET socket: no tcpdump).

Run inside the testbed's fabric namespace (`ip netns exec shoalvm-fabric python3 underlay_capture.py
t- 4789 40 [STOPFILE]`), for at most 40 s or until STOPFILE exists (the traffic to count is over):
every interface whose name starts with the prefix (the VMs' taps: a bridge's own socket does not see
the frames it forwards between its ports), each frame once (as it leaves its VM). Prints JSON: ESP
packets (IP protocol 50) and VXLAN packets (UDP to the data path port) by VNI. Only counts and headers
are kept, never payloads.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800


PACKET_OUTGOING = 4


def main(prefix: str, port: int, seconds: float, stop_file: str | None = None) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.settimeout(0.5)
    esp = 0
    vxlan: dict[int, int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (stop_file and os.path.exists(stop_file)):
        try:
            frame, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        if not addr[0].startswith(prefix) or addr[2] == PACKET_OUTGOING:  # into a VM: seen as it left the other
            continue
        if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
            continue
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        if proto == 50:
            esp += 1
        elif proto == 17 and len(frame) >= 14 + ihl + 16:
            udp = 14 + ihl
            if struct.unpack("!H", frame[udp + 2 : udp + 4])[0] == port:
                vni = int.from_bytes(frame[udp + 12 : udp + 15], "big")
                vxlan[vni] = vxlan.get(vni, 0) + 1
    print(json.dumps({"esp": esp, "vxlan": {str(k): v for k, v in sorted(vxlan.items())}}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)

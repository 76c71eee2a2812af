#!/usr/bin/env bash
# Ready = the broker answers a Kafka Metadata request (v4) and lists at least one live broker,
# i.e. it has joined the KRaft quorum and is unfenced. Pure Python stdlib, well under 2 s.
. "$(dirname "$0")/../lib.sh"
exec python3 - "$CAMPUS_HOST" "$(node_port KAFKA "$(member_number "${1:-kafka}")")" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
client = b"campus-ready"
# request header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
# body v4: topics = [] (no topics, brokers still listed), allow_auto_topic_creation = false
req = struct.pack(">hhih", 3, 4, 4711, len(client)) + client + struct.pack(">i?", 0, False)
try:
    with socket.create_connection((host, port), timeout=1.5) as s:
        s.settimeout(1.5)
        s.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 16:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
except OSError as e:
    sys.exit(f"kafka not ready: {e}")
if len(buf) < 16:
    sys.exit("kafka not ready: short answer")
# size, correlation_id, throttle_time_ms, brokers count
_, corr, _, brokers = struct.unpack(">iiii", buf[:16])
if corr != 4711 or brokers < 1:
    sys.exit(f"kafka not ready: correlation={corr} brokers={brokers}")
PY

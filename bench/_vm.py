"""Pieces the VM benchmarks share."""

# Python run on a manager VM (`python3 -`, the guest's own interpreter: no shoal client there): `get(path)` on
# the agent's API socket and `nodes`, node ID -> hostname; a benchmark appends what it reads with them.
MANAGER_API_PY = """
import http.client, json, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/run/shoal/shoal.sock")
def get(path):
    c = C("localhost"); c.request("GET", path); return json.loads(c.getresponse().read())
nodes = {n["ID"]: n["Description"]["Hostname"] for n in get("/nodes")}
"""

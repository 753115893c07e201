"""Autolock on the testbed (issue 15 item 1): three managers, autolock turned on. A restarted
manager stays locked: it answers only status and unlock (503 with Docker's message), listens on
neither 2377 nor 2378, and its Raft files do not change while the other two elect and commit; a
wrong key is refused (401) and changes nothing; the right key starts it. No file under any
manager's /var/lib/shoal holds the unlock key, the data key, the TLS key, the Raft password or a
secret's value in clear, and no Raft file a service's or secret's name. Rotating the key re-wraps
every running manager's keys (no restart); afterwards the old key is refused and the new one
unlocks. Autolock off writes the keys in clear again and a restart needs no key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import (
    HOSTS,
    api,
    cli,
    form_cluster,
    leader_of,
    nodes,
    start_agent,
    wait_for,
    wipe_cluster,
)
from shoal.agent import credentials
from shoal.cli.errors import APIError
from shoal.store.atrest import keywrap
from shoal.store.atrest.keyfile import DataKeyFile
from testbed.bed import Testbed

LOCKED_MESSAGE = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "shoal swarm unlock" to unlock it.'
)
INVALID_KEY = "swarm could not be unlocked: invalid key provided"
VICTIM = "swarm02"


def service_names(bed: Testbed, host: str) -> set[str]:
    return {s["Spec"]["Name"] for s in api(bed, host).get("/services")}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=3)
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(bed), timeout=30)
    yield bed
    wipe_cluster(bed, "test_autolock")


def all_managers_agree(bed: Testbed, hosts: list[str] = HOSTS) -> bool:
    listed = nodes(bed, hosts[0])
    reachable = all((n.get("ManagerStatus") or {}).get("Reachability") == "reachable" for n in listed.values())
    leaders = {leader_of(bed, host) for host in hosts}
    return reachable and len(listed) == len(HOSTS) and len(leaders) == 1 and None not in leaders


def var(bed: Testbed, host: str) -> Path:
    return bed.host(host).state_dir / "var"  # the host's /var/lib/shoal


def dek_file(bed: Testbed, host: str, kek: bytes | None) -> DataKeyFile:
    return DataKeyFile(var(bed, host) / "keys" / "raft.dek", kek=kek)


def node_json(bed: Testbed, host: str) -> dict[str, Any]:
    return dict(json.loads((var(bed, host) / "node.json").read_text()))


def raft_password(bed: Testbed, host: str, kek: bytes) -> str:
    """The Raft transport password that node.json keeps wrapped by the unlock key."""
    return keywrap.unwrap(kek, keywrap.PURPOSE_RAFT_PASSWORD, node_json(bed, host)["raft_password_wrapped"]).decode()


def wrapped_by(bed: Testbed, host: str, kek: bytes) -> bool:
    """The three key files wrapped, and by this KEK (a file in clear would open with any KEK)."""
    if not (credentials.key_is_wrapped(var(bed, host)) and dek_file(bed, host, None).is_wrapped()):
        return False
    if node_json(bed, host).get("raft_password_wrapped") is None or node_json(bed, host)["raft_password"] != "":
        return False
    try:
        dek_file(bed, host, kek).load()
        credentials.load(var(bed, host), kek)
        raft_password(bed, host, kek)
    except keywrap.KeyWrapError:
        return False
    return True


def set_autolock(bed: Testbed, on: bool) -> None:
    sw = api(bed, "swarm00").get("/swarm")
    spec = dict(sw["Spec"], EncryptionConfig={"AutoLockManagers": on})
    api(bed, "swarm00").post("/swarm/update", spec, version=sw["Version"]["Index"])


def unlock_key(bed: Testbed, host: str = "swarm00") -> str:
    return str(api(bed, host).get("/swarm/unlockkey")["UnlockKey"])


def raft_files(bed: Testbed, host: str) -> dict[str, str]:
    out = {}
    for path in sorted((var(bed, host) / "raft").iterdir()):
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def listening(bed: Testbed, host: str, port: int) -> bool:
    res = bed.run(host, ["ss", "-Hltn", f"sport = :{port}"], check=True)
    return bool(res.stdout.strip())


def restart(bed: Testbed, host: str) -> None:
    bed.stop_agent(host, kill=True)
    start_agent(bed, host)


def status_of(call: object) -> tuple[int, str]:
    try:
        call()  # type: ignore[operator]
    except APIError as exc:
        return exc.status, exc.message
    return 200, ""


def test_autolock_on_wraps_every_managers_keys(cluster: Testbed) -> None:
    set_autolock(cluster, True)
    key = unlock_key(cluster)
    kek = keywrap.parse_unlock_key(key)
    for host in HOSTS:  # every manager reads it from its own replica (the same key, once replicated)
        wait_for(f"{host} knows the unlock key", lambda host=host: unlock_key(cluster, host) == key)
    assert key not in str(api(cluster, "swarm00").get("/swarm"))  # GET /swarm never shows it
    for host in HOSTS:
        wait_for(
            f"{host}'s keys wrapped by the unlock key", lambda host=host: wrapped_by(cluster, host, kek), timeout=20
        )
        assert credentials.key_is_wrapped(var(cluster, host)) and dek_file(cluster, host, None).is_wrapped()


def test_a_restarted_manager_stays_locked_and_out_of_raft_until_unlocked(cluster: Testbed) -> None:
    key = unlock_key(cluster)
    restart(cluster, VICTIM)
    info = api(cluster, VICTIM).get("/info")
    assert info["Swarm"]["LocalNodeState"] == "locked"
    assert "Raft" not in info["Swarm"] and info["Swarm"]["ControlAvailable"] is False
    code, out, _ = cli(cluster, VICTIM, "info")
    assert code == 0 and " Swarm: locked" in out
    for call in (
        lambda: api(cluster, VICTIM).get("/nodes"),
        lambda: api(cluster, VICTIM).get("/swarm"),
        lambda: api(cluster, VICTIM).get("/v1.47/services"),
        lambda: api(cluster, VICTIM).post("/services/create", {"Name": "x"}),
    ):
        assert status_of(call) == (503, LOCKED_MESSAGE)
    code, _, err = cli(cluster, VICTIM, "node", "ls")
    assert code == 1 and LOCKED_MESSAGE in err
    # no Raft replica (the journal is not replayed), no cluster port: it cannot vote or be asked
    assert not listening(cluster, VICTIM, 2378) and not listening(cluster, VICTIM, 2377)
    before = raft_files(cluster, VICTIM)

    # the other two keep a leader and commit; the locked one's log and term do not move
    survivors = [h for h in HOSTS if h != VICTIM]
    leader = wait_for("a leader among the other two", lambda: leader_of(cluster, "swarm00"), timeout=20)
    assert leader in survivors
    name = f"autolock-{secrets.token_hex(4)}"
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": name,
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}},
            "Mode": {"Replicated": {"Replicas": 0}},
        },
    )
    # swarm01 answers reads from its own replica, which applies the commit a moment after the leader
    wait_for(f"{name} on swarm01", lambda: name in service_names(cluster, "swarm01"))
    wait_for(
        f"{VICTIM} seen unreachable",
        lambda: nodes(cluster, "swarm00")[VICTIM]["ManagerStatus"]["Reachability"] == "unreachable",
        timeout=30,
    )
    assert raft_files(cluster, VICTIM) == before

    # a wrong key (well formed) is refused with Docker's message and changes nothing
    wrong = keywrap.format_unlock_key(keywrap.new_unlock_key())
    assert status_of(lambda: api(cluster, VICTIM).post("/swarm/unlock", {"UnlockKey": wrong})) == (401, INVALID_KEY)
    assert status_of(lambda: api(cluster, VICTIM).post("/swarm/unlock", {"UnlockKey": "nope"})) == (
        400,
        "invalid key string",
    )
    code, _, err = cli(cluster, VICTIM, "swarm", "unlock", input=wrong + "\n")
    assert code == 1 and INVALID_KEY in err
    assert api(cluster, VICTIM).get("/info")["Swarm"]["LocalNodeState"] == "locked"
    assert raft_files(cluster, VICTIM) == before and not listening(cluster, VICTIM, 2378)

    # the right key, read from stdin as `docker swarm unlock` does when it is not a terminal
    code, out, err = cli(cluster, VICTIM, "swarm", "unlock", input=key + "\n")
    assert (code, err) == (0, ""), err
    assert api(cluster, VICTIM).get("/info")["Swarm"]["LocalNodeState"] == "active"
    wait_for(f"{VICTIM} serves the service committed while it was locked",
             lambda: api(cluster, VICTIM).get(f"/services/{name}"), timeout=30)  # fmt: skip
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=30)
    assert status_of(lambda: api(cluster, VICTIM).post("/swarm/unlock", {"UnlockKey": key})) == (
        409,
        "swarm is not locked",
    )


def files_holding(directory: Path, markers: dict[str, bytes]) -> list[str]:
    found = []
    for root, _dirs, names in os.walk(directory):
        for fname in names:
            path = Path(root) / fname
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a temporary file renamed away meanwhile, a socket
            found += [f"{path}: {what}" for what, m in markers.items() if m in data]
    return found


def test_no_file_holds_a_service_a_secret_or_any_key_in_clear(cluster: Testbed) -> None:
    if not unlock_key(cluster):
        set_autolock(cluster, True)  # on for this test whatever ran before
    key = unlock_key(cluster)
    kek = keywrap.parse_unlock_key(key)
    for host in HOSTS:
        wait_for(f"{host} wrapped", lambda host=host: wrapped_by(cluster, host, kek), timeout=20)
    # a service and a secret written now: their names and the secret's value reach every journal
    token = secrets.token_hex(6)
    service, secret_name, secret_value = f"lockedsvc-{token}", f"lockedsecret-{token}", f"value-{token}-payload"
    api(cluster, "swarm00").post(
        "/secrets/create", {"Name": secret_name, "Data": base64.b64encode(secret_value.encode()).decode()}
    )
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": service,
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Env": [f"MARK={token}-env"]}},
            "Mode": {"Replicated": {"Replicas": 0}},
        },
    )
    for host in HOSTS:  # each manager answers from its own replica: committed and applied there
        wait_for(f"{service} on {host}", lambda host=host: service in service_names(cluster, host), timeout=30)
        assert len(list((var(cluster, host) / "raft").iterdir())) > 0
    leaks = []
    for host in HOSTS:
        dek = dek_file(cluster, host, kek).load()
        tls_pem = credentials.load(var(cluster, host), kek).key_pem
        pem_body = b"".join(line for line in tls_pem.splitlines() if line and not line.startswith(b"-----"))
        der = base64.b64decode(pem_body)
        password = raft_password(cluster, host, kek)
        assert len(password) >= 32
        # names may be logged (shoald.log is in the same directory), never stored in clear by Raft
        names = {"service name": service.encode(), "secret name": secret_name.encode()}
        leaks += files_holding(var(cluster, host) / "raft", names)
        markers = {
            "secret value": secret_value.encode(),
            "secret value (base64)": base64.b64encode(secret_value.encode()),
            "env value": f"{token}-env".encode(),
            "Raft password": password.encode(),
            "unlock key (text)": key.encode(),
            "unlock key (bytes)": kek,
            "unlock key (base64)": key.removeprefix("SWMKEY-1-").encode(),
            "data key": dek.secret,
            "data key (base64)": base64.b64encode(dek.secret),
            "TLS key (DER)": der,
            "TLS key (PEM line)": tls_pem.splitlines()[1],
            "TLS key (PEM header)": b"PRIVATE KEY-----",
        }
        leaks += files_holding(var(cluster, host), markers)
    assert leaks == []


def test_rotation_rewraps_running_managers_and_retires_the_old_key(cluster: Testbed) -> None:
    old = unlock_key(cluster)
    code, out, err = cli(cluster, "swarm00", "swarm", "unlock-key", "--rotate", "-q")
    assert code == 0, err
    new = out.strip()
    assert new.startswith("SWMKEY-1-") and new != old
    wait_for("swarm01 knows the new key", lambda: unlock_key(cluster, "swarm01") == new)
    new_kek = keywrap.parse_unlock_key(new)
    for host in HOSTS:  # without a restart: each running manager re-wraps on seeing the new key
        wait_for(f"{host} re-wrapped", lambda host=host: wrapped_by(cluster, host, new_kek), timeout=20)
        assert not wrapped_by(cluster, host, keywrap.parse_unlock_key(old))
    restart(cluster, VICTIM)
    assert api(cluster, VICTIM).get("/info")["Swarm"]["LocalNodeState"] == "locked"
    assert status_of(lambda: api(cluster, VICTIM).post("/swarm/unlock", {"UnlockKey": old})) == (401, INVALID_KEY)
    api(cluster, VICTIM).post("/swarm/unlock", {"UnlockKey": new})
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=30)


def test_autolock_off_writes_the_keys_in_clear_and_a_restart_needs_no_key(cluster: Testbed) -> None:
    code, out, _ = cli(cluster, "swarm00", "swarm", "update", "--autolock=false")
    assert (code, out) == (0, "Swarm updated.\n")
    assert unlock_key(cluster) == ""
    code, _, err = cli(cluster, "swarm00", "swarm", "unlock-key")
    assert code == 1 and "no unlock key is set" in err
    for host in HOSTS:
        wait_for(f"{host}'s keys in clear", lambda host=host: not credentials.key_is_wrapped(var(cluster, host)))
        wait_for(f"{host}'s data key in clear", lambda host=host: not dek_file(cluster, host, None).is_wrapped())
        wait_for(f"{host}'s Raft password in clear", lambda host=host: node_json(cluster, host)["raft_password"] != "")
        assert node_json(cluster, host)["raft_password_wrapped"] is None
        assert oct(os.stat(var(cluster, host) / "keys" / "raft.dek").st_mode & 0o777) == "0o600"
        assert oct(os.stat(credentials.key_path(var(cluster, host))).st_mode & 0o777) == "0o600"
    restart(cluster, VICTIM)
    wait_for(
        f"{VICTIM} active without a key",
        lambda: api(cluster, VICTIM).get("/info")["Swarm"]["LocalNodeState"] == "active",
    )
    wait_for("three reachable managers and one leader", lambda: all_managers_agree(cluster), timeout=30)
    # and on again from the CLI: it prints the new key as docker does
    code, out, _ = cli(cluster, "swarm00", "swarm", "update", "--autolock=true")
    key = unlock_key(cluster)
    assert code == 0 and out == (
        "Swarm updated.\n"
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
        f"command and provide the following key:\n\n    {key}\n\n"
        "Remember to store this key in a password manager, since without it you\n"
        "will not be able to restart the manager.\n"
    )

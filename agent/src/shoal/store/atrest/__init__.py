"""Encryption at rest of the Raft journal and snapshots (issue 13), shaped after SwarmKit's
`manager/encryption` and its WAL/snapshot encryption: one data key (DEK) per manager, in a root-only
file beside the Raft data dir (`keyfile.py`); every journal entry and every snapshot is sealed with
an AEAD before pysyncobj writes it to disk (`records.py`, `journal.py`, `snapshot.py`); `hooks.py`
puts both under pysyncobj and refuses state it cannot read. What travels between managers is not
touched here: the Raft transport is already encrypted with the cluster password.
"""

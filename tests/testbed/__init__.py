"""testbed: turns this one machine into N Linux "hosts" (namespaces + sshd) for shoal's tests.

Every object it makes carries the `shoal-` name prefix or lives under `.state/testbed/`, so that
`down` can remove all of it, also after a crash.
"""

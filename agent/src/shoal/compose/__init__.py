"""Compose files for `stack deploy`, as the docker CLI's cli/compose (loader, interpolation,
schema, convert) handles them: load and merge the files, interpolate `${VAR}`, validate against
the Compose Specification's JSON schema, convert to Engine API specs, and plan what to create,
update or remove. Pure, except reading the files it is given; the CLI and the Ansible module run
the plan through their own API client (`deploy.py`'s Transport).
"""

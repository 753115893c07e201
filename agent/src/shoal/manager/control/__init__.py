"""The manager's control calls (SwarmKit's controlapi): what the API's handlers ask of the cluster.

One module per object kind. Each call reads the store, checks the request against what is there
(names, versions, conflicts, "in use"), and returns the changes to commit (plus what to answer);
the HTTP handlers in `shoal.api` only parse, call and serialize. Filters are here only
(`filters.py`): the CLI sends `filters=` and prints what comes back.
"""

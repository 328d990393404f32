"""The registry: organizations, plants, users, gateways and machines from a declarative file.

`model` (the file and its validation), `state` (the database in the file's terms), `plan`
(the diff, no I/O), `apply` (apply and export through the application role, one unit of work
per organization), `from_tagmap` (entries an agent's tag map implies), `broker` (mosquitto
accounts and ACL per gateway). The command line is mes/registry_cli.py; API tokens are in
core/tokens.py.
"""

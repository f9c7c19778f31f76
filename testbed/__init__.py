"""A bed of real parts for tests, the demo and benchmarks.

A private Open vSwitch (own ovsdb-server and ovs-vswitchd, userspace datapath), Linux
network namespaces as hosts joined to its bridges by veth pairs, and the sggw controller
as a real process; or, for the compose test, both as the deployment's containers
(``compose.py``). Everything it starts it stops by PID (or by container name), and
everything it creates it deletes, also when a test fails. Needs root.
"""

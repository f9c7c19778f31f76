"""The switch host's own Open vSwitch, through ``ovs-vsctl`` and ``ovs-appctl``: the settings
sggw depends on, conntrack zones, and the tunnel ports of remote mirror destinations."""

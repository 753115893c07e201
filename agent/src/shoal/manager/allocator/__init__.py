"""The allocator: network subnets and VNIs, service VIPs and published ports, task and node addresses."""

"""Forwarding and verification: the durable queue to each PACS, the check that it holds
every instance, storage commitment."""

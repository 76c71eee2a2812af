"""Kafka topic names: the one place they are spelled."""

# Debezium: topic.prefix "campus", schema "public" (see connectors/campus-users.json).
CDC_PREFIX = "campus.public"
USERS = f"{CDC_PREFIX}.users"
GROUPS = f"{CDC_PREFIX}.groups"
MEMBERSHIPS = f"{CDC_PREFIX}.group_memberships"
HEARTBEATS = f"{CDC_PREFIX}.heartbeats"
CDC_TOPICS = (USERS, GROUPS, MEMBERSHIPS, HEARTBEATS)

# Domain events published by services through their outboxes.
DOCUMENT_EVENTS = "campus.documents.events"
GRAPH_EVENTS = "campus.graph.events"
DOMAIN_TOPICS = (DOCUMENT_EVENTS, GRAPH_EVENTS)


def dead_letter(projection: str) -> str:
    """The dead-letter topic of one projection."""
    return f"campus.dlq.{projection}"

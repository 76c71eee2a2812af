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

# Pause/resume of each projection, keyed by its name: every member of a consumer group (two
# instances, or a restarted one) follows the newest record for its projection. One partition,
# so the records of one projection are read in the order they were written.
PROJECTION_CONTROL = "campus.control.projections"


def dead_letter(projection: str) -> str:
    """The dead-letter topic of one projection."""
    return f"campus.dlq.{projection}"

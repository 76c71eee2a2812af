"""Kafka and Redis topology settings: the single node by default, the cluster from variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from campus_common.config import CampusSettings, KafkaConfig

pytestmark = pytest.mark.unit


def test_the_default_is_the_single_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOOTSTRAP_SERVERS", "REPLICATION_FACTOR", "MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(f"CAMPUS_KAFKA_{name}", raising=False)
    s = CampusSettings(_env_file=None, kafka_host="127.0.0.1", kafka_port=9092)  # type: ignore[call-arg]
    assert s.kafka == KafkaConfig(
        bootstrap_servers="127.0.0.1:9092", replication_factor=1, min_insync_replicas=1
    )
    assert s.redis_cluster is False


def test_the_cluster_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUS_KAFKA_BOOTSTRAP_SERVERS", "h:1,h:2,h:3")
    monkeypatch.setenv("CAMPUS_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CAMPUS_KAFKA_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("CAMPUS_REDIS_CLUSTER", "true")
    s = CampusSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka.bootstrap_servers == "h:1,h:2,h:3"
    assert (s.kafka.replication_factor, s.kafka.min_insync_replicas) == (3, 2)
    assert s.redis_cluster is True


def test_min_isr_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_insync_replicas"):
        KafkaConfig(bootstrap_servers="h:1", replication_factor=1, min_insync_replicas=2)

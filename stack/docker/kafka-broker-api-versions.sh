#!/usr/bin/env bash
# As in the official image (its healthcheck in docker-compose.yml), from kafka-tools' jars.
exec java -Xmx64m -XX:TieredStopAtLevel=1 -Dlog4j2.level=ERROR -cp '/opt/kafka/tools/*' \
  org.apache.kafka.tools.BrokerApiVersionsCommand "$@"

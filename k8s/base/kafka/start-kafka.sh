#!/bin/sh
# Start one combined KRaft controller+broker of the `kafka` StatefulSet.
#
# The node id is the pod's ordinal (kafka-0 -> 0); the controller quorum is every pod of the
# StatefulSet, KAFKA_NODE_COUNT of them, reached through the headless Service. Replication of
# the internal topics follows the cluster size: 1 on a single node, 3 (2 in sync) from three.
set -eu

host=$(hostname)
node_id=${host##*-}
count=${KAFKA_NODE_COUNT:?set KAFKA_NODE_COUNT to the StatefulSet replicas}
voters=""
i=0
while [ "$i" -lt "$count" ]; do
  voters="${voters:+$voters,}$i@kafka-$i.kafka-headless:9093"
  i=$((i + 1))
done
replicas=$((count < 3 ? count : 3))
in_sync=$((count < 2 ? count : 2))

conf_dir=/tmp/kafka
mkdir -p "$conf_dir"
cat > "$conf_dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://$host.kafka-headless:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
default.replication.factor=$replicas
min.insync.replicas=$in_sync
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$in_sync
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$in_sync
group.initial.rebalance.delay.ms=0
log.retention.hours=168
message.max.bytes=2097152
PROPERTIES

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
  -t "${KAFKA_CLUSTER_ID:?}" -c "$conf_dir/server.properties"
exec /opt/kafka/bin/kafka-server-start.sh "$conf_dir/server.properties"

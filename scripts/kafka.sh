#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller) on 127.0.0.1 for tests/dev.
#
#   scripts/kafka.sh fetch       download the Kafka jars via Maven into the cache (once)
#   scripts/kafka.sh start       fetch if needed, format storage if new, start, wait until ready
#   scripts/kafka.sh stop        stop the broker started by this script
#   scripts/kafka.sh status      exit 0 if the broker answers on the bootstrap port
#   scripts/kafka.sh bootstrap   print 127.0.0.1:PORT
#   scripts/kafka.sh acls        (SASL mode) let the writer write the topic, readers only read it
#
# Environment:
#   LEDGER_KAFKA_HOME             jar cache root     (default: $HOME/.cache/ledger-kafka)
#   LEDGER_KAFKA_DATA             data/config/logs   (default: /tmp/ledger-kafka-data)
#   LEDGER_KAFKA_PORT             client port        (default: 19092)
#   LEDGER_KAFKA_CONTROLLER_PORT  controller port    (default: 19093)
#   LEDGER_KAFKA_START_TIMEOUT    seconds to wait    (default: 90)
#   LEDGER_KAFKA_HEAP             JVM heap opts      (default: -Xms256m -Xmx512m)
#
# Optional: SASL authentication and the standard authorizer (ACLs), so that only the
# ledger service may write the lifecycle topic. Off unless LEDGER_KAFKA_SASL=1:
#   LEDGER_KAFKA_SASL             1: clients must log in (SASL/PLAIN), ACLs enforced
#   LEDGER_KAFKA_ADMIN_PASSWORD   password of the super user "admin" (default: admin-secret)
#   LEDGER_KAFKA_USERS            more users, "name:password,name:password"
#                                 (default: ledger:ledger-secret,reader:reader-secret)
#   LEDGER_KAFKA_TOPIC            topic the acls command grants on (default: ledger.lifecycle)
#   LEDGER_KAFKA_WRITER           the one user that may write it (default: ledger)
#   LEDGER_KAFKA_READERS          users that may only read it, comma-separated (default: reader)
# Clients then add ?security_protocol=SASL_PLAINTEXT&sasl_mechanism=PLAIN
# &sasl_plain_username=ledger&sasl_plain_password=... to the kafka:// log URL.
# SASL/PLAIN sends passwords in clear: on a network, put TLS in front (SASL_SSL).
#
# Requires: java >= 17, mvn (only for fetch), python3 (readiness probe; falls back to a port check).
set -euo pipefail

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3   # the log4j2 version Kafka 4.1.1 itself depends on

KAFKA_HOME_ROOT="${LEDGER_KAFKA_HOME:-$HOME/.cache/ledger-kafka}"
KAFKA_DIST="$KAFKA_HOME_ROOT/$KAFKA_VERSION"
LIBS="$KAFKA_DIST/libs"
DATA="${LEDGER_KAFKA_DATA:-/tmp/ledger-kafka-data}"
PORT="${LEDGER_KAFKA_PORT:-19092}"
CPORT="${LEDGER_KAFKA_CONTROLLER_PORT:-19093}"
START_TIMEOUT="${LEDGER_KAFKA_START_TIMEOUT:-90}"
HEAP="${LEDGER_KAFKA_HEAP:--Xms256m -Xmx512m}"
HOST=127.0.0.1
SASL="${LEDGER_KAFKA_SASL:-0}"
ADMIN_PASSWORD="${LEDGER_KAFKA_ADMIN_PASSWORD:-admin-secret}"
USERS="${LEDGER_KAFKA_USERS:-ledger:ledger-secret,reader:reader-secret}"
ACL_TOPIC="${LEDGER_KAFKA_TOPIC:-ledger.lifecycle}"
WRITER="${LEDGER_KAFKA_WRITER:-ledger}"
READERS="${LEDGER_KAFKA_READERS:-reader}"

PROPS="$DATA/server.properties"
LOG4J_CONF="$DATA/log4j2.properties"
LOG_DIR="$DATA/logs"            # broker's own application logs
KRAFT_DIR="$DATA/kraft-logs"    # log.dirs (topic data + metadata log)
PID_FILE="$DATA/kafka.pid"
CONSOLE_LOG="$LOG_DIR/console.out"

log() { echo "kafka.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 {fetch|start|stop|status|bootstrap|acls}" >&2
    exit 2
}

need_java() {
    command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka $KAFKA_VERSION needs Java >= 17)"
    local v
    v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
    if [[ -n "$v" && "${v%%.*}" -lt 17 ]]; then
        die "java $v found; Kafka $KAFKA_VERSION needs Java >= 17"
    fi
}

# ---------------------------------------------------------------- fetch

libs_present() {
    [[ -f "$LIBS/.complete" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

cmd_fetch() {
    if libs_present; then
        log "Kafka $KAFKA_VERSION jars already cached in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to download the Kafka jars)"
    mkdir -p "$KAFKA_DIST"
    local work
    work=$(mktemp -d "$KAFKA_DIST/fetch.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ledger.local</groupId>
  <artifactId>kafka-broker-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- Kafka 4.x logs through slf4j 1.7 -> log4j2 (log4j-api/core come transitively). -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version><scope>runtime</scope></dependency>
  </dependencies>
</project>
EOF
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS ..."
    local t0=$SECONDS
    if ! mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
        tail -n 40 "$work/mvn.log" >&2 || true
        die "Maven dependency:copy-dependencies failed"
    fi
    [[ -f "$work/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    touch "$work/libs/.complete"
    rm -rf "$LIBS"
    mv "$work/libs" "$LIBS"
    rm -rf "$work"
    trap - EXIT
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- helpers

read_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

# true if the pid file points to a live Kafka JVM (guards against pid reuse)
running_pid() {
    local pid
    pid=$(read_pid) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka" || return 1
    echo "$pid"
}

# true if a Kafka broker answers an ApiVersions request on HOST:PORT
answers() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$HOST" "$PORT" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=3)
    s.settimeout(3)
    cid = b"ledger-probe"
    # ApiVersions (api_key 18) v0 request header: key, version, correlation id, client id
    body = struct.pack(">hhih", 18, 0, 42, len(cid)) + cid
    s.sendall(struct.pack(">i", len(body)) + body)
    buf = b""
    while len(buf) < 10:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(1)
        buf += chunk
    _size, corr, err = struct.unpack(">iih", buf[:10])
    sys.exit(0 if corr == 42 and err == 0 else 1)
except Exception:
    sys.exit(1)
PY
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

sasl_properties() {
    # The client listener speaks SASL/PLAIN; the controller listener stays on
    # loopback PLAINTEXT (its principal, ANONYMOUS, is a super user with admin).
    local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$ADMIN_PASSWORD\" user_admin=\"$ADMIN_PASSWORD\""
    local pair name password pairs
    IFS=',' read -ra pairs <<<"$USERS"
    for pair in "${pairs[@]}"; do
        name="${pair%%:*}"
        password="${pair#*:}"
        [[ -n "$name" && "$name" != "$pair" ]] || die "LEDGER_KAFKA_USERS: '$pair' is not name:password"
        jaas+=" user_$name=\"$password\""
    done
    cat <<EOF
listeners=SASL_PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
}

plaintext_properties() {
    cat <<EOF
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
}

write_configs() {
    mkdir -p "$DATA" "$LOG_DIR" "$KRAFT_DIR"
    local listeners
    if [[ "$SASL" == 1 ]]; then listeners=$(sasl_properties); else listeners=$(plaintext_properties); fi
    cat >"$PROPS" <<EOF
# generated by scripts/kafka.sh -- rewritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
$listeners
controller.listener.names=CONTROLLER
log.dirs=$KRAFT_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
    cat >"$LOG4J_CONF" <<EOF
# generated by scripts/kafka.sh -- broker logs go to $LOG_DIR/server.log, not the console
status = warn
name = ledger-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $LOG_DIR/server.log
appender.file.filePattern = $LOG_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

java_opts() {
    # shellcheck disable=SC2206
    local heap=($HEAP)
    echo "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR"
}

format_storage() {
    local cluster_id
    cluster_id=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    [[ -n "$cluster_id" ]] || die "could not generate a cluster id with kafka.tools.StorageTool random-uuid"
    log "formatting KRaft storage in $KRAFT_DIR (cluster id $cluster_id)"
    # shellcheck disable=SC2046
    java $(java_opts) -cp "$LIBS/*" kafka.tools.StorageTool format \
        --config "$PROPS" --cluster-id "$cluster_id" --ignore-formatted >>"$LOG_DIR/format.log" 2>&1 \
        || { tail -n 20 "$LOG_DIR/format.log" >&2; die "storage format failed"; }
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local pid
    if pid=$(running_pid); then
        if answers; then
            log "already running (pid $pid)"
            echo "$HOST:$PORT"
            return 0
        fi
        log "broker process $pid exists but does not answer yet; waiting"
    else
        rm -f "$PID_FILE"
        if port_in_use "$PORT"; then
            die "port $HOST:$PORT is already in use by another process (set LEDGER_KAFKA_PORT)"
        fi
        if port_in_use "$CPORT"; then
            die "controller port $HOST:$CPORT is already in use (set LEDGER_KAFKA_CONTROLLER_PORT)"
        fi
        need_java
        libs_present || cmd_fetch
        write_configs
        if [[ ! -f "$KRAFT_DIR/meta.properties" ]]; then
            format_storage
        fi
        log "starting Kafka $KAFKA_VERSION on $HOST:$PORT (controller $CPORT, data $DATA)"
        # shellcheck disable=SC2046
        nohup java $(java_opts) -cp "$LIBS/*" kafka.Kafka "$PROPS" >>"$CONSOLE_LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi

    local t0=$SECONDS
    while (( SECONDS - t0 < START_TIMEOUT )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker process $pid exited during startup; last log lines:"
            tail -n 40 "$LOG_DIR/server.log" >&2 2>/dev/null || true
            tail -n 20 "$CONSOLE_LOG" >&2 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        if answers; then
            log "ready after $((SECONDS - t0))s (pid $pid)"
            echo "$HOST:$PORT"
            return 0
        fi
        sleep 0.5
    done
    log "broker did not answer within ${START_TIMEOUT}s; last log lines:"
    tail -n 40 "$LOG_DIR/server.log" >&2 2>/dev/null || true
    tail -n 20 "$CONSOLE_LOG" >&2 2>/dev/null || true
    exit 1
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "broker did not exit within 60s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    if answers; then
        local pid
        pid=$(running_pid) || pid="unknown (not started by this script?)"
        log "running on $HOST:$PORT (pid $pid)"
        return 0
    fi
    log "not answering on $HOST:$PORT"
    return 1
}

# The ACLs of the SASL mode: the writer user may create and write the topic and its
# <topic>.state companion (with the ledger writers' transactional ids and the
# service's consumer group); reader users may only read the topic. Nobody else may
# do anything on them.
cmd_acls() {
    [[ "$SASL" == 1 ]] || die "acls needs the SASL mode (LEDGER_KAFKA_SASL=1)"
    libs_present || die "no Kafka jars in $LIBS (run: $0 fetch)"
    local config="$DATA/admin.properties"
    (umask 077 && cat >"$config" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN_PASSWORD";
EOF
    )
    acl() {
        java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" org.apache.kafka.tools.AclCommand \
            --bootstrap-server "$HOST:$PORT" --command-config "$config" --add "$@" >>"$LOG_DIR/acls.log" 2>&1 \
            || { tail -n 20 "$LOG_DIR/acls.log" >&2; die "kafka-acls failed: $*"; }
    }
    acl --allow-principal "User:$WRITER" --operation Create --operation Write --operation Read \
        --operation Describe --operation DescribeConfigs --topic "$ACL_TOPIC"
    # Its rule-state snapshots (written in the same transactions as the events): the
    # same writer only, since a writer starting from one trusts it like the log.
    acl --allow-principal "User:$WRITER" --operation Create --operation Write --operation Read \
        --operation Describe --operation DescribeConfigs --topic "$ACL_TOPIC.state"
    acl --allow-principal "User:$WRITER" --operation Write --operation Describe \
        --transactional-id "ledger-writer.$ACL_TOPIC." --resource-pattern-type prefixed
    acl --allow-principal "User:$WRITER" --operation Read --operation Describe \
        --group "ledger-service.$ACL_TOPIC"
    acl --allow-principal "User:$WRITER" --operation IdempotentWrite --cluster
    local reader readers
    IFS=',' read -ra readers <<<"$READERS"
    for reader in "${readers[@]}"; do
        [[ -n "$reader" ]] || continue
        acl --allow-principal "User:$reader" --operation Read --operation Describe --operation DescribeConfigs --topic "$ACL_TOPIC"
        acl --allow-principal "User:$reader" --operation Read --group "ledger" --resource-pattern-type prefixed
    done
    log "ACLs set on $ACL_TOPIC: $WRITER writes, ${READERS:-nobody} read"
}

[[ $# -eq 1 ]] || usage
case "$1" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    bootstrap) echo "$HOST:$PORT" ;;
    acls) cmd_acls ;;
    *) usage ;;
esac

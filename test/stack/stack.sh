#!/usr/bin/env bash
# Local infrastructure for cdc tests, benchmarks and development, without Docker:
#   PostgreSQL (Debian packages)  -> postgres://cdc:cdc@127.0.0.1:55432/cdc
#   Apache Kafka 4.4.0 (KRaft, jars from Maven Central; CDC_STACK_KAFKA_VERSION=3.9.1 for 3.x) -> 127.0.0.1:19092
#   FerretDB 1.24.x (MongoDB wire, SQLite backend, built via the Go module proxy) -> mongodb://127.0.0.1:27017
#
# Usage: bash test/stack/stack.sh up|down|status|reset|env [postgres|kafka|mongo]
#
#   up      install what is missing, start, wait until each server answers (idempotent)
#   down    stop (graceful, then kill after a timeout; idempotent)
#   status  one line per server; exit 0 when all asked for are up, else 3
#   reset   down + delete data (caches are kept) + up
#   env     print CDC_* variables for the running stack (eval "$(bash test/stack/stack.sh env)")
#
# Environment (defaults):
#   CDC_STACK_PG_PORT=55432  CDC_STACK_KAFKA_PORT=19092  CDC_STACK_KAFKA_CONTROLLER_PORT=19093
#   CDC_STACK_MONGO_PORT=27017  CDC_STACK_DIR=<repo>/.stack  CDC_STACK_TIMEOUT=180 (seconds per server)
#   CDC_STACK_KAFKA_VERSION=4.4.0 (any 4.x or 3.9.x from Maven Central; a data directory of another version is wiped)
#   CDC_STACK_MONGO_HANDLER=postgresql (FerretDB stores into database "ferretdb" of our PostgreSQL; its updates by
#   _id are ~8x faster than with the sqlite handler, whose filters scan whole collections) or sqlite
#
# Layout: data, logs and pid files under $CDC_STACK_DIR (git-ignored); downloads and builds under
# ${XDG_CACHE_HOME:-$HOME/.cache}/cdc-stack (shared by every clone on the machine; ~/.m2 and the Go module
# cache are reused as usual). Each step prints one line; details go to $CDC_STACK_DIR/stack.log and to
# each server's own log.
set -euo pipefail

STACK_SH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$STACK_SH_DIR/../.." && pwd)"
STACK_DIR="${CDC_STACK_DIR:-$REPO/.stack}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/cdc-stack"
PG_PORT="${CDC_STACK_PG_PORT:-55432}"
KAFKA_PORT="${CDC_STACK_KAFKA_PORT:-19092}"
KAFKA_CTL_PORT="${CDC_STACK_KAFKA_CONTROLLER_PORT:-19093}"
MONGO_PORT="${CDC_STACK_MONGO_PORT:-27017}"
MONGO_HANDLER="${CDC_STACK_MONGO_HANDLER:-postgresql}"
TIMEOUT="${CDC_STACK_TIMEOUT:-180}"
STOP_TIMEOUT="${CDC_STACK_STOP_TIMEOUT:-30}"
HOST=127.0.0.1
ALL_SERVERS=(postgres kafka mongo)

mkdir -p "$STACK_DIR" "$CACHE_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
LOG="$STACK_DIR/stack.log"

# ---------------------------------------------------------------- helpers
say() { printf '[stack] %s\n' "$*"; }
detail() { printf '%s %s\n' "$(date '+%F %T')" "$*" >>"$LOG"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

# Run a command with its output going to the details log; on failure show the tail and fail.
run_logged() {
  local what="$1"; shift
  detail "+ $*"
  local start; start=$(now)
  if ! "$@" >>"$LOG" 2>&1; then
    printf '[stack] ERROR: %s failed; last 30 lines of %s:\n' "$what" "$LOG" >&2
    tail -n 30 "$LOG" >&2
    return 1
  fi
  detail "  ($what took $(( $(now) - start ))s)"
}

is_root() { [ "$(id -u)" = 0 ]; }
as_root() { if is_root; then "$@"; else sudo -n "$@"; fi; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    run_logged "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  run_logged "apt-get install $*" as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@"
}

hash_files() { cat "$@" | sha256sum | cut -c1-16; }

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

# Serialise builds into the shared cache (two clones running `up` at once).
with_cache_lock() {
  local name="$1"; shift
  ( flock -x 9; "$@" ) 9>"$CACHE_DIR/.$name.lock"
}

js_runtime() {
  if command -v node >/dev/null; then echo node
  elif command -v bun >/dev/null; then echo bun
  elif [ -x "$REPO/node_modules/.bin/bun" ]; then echo "$REPO/node_modules/.bin/bun"
  else die "neither node nor bun found (needed for the readiness probes)"
  fi
}
probe() { "$(js_runtime)" "$STACK_SH_DIR/probe.mjs" "$@"; }

# wait_ready NAME LOGFILE PID_FN CHECK_CMD...: poll CHECK_CMD until it succeeds; fail early when the
# process (pid printed by PID_FN) died.
wait_ready() {
  local name="$1" logfile="$2" pidfn="$3"; shift 3
  local start deadline pid
  start=$(now); deadline=$(( start + TIMEOUT ))
  while :; do
    if "$@" >/dev/null 2>&1; then
      detail "$name ready after $(( $(now) - start ))s"
      return 0
    fi
    pid=$("$pidfn")
    if ! pid_alive "$pid"; then
      printf '[stack] ERROR: %s exited during start-up; last 30 lines of %s:\n' "$name" "$logfile" >&2
      tail -n 30 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    if [ "$(now)" -ge "$deadline" ]; then
      printf '[stack] ERROR: %s did not answer within %ss; last 30 lines of %s:\n' "$name" "$TIMEOUT" "$logfile" >&2
      tail -n 30 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

# stop_pid NAME PIDFILE: SIGTERM, wait STOP_TIMEOUT, then SIGKILL.
stop_pid() {
  local name="$1" pidfile="$2" pid i
  pid=$(read_pid "$pidfile")
  if ! pid_alive "$pid"; then rm -f "$pidfile"; say "$name: already down"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  if pid_alive "$pid"; then
    say "$name: still running after ${STOP_TIMEOUT}s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  say "$name: stopped"
}

# port_free NAME PORT...: fail clearly when something else already listens there (another stack, a
# system service), instead of probing a foreign server and calling it ours.
port_free() {
  local name="$1" port; shift
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
      printf '[stack] ERROR: %s: port %s:%s is already in use by another process (%s)\n' "$name" "$HOST" "$port" \
        "$( (ss -ltnpH "sport = :$port" 2>/dev/null || true) | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)" >&2
      return 1
    fi
  done
}

# start_detached PIDFILE LOGFILE CMD...: start CMD in its own session, surviving the calling shell.
# The pid written is the one of CMD itself (bash execs into it).
start_detached() {
  local pidfile="$1" logfile="$2"; shift 2
  rm -f "$pidfile"
  # 8>&- 9>&-: the server must not inherit the lock file descriptors (it would hold the locks forever).
  nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 8>&- 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  die "could not start $*"
}

# ================================================================ PostgreSQL
PG_URL="postgres://cdc:cdc@$HOST:$PG_PORT/cdc"

pg_find_bin() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] || continue
    best="$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1)"
  done
  printf '%s' "$best"
}

# The data directory must be reachable by the `postgres` user (initdb/postgres refuse to run as root).
# If <stack dir> is reachable by it (every parent directory has o+x, e.g. /work/main/.stack), the cluster
# lives in <stack dir>/postgres. If not (repo under /root or another 0700 directory), we do not loosen the
# permissions of the user's directories: the cluster lives in /tmp/cdc-stack-<hash of the stack dir path>/
# postgres and <stack dir>/postgres is a symlink to it (so logs are still found under .stack/). Such a
# cluster disappears with /tmp on reboot, which is fine for a test stack.
pg_home() {
  local link="$STACK_DIR/postgres"
  if [ -L "$link" ]; then readlink -f "$link"; return; fi
  if ! is_root || runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
    printf '%s' "$link"; return
  fi
  local alt
  alt="/tmp/cdc-stack-$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)/postgres"
  mkdir -p "$alt"
  chmod 755 "$(dirname "$alt")"
  rm -rf "$link"
  ln -s "$alt" "$link"
  detail "postgres: $STACK_DIR is not reachable by user postgres; cluster in $alt (symlinked)"
  printf '%s' "$alt"
}

pg_as_owner() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_setup_vars() {
  PG_BIN="$(pg_find_bin)"
  PG_HOME="$(pg_home)"
  PG_DATA="$PG_HOME/data"
  PG_RUN="$PG_HOME/run"
  PG_LOG="$PG_HOME/postgres.log"
  # A unix socket path is limited to 107 bytes.
  if [ $(( ${#PG_RUN} + 20 )) -gt 107 ]; then
    PG_RUN="/tmp/cdc-stack-$(printf '%s' "$PG_HOME" | sha256sum | cut -c1-12)-pgrun"
  fi
}

pg_ready() { [ -n "${PG_BIN:-}" ] && "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -d postgres -U postgres -t 2; }

pg_pid() { [ -f "$PG_DATA/postmaster.pid" ] && head -n 1 "$PG_DATA/postmaster.pid" | tr -dc '0-9' || true; }

pg_install() {
  PG_BIN="$(pg_find_bin)"
  [ -n "$PG_BIN" ] && return 0
  say "postgres: installing Debian package postgresql"
  # No default cluster on 5432 from the package: we run our own.
  as_root mkdir -p /etc/postgresql-common/createcluster.d
  printf 'create_main_cluster = false\n' | as_root tee /etc/postgresql-common/createcluster.d/cdc-stack.conf >/dev/null
  apt_install postgresql || return 1
  PG_BIN="$(pg_find_bin)"
  [ -n "$PG_BIN" ] || die "postgres: installed, but no /usr/lib/postgresql/*/bin/{initdb,pg_ctl}"
}

pg_write_config() {
  # Regenerated on every start so that port and paths follow the environment.
  cat >"$PG_DATA/cdc-stack.conf" <<EOF
# Written by test/stack/stack.sh on every start; edit there.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 200
shared_buffers = 256MB
# Durability stays on: benchmarks must be honest.
fsync = on
synchronous_commit = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# Written by test/stack/stack.sh: local test cluster, trust on loopback only.
local   all             all                     trust
local   replication     all                     trust
host    all             all     127.0.0.1/32    trust
host    replication     all     127.0.0.1/32    trust
EOF
  if is_root; then chown postgres: "$PG_DATA/cdc-stack.conf" "$PG_DATA/pg_hba.conf"; fi
}

pg_up() {
  pg_install || return 1
  pg_setup_vars
  say "postgres: using $PG_BIN ($("$PG_BIN/postgres" --version | awk '{print $3}'))"
  mkdir -p "$PG_HOME" "$PG_RUN"
  if is_root; then chown postgres: "$PG_HOME" "$PG_RUN"; chmod 700 "$PG_RUN"; fi

  local pid; pid=$(pg_pid)
  if pid_alive "$pid" && pg_ready; then
    say "postgres: already running (pid $pid)"
  else
    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
      say "postgres: initdb $PG_DATA"
      rm -rf "$PG_DATA"
      mkdir -p "$PG_DATA"
      if is_root; then chown postgres: "$PG_DATA"; fi
      chmod 700 "$PG_DATA"
      run_logged "initdb" pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale || return 1
      printf "\ninclude 'cdc-stack.conf'\n" >>"$PG_DATA/postgresql.conf"
    elif [ "$(cat "$PG_DATA/PG_VERSION")" != "$(basename "$(dirname "$PG_BIN")")" ]; then
      die "postgres: $PG_DATA was made by PostgreSQL $(cat "$PG_DATA/PG_VERSION"), binaries are $PG_BIN; run: stack.sh reset postgres"
    fi
    pg_write_config
    if ! pid_alive "$pid"; then
      port_free postgres "$PG_PORT" || return 1
      say "postgres: starting on $HOST:$PG_PORT"
      # pg_ctl detaches the postmaster (it survives the calling shell) and waits until it accepts connections.
      if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >>"$LOG" 2>&1 8>&- 9>&-; then
        printf '[stack] ERROR: postgres did not start; last 30 lines of %s:\n' "$PG_LOG" >&2
        tail -n 30 "$PG_LOG" >&2 2>/dev/null || true
        return 1
      fi
    fi
    wait_ready postgres "$PG_LOG" pg_pid pg_ready || return 1
  fi

  # Role and database, idempotently.
  run_logged "create role/database cdc" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cdc') THEN
        CREATE ROLE cdc LOGIN SUPERUSER REPLICATION PASSWORD 'cdc';
      END IF;
    END \$\$;" || return 1
  if ! "$PG_BIN/psql" -X -qtA -h "$HOST" -p "$PG_PORT" -U postgres -d postgres \
      -c "SELECT 1 FROM pg_database WHERE datname = 'cdc'" | grep -q 1; then
    run_logged "create database cdc" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d postgres \
      -c "CREATE DATABASE cdc OWNER cdc" || return 1
  fi
  say "postgres: up  $PG_URL"
}

pg_down() {
  PG_BIN="$(pg_find_bin)"
  if [ -z "$PG_BIN" ]; then say "postgres: not installed"; return 0; fi
  pg_setup_vars
  local pid; pid=$(pg_pid)
  if ! pid_alive "$pid"; then say "postgres: already down"; return 0; fi
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >>"$LOG" 2>&1; then
    say "postgres: fast shutdown timed out, immediate shutdown"
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >>"$LOG" 2>&1 || true
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  say "postgres: stopped"
}

pg_status() {
  PG_BIN="$(pg_find_bin)"
  if [ -n "$PG_BIN" ] && pg_ready; then echo "postgres: up    $PG_URL"; return 0; fi
  echo "postgres: down  ($HOST:$PG_PORT)"; return 1
}

pg_wipe() {
  PG_BIN="$(pg_find_bin)"
  pg_setup_vars
  rm -rf "$PG_DATA"
  say "postgres: data deleted"
}

# ================================================================ Kafka
KAFKA_POM="$STACK_SH_DIR/kafka/pom.xml"
KAFKA_VERSION="${CDC_STACK_KAFKA_VERSION:-4.4.0}"
KAFKA_MAJOR="${KAFKA_VERSION%%.*}"
case "$KAFKA_VERSION" in [0-9]*.[0-9]*.[0-9]*) ;; *) echo "CDC_STACK_KAFKA_VERSION: expected x.y.z, got '$KAFKA_VERSION'" >&2; exit 2 ;; esac
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION-$(hash_files "$KAFKA_POM")/libs"
KAFKA_HOME="$STACK_DIR/kafka"
KAFKA_PIDFILE="$KAFKA_HOME/kafka.pid"
KAFKA_LOG="$KAFKA_HOME/server.log"
KAFKA_URL="$HOST:$KAFKA_PORT"
# Two extra listeners for the TLS tests (test/ops/tls.test.ts): SASL over TLS (PLAIN and SCRAM users cdc/cdc-secret),
# and TLS with a required client certificate. Their CA, broker and client certificates are made here with openssl.
KAFKA_SASL_SSL_PORT="${CDC_STACK_KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_MTLS_PORT="${CDC_STACK_KAFKA_MTLS_PORT:-$((KAFKA_PORT + 3))}"
KAFKA_TLS="$KAFKA_HOME/tls"
KAFKA_SASL_USER=cdc
KAFKA_SASL_PASSWORD=cdc-secret
# Bumped when the broker's data needs re-formatting for the stack (e.g. SCRAM users are added at format time).
KAFKA_LAYOUT="$KAFKA_VERSION+tls1"

# A CA, the broker's certificate (127.0.0.1 and localhost) and a client certificate, all PEM; kept across restarts.
kafka_make_tls() {
  [ -s "$KAFKA_TLS/client.key" ] && return 0
  command -v openssl >/dev/null || { apt_install openssl || return 1; }
  rm -rf "$KAFKA_TLS"; mkdir -p "$KAFKA_TLS"
  (
    cd "$KAFKA_TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cdc-stack-ca" -keyout ca.key -out ca.crt
    for who in broker client; do
      openssl req -newkey rsa:2048 -nodes -subj "/CN=cdc-stack-$who" -keyout "$who.key.pkcs1" -out "$who.csr"
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$who.ext"
      openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile "$who.ext" -out "$who.crt"
      openssl pkcs8 -topk8 -nocrypt -in "$who.key.pkcs1" -out "$who.key"
    done
    cat broker.key broker.crt >broker.pem
  ) >>"$LOG" 2>&1 || { say "kafka: ERROR: making the TLS certificates failed (see $LOG)"; return 1; }
}

kafka_install_libs() {
  [ -f "$KAFKA_LIBS/.complete" ] && return 0
  say "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central (mvn) into $KAFKA_LIBS"
  local work="$KAFKA_LIBS.tmp.$$"
  rm -rf "$work"; mkdir -p "$work"
  cp "$KAFKA_POM" "$work/pom.xml"
  local mvn=(mvn -q -B -Dstyle.color=never -f "$work/pom.xml" "-Dkafka.version=$KAFKA_VERSION")
  if ! run_logged "mvn dependency:copy-dependencies" "${mvn[@]}" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$work/libs"; then
    rm -rf "$work"; return 1
  fi
  # The logging binding: 3.x logs through log4j 1 (reload4j), 4.x through log4j2 at the version the broker brings.
  local binding
  if [ "$KAFKA_MAJOR" -ge 4 ]; then
    local log4j; log4j="$(ls "$work/libs" | sed -n 's/^log4j-api-\(.*\)\.jar$/\1/p' | head -1)"
    [ -n "$log4j" ] || { say "kafka: ERROR: no log4j-api among Kafka $KAFKA_VERSION's jars"; rm -rf "$work"; return 1; }
    binding="org.apache.logging.log4j:log4j-slf4j-impl:$log4j"
  else
    binding="org.slf4j:slf4j-reload4j:1.7.36"
  fi
  if ! run_logged "mvn dependency:copy $binding" "${mvn[@]}" dependency:copy -Dartifact="$binding" -DoutputDirectory="$work/libs"; then
    rm -rf "$work"; return 1
  fi
  if [ "$KAFKA_MAJOR" -lt 4 ] && [ ! -f "$work/libs/reload4j-1.2.25.jar" ]; then
    run_logged "mvn dependency:copy reload4j" "${mvn[@]}" dependency:copy -Dartifact=ch.qos.reload4j:reload4j:1.2.25 \
      -DoutputDirectory="$work/libs" || { rm -rf "$work"; return 1; }
  fi
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  mv "$work/libs" "$KAFKA_LIBS"
  rm -rf "$work"
  touch "$KAFKA_LIBS/.complete"
}

kafka_install() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless || return 1; fi
  if ! command -v mvn >/dev/null && [ ! -f "$KAFKA_LIBS/.complete" ]; then apt_install maven || return 1; fi
  with_cache_lock "kafka-$KAFKA_VERSION" kafka_install_libs
}

kafka_write_config() {
  mkdir -p "$KAFKA_HOME/data"
  cat >"$KAFKA_HOME/server.properties" <<EOF
# Written by test/stack/stack.sh on every start; edit there.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CTL_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CTL_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,MTLS://$HOST:$KAFKA_MTLS_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,MTLS://$HOST:$KAFKA_MTLS_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_TLS/broker.pem
listener.name.mtls.ssl.keystore.type=PEM
listener.name.mtls.ssl.keystore.location=$KAFKA_TLS/broker.pem
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$KAFKA_TLS/ca.crt
listener.name.mtls.ssl.client.auth=required
log.dirs=$KAFKA_HOME/data
num.partitions=3
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=3
num.io.threads=4
log.retention.hours=168
log.segment.bytes=268435456
EOF
}

if [ "$KAFKA_MAJOR" -ge 4 ]; then KAFKA_LOGGING="-Dlog4j2.configurationFile=$STACK_SH_DIR/kafka/log4j2.properties"
else KAFKA_LOGGING="-Dlog4j.configuration=file:$STACK_SH_DIR/kafka/log4j.properties"; fi
KAFKA_JAVA=(java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "$KAFKA_LOGGING" "-Dkafka.logs.dir=$KAFKA_HOME" -cp "$KAFKA_LIBS/*")

kafka_pid() { read_pid "$KAFKA_PIDFILE"; }

# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding (what StorageTool random-uuid
# prints), made here without starting a JVM. Like Kafka's own, never one that starts with '-': StorageTool would
# take it for an option ("argument --cluster-id/-t: expected one argument", one stack start in 64).
kafka_random_uuid() {
  local id="-"
  while [ "${id:0:1}" = "-" ]; do id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)"; done
  echo "$id"
}

kafka_ready() {
  grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null && probe kafka "$HOST" "$KAFKA_PORT"
}

kafka_up() {
  kafka_install || return 1
  local pid; pid=$(read_pid "$KAFKA_PIDFILE")
  # Another version's broker or data (CDC_STACK_KAFKA_VERSION changed): this is a test stack, so start afresh.
  local was; was="$(cat "$KAFKA_HOME/version" 2>/dev/null || echo "an older stack")"
  if [ "$was" != "$KAFKA_LAYOUT" ]; then
    say "kafka: switching from $was to $KAFKA_LAYOUT (its data is deleted)"
    kafka_down; kafka_wipe; pid=""
  fi
  if pid_alive "$pid" && probe kafka "$HOST" "$KAFKA_PORT" >/dev/null 2>&1; then
    say "kafka: already running (pid $pid)"
    say "kafka: up  $KAFKA_URL"
    return 0
  fi
  mkdir -p "$KAFKA_HOME"
  if ! pid_alive "$pid"; then
    kafka_make_tls || return 1
    port_free kafka "$KAFKA_SASL_SSL_PORT" "$KAFKA_MTLS_PORT" || return 1
    kafka_write_config
    if [ ! -s "$KAFKA_HOME/data/meta.properties" ]; then
      local cid
      grep -q '^[^-]' "$KAFKA_HOME/cluster-id" 2>/dev/null || kafka_random_uuid >"$KAFKA_HOME/cluster-id"
      cid="$(cat "$KAFKA_HOME/cluster-id")"
      say "kafka: formatting storage (cluster id $cid)"
      run_logged "kafka storage format" "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cid" \
        -c "$KAFKA_HOME/server.properties" -g \
        --add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" || return 1
    fi
    # Only the current run's log matters for readiness.
    port_free kafka "$KAFKA_PORT" "$KAFKA_CTL_PORT" || return 1
    [ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.prev"
    echo "$KAFKA_LAYOUT" >"$KAFKA_HOME/version"
    say "kafka: starting Kafka $KAFKA_VERSION on $KAFKA_URL (controller $HOST:$KAFKA_CTL_PORT)"
    start_detached "$KAFKA_PIDFILE" "$KAFKA_HOME/stdout.log" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties"
  fi
  touch "$KAFKA_LOG"
  wait_ready kafka "$KAFKA_LOG" kafka_pid kafka_ready || {
    tail -n 5 "$KAFKA_HOME/stdout.log" >&2 2>/dev/null || true
    return 1
  }
  # Have the broker create __consumer_offsets and __transaction_state now (~1 s on a new broker), so the
  # first consumer group / transactional producer of a test does not wait for it.
  if ! probe kafka-warm "$HOST" "$KAFKA_PORT" >>"$LOG" 2>&1; then
    say "kafka: warning: group/transaction coordinators not available yet (see $KAFKA_LOG)"
  fi
  say "kafka: up  $KAFKA_URL"
}

kafka_down() { stop_pid kafka "$KAFKA_PIDFILE"; }

kafka_status() {
  if probe kafka "$HOST" "$KAFKA_PORT" >/dev/null 2>&1; then echo "kafka: up    $KAFKA_URL"; return 0; fi
  echo "kafka: down  ($KAFKA_URL)"; return 1
}

kafka_wipe() { rm -rf "$KAFKA_HOME/data" "$KAFKA_HOME/cluster-id"; say "kafka: data deleted"; }

# ================================================================ MongoDB wire (FerretDB)
FDB_SRC="$STACK_SH_DIR/ferretdb"
FDB_VERSION="$(sed -n 's:.*github.com/FerretDB/FerretDB \(v[^ ]*\).*:\1:p' "$FDB_SRC/go.mod" | head -n 1)"
FDB_BIN="$CACHE_DIR/ferretdb-$FDB_VERSION-$(hash_files "$FDB_SRC/go.mod" "$FDB_SRC/go.sum" "$FDB_SRC/main.go")/cdc-ferretdb"
MONGO_HOME="$STACK_DIR/mongo"
MONGO_PIDFILE="$MONGO_HOME/ferretdb.pid"
MONGO_LOG="$MONGO_HOME/ferretdb.log"
MONGO_URL="mongodb://$HOST:$MONGO_PORT"

fdb_build() {
  [ -x "$FDB_BIN" ] && return 0
  command -v go >/dev/null || die "mongo: Go (>= 1.24) is needed to build FerretDB; install it from go.dev"
  say "mongo: building FerretDB $FDB_VERSION (Go, takes a few minutes once) into $(dirname "$FDB_BIN")"
  mkdir -p "$(dirname "$FDB_BIN")"
  local tmp="$FDB_BIN.tmp.$$"
  if ! (cd "$FDB_SRC" && run_logged "go build ferretdb" go build -trimpath -ldflags=-s -o "$tmp" .); then
    rm -f "$tmp"; return 1
  fi
  mv -f "$tmp" "$FDB_BIN"
}

mongo_ready() { probe mongo "$HOST" "$MONGO_PORT"; }
mongo_pid() { read_pid "$MONGO_PIDFILE"; }

mongo_up() {
  with_cache_lock ferretdb fdb_build || return 1
  local pid; pid=$(read_pid "$MONGO_PIDFILE")
  if pid_alive "$pid" && mongo_ready >/dev/null 2>&1; then
    say "mongo: already running (pid $pid)"
    say "mongo: up  $MONGO_URL"
    return 0
  fi
  mkdir -p "$MONGO_HOME/data"
  if ! pid_alive "$pid"; then
    local args=(-listen "$HOST:$MONGO_PORT" -handler "$MONGO_HANDLER")
    if [ "$MONGO_HANDLER" = postgresql ]; then
      # FerretDB's own database inside our PostgreSQL (needs `up postgres` first).
      pg_setup_vars
      "$PG_BIN/psql" -X -qtA -h "$HOST" -p "$PG_PORT" -U cdc -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1 ||
        run_logged "create database ferretdb" "$PG_BIN/psql" -X -q -h "$HOST" -p "$PG_PORT" -U cdc -d postgres \
          -c "CREATE DATABASE ferretdb OWNER cdc" || return 1
      run_logged "ferretdb index triggers (GIN for _id and indexed top-level fields)" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d ferretdb \
        -f "$REPO/test/stack/ferretdb-id-index.sql" || return 1
      # Over the unix socket, not TCP loopback: a result of a few hundred kB (an hour bucket of a busy history) sent at
      # once overran the receive buffer of a FerretDB connection; the dropped segments came back only after the 200 ms
      # retransmission timeout, so 2–7% of such reads took ~250 ms instead of ~45 (drops seen in `ss -tm`'s skmem d).
      args+=(-postgresql-url "postgres://cdc:cdc@/ferretdb?host=$PG_RUN&port=$PG_PORT")
    else
      args+=(-dir "$MONGO_HOME/data")
    fi
    port_free mongo "$MONGO_PORT" || return 1
    say "mongo: starting FerretDB $FDB_VERSION ($MONGO_HANDLER) on $HOST:$MONGO_PORT"
    [ -f "$MONGO_LOG" ] && mv -f "$MONGO_LOG" "$MONGO_LOG.prev"
    # GOGC=400: FerretDB turns every document into short-lived Go values, and the collector's default pace (100)
    # cost it a third of its CPU (114 history documents read: 72–77 → 46–50 ms of CPU per query; inserts 216–242 →
    # 136–170 µs per document), for ~80 MB of memory. An operator's own GOGC wins.
    GOGC="${GOGC:-400}" start_detached "$MONGO_PIDFILE" "$MONGO_LOG" "$FDB_BIN" "${args[@]}"
  fi
  wait_ready mongo "$MONGO_LOG" mongo_pid mongo_ready || return 1
  say "mongo: up  $MONGO_URL"
}

mongo_down() { stop_pid mongo "$MONGO_PIDFILE"; }

mongo_status() {
  if mongo_ready >/dev/null 2>&1; then echo "mongo: up    $MONGO_URL"; return 0; fi
  echo "mongo: down  ($MONGO_URL)"; return 1
}

mongo_wipe() { rm -rf "$MONGO_HOME/data"; say "mongo: data deleted"; }

# ================================================================ commands
fn_prefix() { case "$1" in postgres) echo pg ;; kafka) echo kafka ;; mongo) echo mongo ;; esac; }

cmd_up() {
  local s start; start=$(now)
  if [ $# -eq 1 ]; then
    "$(fn_prefix "$1")_up"
  else
    # Start all three at once (the FerretDB build and the Kafka JVM overlap); FerretDB on the
    # postgresql handler needs PostgreSQL first.
    local pids=() names=() rc=0 i
    # apt-get steps first, one at a time (dpkg lock).
    pg_install || return 1
    if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless || return 1; fi
    if ! command -v mvn >/dev/null && [ ! -f "$KAFKA_LIBS/.complete" ]; then apt_install maven || return 1; fi
    if [ "$MONGO_HANDLER" = postgresql ]; then pg_up || rc=1; fi
    for s in "${ALL_SERVERS[@]}"; do
      [ "$MONGO_HANDLER" = postgresql ] && [ "$s" = postgres ] && continue
      "$(fn_prefix "$s")_up" &
      pids+=($!); names+=("$s")
    done
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { rc=1; say "${names[$i]}: FAILED"; }
    done
    [ "$rc" = 0 ] || { say "up failed after $(( $(now) - start ))s (details: $LOG)"; return 1; }
  fi
  say "up in $(( $(now) - start ))s"
}

cmd_down() {
  local s
  if [ $# -eq 1 ]; then "$(fn_prefix "$1")_down"; return; fi
  # Consumers first, database last.
  for s in mongo kafka postgres; do "$(fn_prefix "$s")_down"; done
}

cmd_status() {
  local s rc=0
  for s in "$@"; do "$(fn_prefix "$s")_status" || rc=3; done
  return "$rc"
}

cmd_reset() {
  local s
  local servers=("$@")
  [ $# -gt 0 ] || servers=("${ALL_SERVERS[@]}")
  cmd_down "$@"
  for s in "${servers[@]}"; do "$(fn_prefix "$s")_wipe"; done
  cmd_up "$@"
}

cmd_env() {
  cat <<EOF
export CDC_POSTGRES_URL='$PG_URL'
export CDC_KAFKA_BROKERS='$KAFKA_URL'
export CDC_MONGO_URL='$MONGO_URL'
export CDC_STACK_FERRETDB_BIN='$FDB_BIN'
EOF
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

main() {
  local cmd="${1:-}"; shift || true
  if [ $# -gt 1 ]; then usage; fi
  if [ $# -eq 1 ]; then
    case "$1" in postgres | kafka | mongo) ;; *) echo "unknown server: $1 (postgres|kafka|mongo)" >&2; exit 2 ;; esac
  fi
  case "$cmd" in
    up | down | reset)
      detail "=== stack.sh $cmd $*"
      # One state-changing command at a time per stack dir.
      exec 8>"$STACK_DIR/.lock"
      flock -x 8
      "cmd_$cmd" "$@"
      ;;
    status)
      if [ $# -eq 1 ]; then cmd_status "$1"; else cmd_status "${ALL_SERVERS[@]}"; fi
      ;;
    env) cmd_env ;;
    *) usage ;;
  esac
}

main "$@"

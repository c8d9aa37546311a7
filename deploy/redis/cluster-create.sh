#!/bin/sh
# Create emotune's Redis Cluster once; on every later run, check it and heal its nodes' addresses:
#   cluster-create.sh HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT
# as the administrator (REDISCLI_AUTH: the default user's password, REDIS_PASSWORD). docker-compose.yml's
# one-shot redis-cluster-create (profile cluster) and deploy/k8s/cluster's Job redis-cluster-create run it.
#
# - Waits until every node answers (EMOTUNE_CLUSTER_WAIT_S, 120 s): nodes and the job start together.
# - No cluster yet (the first node knows no other and serves no slot): redis-cli --cluster create with
#   EMOTUNE_CLUSTER_REPLICAS (1) replicas per master: 6 nodes are 3 masters and 3 replicas.
# - A cluster already (any later `docker compose up`, a rerun of the Job): creates nothing. Nodes that are
#   part of it meet each other again at their current addresses (CLUSTER MEET: a node that came back with a
#   new IP, as containers and pods do, is known again by its id), then redis-cli --cluster check must pass.
#   An empty node among them (its data volume lost) is left alone and named: add it by hand,
#   redis-cli --cluster add-node NEW EXISTING [--cluster-slave], as the README says.
# Addresses: CLUSTER MEET and --cluster create take IP addresses; each node's own is read from the node
# itself (CLIENT INFO's laddr), so no DNS tool is needed in the image.
# POSIX sh and redis-cli: runs in the redis:alpine image.
set -eu
if [ $# -lt 3 ]; then
  echo "usage: cluster-create.sh HOST:PORT... (at least 3 masters, times 1 + EMOTUNE_CLUSTER_REPLICAS nodes)" >&2
  exit 2
fi
replicas=${EMOTUNE_CLUSTER_REPLICAS:-1}
wait_s=${EMOTUNE_CLUSTER_WAIT_S:-120}

cli() { # cli HOST:PORT ARGS...: one command to one node
  node=$1
  shift
  redis-cli --no-auth-warning -h "${node%:*}" -p "${node##*:}" "$@"
}

info() { # info HOST:PORT FIELD: a field of CLUSTER INFO
  cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"
}

deadline=$(($(date +%s) + wait_s))
for node in "$@"; do
  until [ "$(cli "$node" ping 2>/dev/null)" = PONG ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "cluster-create.sh: $node does not answer PING after ${wait_s}s" >&2
      exit 1
    fi
    sleep 1
  done
done

address() { # address HOST:PORT: IP:PORT@BUSPORT of the node, as it sees itself on this connection
  laddr=$(cli "$1" client info | tr ' ' '\n' | sed -n 's/^laddr=//p')
  if [ -z "$laddr" ]; then
    echo "cluster-create.sh: $1 did not tell its address (CLIENT INFO): is REDISCLI_AUTH the admin's?" >&2
    exit 1
  fi
  bus=$(cli "$1" config get cluster-port | sed -n 2p | tr -d '\r')
  if [ -z "$bus" ] || [ "$bus" = 0 ]; then
    bus=$((${1##*:} + 10000))
  fi
  echo "${laddr%:*}:${1##*:}@$bus"
}

addresses=""
for node in "$@"; do
  addresses="$addresses $(address "$node")"
done

first=$1
if [ "$(info "$first" cluster_known_nodes)" = 1 ] && [ "$(info "$first" cluster_slots_assigned)" = 0 ]; then
  echo "cluster-create.sh: creating the cluster of$addresses"
  # shellcheck disable=SC2046 # one word per address
  redis-cli --no-auth-warning --cluster create $(for a in $addresses; do echo "${a%@*}"; done) \
    --cluster-replicas "$replicas" --cluster-yes
else
  echo "cluster-create.sh: the cluster exists; its nodes meet again at$addresses"
  for node in "$@"; do
    if [ "$(info "$node" cluster_known_nodes)" = 1 ]; then
      echo "cluster-create.sh: $node is empty, not part of the cluster: add it with" \
        "redis-cli --cluster add-node $node $first [--cluster-slave] (README, growing the cluster)" >&2
      continue
    fi
    own=$(address "$node")
    for other in $addresses; do
      if [ "$other" != "$own" ]; then
        other_ip_port=${other%@*}
        cli "$node" cluster meet "${other_ip_port%:*}" "${other_ip_port##*:}" "${other##*@}" >/dev/null
      fi
    done
  done
fi
deadline=$(($(date +%s) + wait_s))
until [ "$(info "$first" cluster_state)" = ok ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "cluster-create.sh: the cluster is not ok after ${wait_s}s" >&2
    break
  fi
  sleep 1
done
redis-cli --no-auth-warning --cluster check "$first"

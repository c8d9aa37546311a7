#!/bin/sh
# The replication password of a Redis Cluster node, as a line of redis.conf, on stdout:
#   masterauth.sh > /tmp/masterauth.conf   then   redis-server /tmp/masterauth.conf --cluster-enabled yes ...
# A replica authenticates to its master as the default user (the administrator, REDIS_PASSWORD of
# users.acl.template), with this password in the clear: Redis has no hashed form for it. Write it only into
# memory (docker-compose.yml: a tmpfs at /tmp; Kubernetes: a memory emptyDir), readable by Redis alone
# (umask 077). The checks are render-acl.sh's: unset, empty or a placeholder of the examples stops here.
# POSIX sh: runs in the redis:alpine image (busybox) and on any Linux.
set -eu
value=${REDIS_PASSWORD:-}
if [ -z "$value" ]; then
  echo "masterauth.sh: REDIS_PASSWORD is not set: the replicas of a cluster authenticate with it" >&2
  exit 1
fi
case $(printf '%s' "$value" | tr 'A-Z_' 'a-z-') in
  change-me* | changeme*)
    echo "masterauth.sh: REDIS_PASSWORD is still a placeholder of the examples (see render-acl.sh)" >&2
    exit 1
    ;;
esac
case $value in
  *'"'* | *'\'* | *"
"*)
    echo "masterauth.sh: REDIS_PASSWORD holds a quote, a backslash or a newline: use a URL-safe one" >&2
    exit 1
    ;;
esac
printf 'masterauth "%s"\n' "$value"

#!/bin/sh
# Render emotune's Redis users (users.acl.template) into Redis's ACL file, on stdout:
#   render-acl.sh users.acl.template > users.acl
# Every >${NAME} becomes #<SHA-256 of the variable NAME> (Redis keeps only hashes, and so does the file);
# a variable that is unset or empty is an error, and so is a placeholder ("change-me...", as .env.example and
# deploy/k8s/base/secret.yaml hold them): Redis never starts with a password that everyone can read.
# Comments and blank lines go; lines ending in \ are joined.
# POSIX sh, sed and sha256sum: runs in the redis:alpine image (busybox) and on any Linux.
set -eu
template=${1:?usage: render-acl.sh TEMPLATE > users.acl}
rendered=$(sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$template" |
  sed -e ':a' -e '/\\$/N' -e 's/[[:space:]]*\\\n[[:space:]]*/ /' -e 'ta')
for name in $(printf '%s\n' "$rendered" | grep -o '>\${[A-Z0-9_]*}' | sed 's/^>\${\(.*\)}$/\1/' | sort -u); do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "render-acl.sh: $name is not set: every Redis user needs a password" >&2
    exit 1
  fi
  case $(printf '%s' "$value" | tr 'A-Z_' 'a-z-') in
    change-me* | changeme*)
      echo "render-acl.sh: $name is still a placeholder of the examples, a password everyone can read: Redis" \
        "does not start with it. Set a random one: \`make env\` writes a .env with fresh ones (compose); on" \
        "Kubernetes, fill in the Secret emotune-secrets (deploy/k8s/base/secret.yaml says how)" >&2
      exit 1
      ;;
  esac
  hash=$(printf '%s' "$value" | sha256sum | cut -c1-64)
  rendered=$(printf '%s\n' "$rendered" | sed "s/>\\\${$name}/#$hash/g")
done
printf '%s\n' "$rendered"

#!/usr/bin/env bash
# Prints how to sign in to the demo tenant of `make run` and a command that works.
set -euo pipefail
password=$1
addr=${BIND_ADDR:-127.0.0.1:8080}
cat <<TXT

b2b is starting on http://$addr (Ctrl-C stops it; 'make stack-down' stops Postgres and RabbitMQ).

Sign in to the demo tenant:
  TOKEN=\$(curl -s http://$addr/api/v1/auth/login -H 'content-type: application/json' \\
    -d '{"tenant":"demo","email":"admin@demo.test","password":"$password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

Open an account (any new UUID is its id):
  ID=\$(cat /proc/sys/kernel/random/uuid)
  curl -s http://$addr/api/v1/accounts/\$ID -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"type":"OpenAccount","name":"Globex","legal_name":"Globex GmbH","country":"DE","billing_email":"ap@globex.test","currency":"EUR","tier":"Gold"}'

Read it back through GraphQL (GraphiQL at http://$addr/graphql):
  curl -s http://$addr/graphql -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -H "x-await-version: \$ID@1" -d '{"query":"{ accounts(first: 10) { totalCount edges { node { id name status tier } } } }"}'

TXT

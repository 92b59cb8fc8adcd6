#!/usr/bin/env bash
# Starts the servers the test suite talks to when they are not running: PostgreSQL and Redis.
# (The S3 and SMTP servers and the fake Telegram API are started by the tests themselves.)
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  echo "error: nothing listens on 127.0.0.1:$1 after 20 s ($2)" >&2
  return 1
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  else
    echo "error: PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is not installed" >&2
    exit 1
  fi
  wait_port 5432 PostgreSQL
fi

if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  else
    echo "error: Redis is not running on 127.0.0.1:6379 and redis-server is not installed" >&2
    exit 1
  fi
  wait_port 6379 Redis
fi

#!/bin/sh
# Lab 04 with kcat: a balanced consumer in click-processors; rebalances are printed on stderr.
#
# Install: apt install kcat
# Run:     sh consumer_kcat.sh BOOTSTRAP   (Ctrl-C leaves the group cleanly)
exec kcat -b "${1:-127.0.0.1:9092}" -G click-processors \
  -X client.id=lab04-kcat \
  -X session.timeout.ms=10000 \
  -X heartbeat.interval.ms=1000 \
  -X auto.offset.reset=earliest \
  -f 'partition %p offset %o: %s\n' \
  user-clicks

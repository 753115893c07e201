#!/bin/sh
# Stop the shoald whose pid is in PIDFILE (SIGTERM, then SIGKILL after 20 s); remove the pidfile.
# Usage: stop_shoald.sh PIDFILE
pidfile=$1
pid=$(cat "$pidfile" 2>/dev/null) || pid=""
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || ! tr '\000' ' ' <"/proc/$pid/cmdline" | grep -q shoald; then
    rm -f "$pidfile"
    echo "shoald is not running"
    exit 0
fi
kill -TERM "$pid"
waited=0
while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 200 ]; do
    sleep 0.1
    waited=$((waited + 1))
done
kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
rm -f "$pidfile"
echo "stopped shoald (pid $pid)"

#!/bin/sh
# shoald without systemd: a detached daemon with a pidfile (run by the shoal.swarm.agent role).
# Usage: shoald_ctl.sh start|stop|restart|status RUN_DIR DATA_DIR DAEMON CONFIG PYTHON TIMEOUT
#   start    starts shoald unless it runs, and returns once its API answers on RUN_DIR/shoal.sock
#   stop     SIGTERM, then SIGKILL after 20 s; prints "stopped ..." only when it stopped something
action=$1
run_dir=$2
data_dir=$3
daemon=$4
config=$5
python=$6
timeout=$7
pidfile=$run_dir/shoald.pid
socket=$run_dir/shoal.sock
log=$data_dir/shoald.log

# The socket file first: until shoald binds there is none, and a python start for each poll would take the CPU
# that shoald's own start-up needs (start() removes a socket left behind by a killed daemon).
answers() {
    [ -S "$socket" ] && "$python" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])' "$socket" 2>/dev/null
}

running() {
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\000' ' ' <"/proc/$pid/cmdline" | grep -q shoald
}

wait_api() {
    waited=0
    while [ "$waited" -lt $((timeout * 10)) ]; do
        if ! running; then
            echo "shoald exited; the end of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        answers && return 0
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "shoald (pid $pid) does not answer on $socket after $timeout s" >&2
    return 1
}

start() {
    if running; then
        wait_api || return 1
        echo "shoald is running (pid $pid)"
        return 0
    fi
    mkdir -p "$run_dir" "$data_dir"
    rm -f "$pidfile" "$socket" # no shoald runs: a socket there is a killed daemon's
    if command -v start-stop-daemon >/dev/null 2>&1; then
        # the pid written is the shell's, which becomes shoald by exec
        start-stop-daemon --start --background --make-pidfile --pidfile "$pidfile" \
            --startas /bin/sh -- -c "exec \"$daemon\" --config \"$config\" </dev/null >>\"$log\" 2>&1"
    else
        setsid "$daemon" --config "$config" </dev/null >>"$log" 2>&1 &
        echo $! >"$pidfile"
    fi
    sleep 0.1
    wait_api || return 1
    echo "started shoald (pid $pid)"
}

stop() {
    if ! running; then
        rm -f "$pidfile"
        echo "shoald is not running"
        return 0
    fi
    kill -TERM "$pid"
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 200 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    answers || rm -f "$socket" # left behind by a killed daemon
    echo "stopped shoald (pid $pid)"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    restart) stop && start ;;
    status)
        if running; then
            echo "shoald is running (pid $pid)"
        else
            echo "shoald is not running"
            exit 3
        fi
        ;;
    *)
        echo "usage: $0 start|stop|restart|status RUN_DIR DATA_DIR DAEMON CONFIG PYTHON TIMEOUT" >&2
        exit 2
        ;;
esac

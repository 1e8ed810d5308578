# fish completion for startup-server

# True once --exec is on the line: every later word belongs to the program it runs.
function __startup_server_in_exec
    set -l tokens (commandline -opc)
    contains -- --exec $tokens; or string match -q -- '--exec=*' $tokens
end

# Completes the program's own command line after --exec.
function __startup_server_exec_command
    set -l tokens (commandline -opc)
    set -l rest
    for i in (seq (count $tokens))
        if test "$tokens[$i]" = --exec
            set rest $tokens[(math $i + 1)..-1]
            break
        else if string match -q -- '--exec=*' $tokens[$i]
            set rest (string replace -- '--exec=' '' $tokens[$i]) $tokens[(math $i + 1)..-1]
            break
        end
    end
    set -l line $rest (commandline -ct)
    complete -C "$line"
end

# tcp entries of the services database, for --service.
function __startup_server_services
    echo 0
    test -r /etc/services; and string match -r -- '^[^#\s]+(?=\s+\d+/tcp)' </etc/services
end

# --announce=DEST: the destination comes only after '=', so complete the whole word.
function __startup_server_announce_destinations
    set -l dest (string replace -- '--announce=' '' (commandline -ct))
    printf '%s\t%s\n' --announce=- 'Standard output' --announce=stdout 'Standard output (the default)' --announce=stderr 'Standard error'
    printf '%s\n' --announce=(__fish_complete_path $dest)
end

# --user USER[:GROUP]: user names, and after ':' the groups.
function __startup_server_user_spec
    set -l spec (string replace -- '--user=' '' (commandline -ct))
    if string match -q -- '*:*' $spec
        set -l user (string split -m1 -- : $spec)[1]
        __fish_complete_groups | string replace -r -- '^' "$user:"
    else
        __fish_complete_users
    end
end

# Local addresses and the usual wildcard and loopback ones.
function __startup_server_addresses
    printf '%s\n' 127.0.0.1 ::1 0.0.0.0 :: localhost
    if command -q ip
        ip -o addr show 2>/dev/null | string replace -rf -- '.*\binet6? ([^/ ]+).*' '$1'
    end
end

set -l opt 'not __startup_server_in_exec'
set -l handler_chosen '__fish_seen_argument -l echo -l talk -l discard -l chargen -l daytime -l stdio -l exec -l sh-exec'

complete -c startup-server -f
complete -c startup-server -n '__startup_server_in_exec' -x -a '(__startup_server_exec_command)'

complete -c startup-server -n $opt -s h -l help -d 'Print the help and exit'
complete -c startup-server -n $opt -s V -l version -d 'Print the version and exit'

# Handlers (exactly one)
complete -c startup-server -n "$opt; and not $handler_chosen" -l echo -d 'Send every byte back until the client closes'
complete -c startup-server -n "$opt; and not $handler_chosen" -l talk -d "Answer each line with: You sent: '<line>'"
complete -c startup-server -n "$opt; and not $handler_chosen" -l discard -d 'Read and drop everything (RFC 863)'
complete -c startup-server -n "$opt; and not $handler_chosen" -l chargen -d 'Send rotating character lines (RFC 864)'
complete -c startup-server -n "$opt; and not $handler_chosen" -l daytime -d 'Send the date and time, then close (RFC 867)'
complete -c startup-server -n "$opt; and not $handler_chosen" -l stdio -d 'Join one connection at a time to this terminal: client to stdout, stdin to client'
complete -c startup-server -n "$opt; and not $handler_chosen" -l exec -x -a '(__fish_complete_command)' -d 'Run PROG with ARGs per connection; takes the rest of the line'
complete -c startup-server -n "$opt; and not $handler_chosen" -l sh-exec -x -d 'Run /bin/sh -c STRING per connection'

# Binding
complete -c startup-server -n $opt -s s -l service -x -a '(__startup_server_services)' -d 'Port number, service name, or 0 for a free port'
complete -c startup-server -n $opt -s p -l local-port -x -a '(__startup_server_services)' -d 'Synonym of --service'
complete -c startup-server -n $opt -s a -l local-address -x -a '(__startup_server_addresses)' -d 'IPv4/IPv6 literal, host name or 32-bit integer'
complete -c startup-server -n $opt -l address -x -a '(__startup_server_addresses)' -d 'Synonym of --local-address'
complete -c startup-server -n $opt -l ipv6 -x -a 'any\t"First resolver candidate that binds (default)" both\t"IPv6 socket that also accepts IPv4" on\t"IPv6 only" off\t"IPv4 only"' -d 'Address family'
complete -c startup-server -n $opt -s b -l backlog -x -a 'max\tSOMAXCONN 5\tDefault 128 4096' -d 'listen(2) backlog'
complete -c startup-server -n $opt -l reuseport -d 'Set SO_REUSEPORT so servers can share the port'

# Connections
complete -c startup-server -n $opt -l nodelay -d 'Set TCP_NODELAY on accepted sockets (the default)'
complete -c startup-server -n $opt -l no-nodelay -d "Leave Nagle's algorithm on"
complete -c startup-server -n $opt -l keepalive -d 'Set SO_KEEPALIVE on accepted sockets'
complete -c startup-server -n $opt -l no-keepalive -d 'Leave SO_KEEPALIVE off (the default)'
complete -c startup-server -n $opt -l create-stream -d "With --exec/--sh-exec: relay the child's stdin/stdout through pipes"
complete -c startup-server -n $opt -l child-stderr -r -F -d "Append exec children's stderr to FILE"
complete -c startup-server -n $opt -l threads -x -a '0\t"One per core" 1\tDefault 2 4' -d 'Threads serving connections'

# Guarding
complete -c startup-server -n $opt -l max-connections -x -a '0\t"No limit" 1 10 100\t"Default for --exec and --sh-exec"' -d 'Connections at once; at the limit clients wait in the backlog'
complete -c startup-server -n $opt -l max-per-ip -x -a '1 2 4 10' -d 'Connections at once from one address; more are refused'
complete -c startup-server -n $opt -l allow -x -a '127.0.0.1 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 ::1' -d 'Serve only peers in ADDR[/PREFIX] (repeatable)'
complete -c startup-server -n $opt -l deny -x -a '127.0.0.1 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 ::1' -d 'Refuse peers in ADDR[/PREFIX] (repeatable; deny wins)'
complete -c startup-server -n $opt -l idle-timeout -x -d 'Close a connection with no traffic either way for SECONDS'
complete -c startup-server -n $opt -l user -x -a '(__startup_server_user_spec)' -d 'As root: run as USER[:GROUP] once the port is bound'

# Lifecycle
complete -c startup-server -n $opt -l wait -d 'Return once listening, leaving the server in the background; print its PID'
complete -c startup-server -n $opt -l once -d 'Serve one connection, then stop'
complete -c startup-server -n $opt -l grace -x -d 'Seconds open connections may go on after SIGINT/SIGTERM (default 3)'
complete -c startup-server -n $opt -l error -d 'Report fatal errors on stderr (the default without --wait)'
complete -c startup-server -n $opt -l no-error -d 'Only announce fatal errors; exit quietly, non-zero'
complete -c startup-server -n $opt -l process-name -x -d 'Name in messages and of the process'

# Announce and log
complete -c startup-server -n $opt -l announce -d 'Announce listening/error/terminated to stdout (default); --announce=stderr or =FILE'
complete -c startup-server -n "$opt; and string match -q -- '--announce=*' (commandline -ct)" -x -a '(__startup_server_announce_destinations)'
complete -c startup-server -n $opt -l announce-format -x -a 'text\t"listening on ADDRESS:PORT (default)" json\t"One JSON object per line" {port}\t"Template: the port alone"' -d 'text, json, or a {field} template'
complete -c startup-server -n $opt -s v -l verbose -d 'Log each connection opened and closed to stderr'
complete -c startup-server -n $opt -l log -r -F -d 'Write the connection log to FILE instead of stderr'
complete -c startup-server -n $opt -l log-format -x -a 'text json' -d 'Connection log format'
complete -c startup-server -n $opt -s x -l trace -d "Show each connection's traffic on stderr or the --log file; --trace=hex"
complete -c startup-server -n "$opt; and string match -q -- '--trace=*' (commandline -ct)" -x -a '--trace=text\t"Escaped bytes, a line per chunk (default)" --trace=hex\t"A line per 16 bytes, as hexdump -C"'

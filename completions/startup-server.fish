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

# --congestion: the algorithms the kernel has.
function __startup_server_congestion
    set -l file /proc/sys/net/ipv4/tcp_available_congestion_control
    if test -r $file
        string split -n ' ' <$file
    else
        printf '%s\n' cubic reno
    end
end

# --sockopt LEVEL:NAME=VALUE: the levels, then after ':' the names of that level.
function __startup_server_sockopt
    set -l token (string replace -r -- '^--sockopt(-listen)?=' '' (commandline -ct))
    set -l level (string match -r -- '^(socket|ip|ipv6|tcp):' $token)[2]
    switch "$level"
        case socket
            set names SO_RCVBUF SO_SNDBUF SO_KEEPALIVE SO_LINGER SO_PRIORITY SO_MARK SO_RCVLOWAT SO_SNDLOWAT \
                SO_REUSEADDR SO_REUSEPORT SO_BUSY_POLL SO_INCOMING_CPU SO_OOBINLINE SO_DONTROUTE
        case ip
            set names IP_TOS IP_TTL IP_FREEBIND IP_TRANSPARENT IP_BIND_ADDRESS_NO_PORT IP_MINTTL IP_MTU_DISCOVER IP_RECVERR
        case ipv6
            set names IPV6_TCLASS IPV6_UNICAST_HOPS IPV6_V6ONLY IPV6_TRANSPARENT IPV6_MTU_DISCOVER IPV6_RECVERR
        case tcp
            set names TCP_NODELAY TCP_MAXSEG TCP_CORK TCP_KEEPIDLE TCP_KEEPINTVL TCP_KEEPCNT TCP_SYNCNT TCP_LINGER2 \
                TCP_DEFER_ACCEPT TCP_WINDOW_CLAMP TCP_QUICKACK TCP_USER_TIMEOUT TCP_NOTSENT_LOWAT TCP_FASTOPEN \
                TCP_THIN_LINEAR_TIMEOUTS
        case '*'
            printf '%s\t%s\n' socket: SOL_SOCKET ip: SOL_IP ipv6: SOL_IPV6 tcp: IPPROTO_TCP
            return
    end
    printf '%s\n' $level:$names=
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

# TLS
complete -c startup-server -n $opt -l tls -d 'Serve over TLS; alone, with a self-signed certificate made for this run'
complete -c startup-server -n $opt -l tls-cert -r -F -d 'Certificate chain, PEM (implies --tls; needs --tls-key)'
complete -c startup-server -n $opt -l tls-key -r -F -d 'Private key of --tls-cert, PEM'
complete -c startup-server -n $opt -l tls-client-ca -r -F -d 'Require client certificates signed by a CA in FILE, PEM (implies --tls)'
complete -c startup-server -n $opt -l tls-handshake-timeout -x -d 'Refuse a client whose handshake takes longer than SECONDS (default 10)'
# Behind a load balancer (the PROXY protocol)
complete -c startup-server -n $opt -l proxy-protocol -d 'Read a PROXY protocol header (v1 or v2) first; the client it names is the peer'
complete -c startup-server -n $opt -l proxy-from -x -a '127.0.0.1 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 ::1' -d 'Trust peers in ADDR[/PREFIX] to send the header (repeatable; required)'
complete -c startup-server -n $opt -l proxy-timeout -x -a '3 5\tDefault 10' -d 'Refuse a connection whose header is not whole in SECONDS (default 5)'

# Socket options
complete -c startup-server -n $opt -l rcvbuf -x -a '65536 131072 262144 1048576' -d 'SO_RCVBUF on the listener (inherited; Linux doubles it)'
complete -c startup-server -n $opt -l sndbuf -x -a '65536 131072 262144 1048576' -d 'SO_SNDBUF on the listener (inherited; Linux doubles it)'
complete -c startup-server -n $opt -l linger -x -a '0\t"Reset the connection on close" 1 5 30' -d 'SO_LINGER seconds on accepted sockets'
complete -c startup-server -n $opt -l tos -x -a '0 8 16 32 40 72 136 184\tEF' -d 'IP_TOS (IPV6_TCLASS on IPv6) on accepted sockets'
complete -c startup-server -n $opt -l ttl -x -d 'IP_TTL (IPV6_UNICAST_HOPS on IPv6) on accepted sockets'
complete -c startup-server -n $opt -l keepidle -x -d 'TCP_KEEPIDLE seconds (implies keepalive)'
complete -c startup-server -n $opt -l keepintvl -x -d 'TCP_KEEPINTVL seconds (implies keepalive)'
complete -c startup-server -n $opt -l keepcnt -x -d 'TCP_KEEPCNT probes (implies keepalive)'
complete -c startup-server -n $opt -l mss -x -a '536 1220 1400 1460' -d 'TCP_MAXSEG on the listener (inherited)'
complete -c startup-server -n $opt -l defer-accept -x -d 'TCP_DEFER_ACCEPT seconds: accept once data has arrived'
complete -c startup-server -n $opt -l fastopen -x -d 'TCP_FASTOPEN on the listener, with this queue length'
complete -c startup-server -n $opt -l user-timeout -x -d 'TCP_USER_TIMEOUT milliseconds on accepted sockets'
complete -c startup-server -n $opt -l priority -x -a '0 1 2 3 4 5 6' -d 'SO_PRIORITY on accepted sockets'
complete -c startup-server -n $opt -l mark -x -d 'SO_MARK on the listener and accepted sockets (needs CAP_NET_ADMIN)'
complete -c startup-server -n $opt -l notsent-lowat -x -d 'TCP_NOTSENT_LOWAT bytes on accepted sockets'
complete -c startup-server -n $opt -l window-clamp -x -d 'TCP_WINDOW_CLAMP bytes on accepted sockets'
complete -c startup-server -n $opt -l congestion -x -a '(__startup_server_congestion)' -d 'TCP_CONGESTION: the congestion control algorithm'
complete -c startup-server -n $opt -l bind-device -x -a '(__fish_print_interfaces)' -d 'SO_BINDTODEVICE: serve only through this interface'
complete -c startup-server -n $opt -l freebind -d 'IP_FREEBIND: bind an address that is not (yet) on this machine'
complete -c startup-server -n $opt -l transparent -d 'IP_TRANSPARENT: transparent proxying (needs CAP_NET_ADMIN)'
complete -c startup-server -n $opt -l quickack -d 'TCP_QUICKACK on accepted sockets'
complete -c startup-server -n $opt -l sockopt -x -a '(__startup_server_sockopt)' -d 'Any option on accepted sockets: LEVEL:NAME=VALUE (repeatable)'
complete -c startup-server -n $opt -l sockopt-listen -x -a '(__startup_server_sockopt)' -d 'Any option on the listener, before bind: LEVEL:NAME=VALUE (repeatable)'
complete -c startup-server -n $opt -l show-sockopts -d 'Print each option given, requested and as the kernel set it'
complete -c startup-server -n $opt -l tcp-info -d "Add the kernel's TCP_INFO to each connection's close line in the log"

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
complete -c startup-server -n $opt -l announce-format -x -a 'text\t"listening on ADDRESS:PORT (default)" json\t"One JSON object per line" {port}\t"Template: the port alone" {tls_sha256}\t"Template: the TLS certificate\'s SHA-256 fingerprint"' -d 'text, json, or a {field} template'
complete -c startup-server -n $opt -s v -l verbose -d 'Log each connection opened and closed to stderr'
complete -c startup-server -n $opt -l log -r -F -d 'Write the connection log to FILE instead of stderr'
complete -c startup-server -n $opt -l log-format -x -a 'text json' -d 'Connection log format'
complete -c startup-server -n $opt -s x -l trace -d "Show each connection's traffic on stderr or the --log file; --trace=hex"
complete -c startup-server -n "$opt; and string match -q -- '--trace=*' (commandline -ct)" -x -a '--trace=text\t"Escaped bytes, a line per chunk (default)" --trace=hex\t"A line per 16 bytes, as hexdump -C"'

# bash completion for startup-server                          -*- shell-script -*-

# Service names for --service: the tcp entries of the services database.
_startup_server_services()
{
    local file=/etc/services
    [[ -r $file ]] || return
    awk '!/^[[:space:]]*#/ && $2 ~ /\/tcp$/ { print $1 }' "$file"
}

# Congestion control algorithms the kernel has, for --congestion.
_startup_server_congestion()
{
    local file=/proc/sys/net/ipv4/tcp_available_congestion_control
    if [[ -r $file ]]; then
        cat "$file"
    else
        echo cubic reno
    fi
}

# Symbolic option names of a --sockopt level, as startup-server knows them.
_startup_server_sockopt_names()
{
    case $1 in
        socket)
            echo SO_RCVBUF SO_SNDBUF SO_KEEPALIVE SO_LINGER SO_PRIORITY SO_MARK SO_RCVLOWAT \
                SO_SNDLOWAT SO_REUSEADDR SO_REUSEPORT SO_BUSY_POLL SO_INCOMING_CPU SO_OOBINLINE SO_DONTROUTE
            ;;
        ip)
            echo IP_TOS IP_TTL IP_FREEBIND IP_TRANSPARENT IP_BIND_ADDRESS_NO_PORT IP_MINTTL \
                IP_MTU_DISCOVER IP_RECVERR
            ;;
        ipv6)
            echo IPV6_TCLASS IPV6_UNICAST_HOPS IPV6_V6ONLY IPV6_TRANSPARENT IPV6_MTU_DISCOVER IPV6_RECVERR
            ;;
        tcp)
            echo TCP_NODELAY TCP_MAXSEG TCP_CORK TCP_KEEPIDLE TCP_KEEPINTVL TCP_KEEPCNT TCP_SYNCNT \
                TCP_LINGER2 TCP_DEFER_ACCEPT TCP_WINDOW_CLAMP TCP_QUICKACK TCP_USER_TIMEOUT \
                TCP_NOTSENT_LOWAT TCP_FASTOPEN TCP_THIN_LINEAR_TIMEOUTS
            ;;
    esac
}

_startup_server()
{
    local cur prev words cword split=false
    if declare -F _init_completion >/dev/null; then
        _init_completion -s || return
    else
        # Without bash-completion: COMP_WORDBREAKS makes the '=' of an option=value a word.
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[cword]}
        prev=${COMP_WORDS[cword - 1]}
        if [[ $cur == = ]]; then
            cur=""
            split=true
        elif [[ $prev == = && $cword -ge 2 ]]; then
            prev=${COMP_WORDS[cword - 2]}
            split=true
        fi
    fi

    # Every word after --exec belongs to the program it runs.
    local i
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} == --exec ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset $((i + 1))
            elif ((i + 1 == cword)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
    done

    # --user USER:GROUP: ':' breaks words, so GROUP comes after the words USER and ':'.
    local colon=$((cword - 1))
    [[ $cur == : ]] && colon=$cword
    if ((colon >= 2)) && [[ ${words[colon]} == : ]] &&
        [[ ${words[colon - 2]} == --user || ${words[colon - 1]} == --user=* ||
            (${words[colon - 2]} == = && ${words[colon - 3]} == --user) ]]; then
        [[ $cur == : ]] && cur=""
        COMPREPLY=($(compgen -g -- "$cur"))
        return
    fi

    # --sockopt LEVEL:NAME=VALUE: likewise NAME comes after the words LEVEL and ':'.
    if ((colon >= 2)) && [[ ${words[colon]} == : ]]; then
        local level=${words[colon - 1]} flag=${words[colon - 2]}
        [[ $flag == = ]] && ((colon >= 3)) && flag=${words[colon - 3]}
        if [[ $level == --sockopt=* || $level == --sockopt-listen=* ]]; then
            flag=${level%%=*}
            level=${level#*=}
        fi
        if [[ $flag == --sockopt || $flag == --sockopt-listen ]]; then
            [[ $cur == : ]] && cur=""
            COMPREPLY=($(compgen -W "$(_startup_server_sockopt_names "$level")" -S = -- "$cur"))
            compopt -o nospace 2>/dev/null
            return
        fi
    fi

    case $prev in
        --exec)
            COMPREPLY=($(compgen -c -- "$cur"))
            return
            ;;
        -s | --service | -p | --local-port)
            COMPREPLY=($(compgen -W "0 $(_startup_server_services)" -- "$cur"))
            return
            ;;
        -a | --local-address | --address)
            local addresses="127.0.0.1 ::1 0.0.0.0 :: localhost"
            COMPREPLY=($(compgen -W "$addresses" -- "$cur"))
            declare -F _ip_addresses >/dev/null && _ip_addresses -a
            return
            ;;
        --ipv6)
            COMPREPLY=($(compgen -W "any both on off" -- "$cur"))
            return
            ;;
        -b | --backlog)
            COMPREPLY=($(compgen -W "max 5 128 4096" -- "$cur"))
            return
            ;;
        --announce-format)
            COMPREPLY=($(compgen -W "text json {port} {address}:{port} {tls_sha256}" -- "$cur"))
            return
            ;;
        --log-format)
            COMPREPLY=($(compgen -W "text json" -- "$cur"))
            return
            ;;
        --announce)
            # The destination comes only after '=' (--announce=FILE): a word after a
            # bare --announce is the port, or another flag.
            if $split; then
                COMPREPLY=($(compgen -W "- stdout stderr" -- "$cur"))
                if declare -F _filedir >/dev/null; then
                    _filedir
                else
                    COMPREPLY+=($(compgen -f -- "$cur"))
                fi
                return
            fi
            ;;
        --log | --child-stderr | --tls-cert | --tls-key | --tls-client-ca)
            if declare -F _filedir >/dev/null; then
                _filedir
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
            ;;
        --threads)
            COMPREPLY=($(compgen -W "0 1 2 4" -- "$cur"))
            return
            ;;
        --max-connections)
            COMPREPLY=($(compgen -W "0 1 10 100" -- "$cur"))
            return
            ;;
        --max-per-ip)
            COMPREPLY=($(compgen -W "1 2 4 10" -- "$cur"))
            return
            ;;
        --allow | --deny | --proxy-from)
            COMPREPLY=($(compgen -W "127.0.0.1 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16" -- "$cur"))
            return
            ;;
        --user)
            COMPREPLY=($(compgen -u -- "$cur"))
            return
            ;;
        --trace)
            # The format comes only after '=' (--trace=hex): a word after a bare --trace
            # is the port, or another flag.
            if $split; then
                COMPREPLY=($(compgen -W "text hex" -- "$cur"))
                return
            fi
            ;;
        --rcvbuf | --sndbuf)
            COMPREPLY=($(compgen -W "65536 131072 262144 1048576" -- "$cur"))
            return
            ;;
        --linger)
            COMPREPLY=($(compgen -W "0 1 5 30" -- "$cur"))
            return
            ;;
        --tos)
            COMPREPLY=($(compgen -W "0 8 16 32 40 72 136 184" -- "$cur"))
            return
            ;;
        --priority)
            COMPREPLY=($(compgen -W "0 1 2 3 4 5 6" -- "$cur"))
            return
            ;;
        --mss)
            COMPREPLY=($(compgen -W "536 1220 1400 1460" -- "$cur"))
            return
            ;;
        --congestion)
            COMPREPLY=($(compgen -W "$(_startup_server_congestion)" -- "$cur"))
            return
            ;;
        --bind-device)
            COMPREPLY=($(compgen -W "$(command ls /sys/class/net 2>/dev/null)" -- "$cur"))
            return
            ;;
        --sockopt | --sockopt-listen)
            COMPREPLY=($(compgen -W "socket: ip: ipv6: tcp:" -- "$cur"))
            compopt -o nospace 2>/dev/null
            return
            ;;
        --proxy-timeout)
            COMPREPLY=($(compgen -W "3 5 10" -- "$cur"))
            return
            ;;
        --sh-exec | --grace | --process-name | --idle-timeout | --tls-handshake-timeout | --ttl | --keepidle | \
            --keepintvl | --keepcnt | --defer-accept | --fastopen | --user-timeout | --mark | --notsent-lowat | \
            --window-clamp)
            return
            ;;
    esac

    $split && return

    local opts="-h --help -V --version
        --echo --talk --discard --chargen --daytime --stdio --exec --sh-exec
        -s --service -p --local-port -a --local-address --address --ipv6
        -b --backlog --reuseport
        --nodelay --no-nodelay --keepalive --no-keepalive --create-stream --child-stderr
        --threads
        --max-connections --max-per-ip --allow --deny --idle-timeout --user
        --tls --tls-cert --tls-key --tls-client-ca --tls-handshake-timeout
        --proxy-protocol --proxy-from --proxy-timeout
        --rcvbuf --sndbuf --linger --tos --ttl --keepidle --keepintvl --keepcnt --mss
        --defer-accept --fastopen --user-timeout --priority --mark --notsent-lowat --window-clamp
        --congestion --bind-device --freebind --transparent --quickack --sockopt --sockopt-listen
        --show-sockopts --tcp-info
        --wait --once --grace --error --no-error --process-name
        --announce --announce= --announce-format -v --verbose --log --log-format
        -x --trace --trace="
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    # --announce= and --trace= go on with their value, not a space.
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
} &&
    complete -F _startup_server startup-server

# ex: filetype=sh

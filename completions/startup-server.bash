# bash completion for startup-server                          -*- shell-script -*-

# Service names for --service: the tcp entries of the services database.
_startup_server_services()
{
    local file=/etc/services
    [[ -r $file ]] || return
    awk '!/^[[:space:]]*#/ && $2 ~ /\/tcp$/ { print $1 }' "$file"
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
            COMPREPLY=($(compgen -W "text json {port} {address}:{port}" -- "$cur"))
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
        --log | --child-stderr)
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
        --allow | --deny)
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
        --sh-exec | --grace | --process-name | --idle-timeout)
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
        --wait --once --grace --error --no-error --process-name
        --announce --announce= --announce-format -v --verbose --log --log-format
        -x --trace --trace="
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    # --announce= and --trace= go on with their value, not a space.
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
} &&
    complete -F _startup_server startup-server

# ex: filetype=sh

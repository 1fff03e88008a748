# bash completion for sbrun and sbagent: options from their own --help (bash-completion's
# _longopt), files for file arguments, and after `--` (sbrun) the program and its arguments.

_sbrun() {
    local cur prev words cword
    _init_completion -s || return
    local i
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} == -- ]]; then
            _command_offset $((i + 1))
            return
        fi
    done
    case $prev in
        --mode) COMPREPLY=($(compgen -W 'remote local' -- "$cur")); return ;;
        --on-disconnect) COMPREPLY=($(compgen -W 'fail wait exit' -- "$cur")); return ;;
        --pid) _pids; return ;;
        --local|--remote|--fallback|--remote-cwd) _filedir -d; return ;;
        --token-file|--tls-ca|--tls-cert|--tls-key) _filedir; return ;;
    esac
    case $cur in
        --on-disconnect=*) cur=${cur#*=}; COMPREPLY=($(compgen -W 'fail wait exit' -- "$cur")); return ;;
        --mode=*) cur=${cur#*=}; COMPREPLY=($(compgen -W 'remote local' -- "$cur")); return ;;
    esac
    _longopt "$1"
}
complete -F _sbrun sbrun

_sbagent() {
    local cur prev words cword
    _init_completion -s || return
    case $prev in
        --root) _filedir -d; return ;;
        --token-file|--tls-ca|--tls-cert|--tls-key) _filedir; return ;;
        --listen) COMPREPLY=($(compgen -W 'unix: tcp:// systemd' -- "$cur")); compopt -o nospace; return ;;
    esac
    _longopt "$1"
}
complete -F _sbagent sbagent

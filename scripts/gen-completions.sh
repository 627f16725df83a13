#!/usr/bin/env bash
# Writes a bash or zsh completion script for whisper-backup and whisper-restore to stdout,
# made from the wrapper's --help so it knows every option (the wsp-* tools make their own
# with --generate-completion-script).
#
#   scripts/gen-completions.sh --bash|--zsh scripts/whisper-backup.sh
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: gen-completions.sh --bash|--zsh WRAPPER" >&2; exit 2; }
shell=$1 wrapper=$2

# One line per option: SHORT LONG ARG DESCRIPTION ("-" for none).
options=$(bash "$wrapper" --help | awk '
    /^  +-/ {
        line = $0; sub(/^ +/, "", line)
        if (match(line, /   */)) { o = substr(line, 1, RSTART - 1); t = substr(line, RSTART + RLENGTH) } else { o = line; t = "" }
        s = "-"; l = "-"; a = "-"
        n = split(o, w, /[, ]+/)
        for (i = 1; i <= n; i++) {
            if (w[i] ~ /^--/) l = w[i]; else if (w[i] ~ /^-/) s = w[i]; else a = w[i]
        }
        printf "%s\t%s\t%s\t%s\n", s, l, a, t
    }')
modes="backup restore purge list"
backends="disk s3 gcs swift noop file:// s3:// swift://"

case "$shell" in
--bash)
    all=$(awk -F'\t' '{ if ($1 != "-") printf "%s ", $1; printf "%s ", $2 }' <<<"$options")
    files=$(awk -F'\t' '$3 ~ /^(FILE|DIR)$/ { if ($1 != "-") printf "%s|", $1; printf "%s|", $2 }' <<<"$options")
    dirs=$(awk -F'\t' '$3 == "DIR" { if ($1 != "-") printf "%s|", $1; printf "%s|", $2 }' <<<"$options")
    args=$(awk -F'\t' '$3 != "-" && $3 !~ /^(FILE|DIR)$/ { if ($1 != "-") printf "%s|", $1; printf "%s|", $2 }' <<<"$options")
    cat <<EOF
# bash completion for whisper-backup and whisper-restore (generated from --help)
_whisper_backup() {
    local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} i words=0
    case "\$prev" in
        ${dirs%|}) COMPREPLY=(\$(compgen -d -- "\$cur")); return ;;
        ${files%|}) COMPREPLY=(\$(compgen -f -- "\$cur")); return ;;
        ${args%|}) return ;;
    esac
    if [[ "\$cur" == -* ]]; then
        COMPREPLY=(\$(compgen -W "$all" -- "\$cur"))
        return
    fi
    # A mode word first (whisper-backup), then the backend.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "\${COMP_WORDS[i]}" in
            ${args%|}|${files%|}) ((i++)) ;;
            -*) ;;
            *) ((words++)) ;;
        esac
    done
    if [ \$words -eq 0 ] && [ "\${1##*/}" = whisper-backup ]; then
        COMPREPLY=(\$(compgen -W "$modes" -- "\$cur"))
    elif [ \$words -le 1 ]; then
        COMPREPLY=(\$(compgen -W "$backends" -- "\$cur"))
    fi
}
complete -F _whisper_backup whisper-backup whisper-restore
EOF
    ;;
--zsh)
    echo '#compdef whisper-backup whisper-restore'
    echo '# zsh completion for whisper-backup and whisper-restore (generated from --help)'
    echo '_whisper_backup() {'
    echo '  local -a opts'
    echo '  opts=('
    while IFS=$'\t' read -r s l a t; do
        t=${t//\\/\\\\}; t=${t//\'/\'\\\'\'}; t=${t//[/\\[}; t=${t//]/\\]}
        a=${a//:/-}
        case "$a" in
            -) action= ;;
            DIR) action=":${a}:_files -/" ;;
            FILE) action=":${a}:_files" ;;
            *) action=":${a}: " ;;
        esac
        if [ "$s" != - ]; then
            printf "    '(%s %s)'{%s,%s}'[%s]%s'\n" "$s" "$l" "$s" "$l" "$t" "$action"
        else
            printf "    '%s[%s]%s'\n" "$l" "$t" "$action"
        fi
    done <<<"$options"
    echo '  )'
    echo '  if [[ $service == whisper-backup ]]; then'
    echo "    _arguments -s \$opts '1:mode:($modes)' '2:backend:($backends)' '3::region: '"
    echo '  else'
    echo "    _arguments -s \$opts '1:backend:($backends)' '2::region: '"
    echo '  fi'
    echo '}'
    echo '_whisper_backup "$@"'
    ;;
*) echo "gen-completions.sh: --bash or --zsh" >&2; exit 2 ;;
esac
